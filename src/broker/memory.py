"""The memory broker: one process. Subscribers are callbacks, presence is the pure `Groups`.

`LocalTopics` (this process's subscribers) is shared with the Redis broker, which relays
the frames it receives from Redis to it.
"""

from collections import defaultdict
from collections.abc import Callable

from src.broker.base import Broker, Deliver
from src.broker.presence import Admission, Departure, Groups, presence_frame, presence_topic


class LocalTopics:
    """This process's subscribers: topic -> callbacks, called in subscription order."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Deliver]] = defaultdict(list)

    def deliver(self, topic: str, frame: str) -> None:
        for deliver in tuple(self._subscribers.get(topic, ())):
            deliver(frame)

    def subscribe(self, topic: str, deliver: Deliver) -> Callable[[], None]:
        self._subscribers[topic].append(deliver)

        def unsubscribe() -> None:
            subscribers = self._subscribers.get(topic)
            if subscribers and deliver in subscribers:
                subscribers.remove(deliver)
                if not subscribers:
                    del self._subscribers[topic]

        return unsubscribe

    def clear(self) -> None:
        self._subscribers.clear()


class MemoryBroker(Broker):
    """One process: both interfaces, with nothing shared beyond it."""

    def __init__(self) -> None:
        self._topics = LocalTopics()
        self._groups = Groups()

    @property
    def available(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._topics.clear()

    async def publish(self, topic: str, frame: str) -> None:
        self._topics.deliver(topic, frame)

    def subscribe(self, topic: str, deliver: Deliver) -> Callable[[], None]:
        return self._topics.subscribe(topic, deliver)

    async def join(self, group: str, member_id: str, capacity: int | None) -> Admission:
        admission = self._groups.join(group, member_id, capacity)
        if admission.admitted:
            self._announce(group, admission.users, admission.capacity)
        return admission

    async def leave(self, group: str, member_id: str) -> Departure:
        departure = self._groups.leave(group, member_id)
        if departure.removed:
            self._announce(group, departure.users, departure.capacity)
        return departure

    async def count(self, group: str) -> int:
        return self._groups.count(group)

    def _announce(self, group: str, users: int, capacity: int | None) -> None:
        self._topics.deliver(presence_topic(group), presence_frame(users, capacity))
