"""The Broker: topics (publish/subscribe) and presence (join/leave/count with admission).

`MemoryBroker` serves one process. `RedisBroker` (`src.realtime.redis_broker`) makes every
process sharing one Redis act as one service: global counts and capacities, broadcasts to
every process; while Redis is unreachable each process serves its own clients
(`available` is False, a join that needs a global capacity raises `BrokerUnavailable`).
The shared behaviour suite in tests/realtime/test_broker.py runs against both.

Presence changes are announced by the broker itself on the topic `presence_topic(group)`,
as an encoded `PresenceEvent`, in the same atomic step as the change, so announcements of
one group are delivered in the order the changes happened.

LIHIL TRAP (Protocol/ABC types cannot be injected): Broker is a plain base class, so
`broker: Broker` in a handler resolves to the registered instance.
"""

from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from src.config import Settings
from src.errors import BrokerUnavailable
from src.realtime.presence import Admission, Departure, Presence
from src.realtime.protocol import PresenceEvent, encode

__all__ = ["Broker", "BrokerUnavailable", "LocalTopics", "MemoryBroker", "presence_topic"]

Deliver = Callable[[str], None]


def presence_topic(group: str) -> str:
    return f"presence:{group}"


def presence_frame(users: int, capacity: int | None) -> str:
    return encode(PresenceEvent(users=users, capacity=capacity)).decode()


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


class Broker:
    @property
    def available(self) -> bool:
        """False while the broker cannot reach what it shares with other processes."""
        return True

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def publish(self, topic: str, frame: str) -> None:
        """Deliver `frame` to every subscriber of `topic`, in publish order."""
        raise NotImplementedError

    def subscribe(self, topic: str, deliver: Deliver) -> Callable[[], None]:
        """Call `deliver(frame)` for each frame on `topic`; returns the unsubscriber.

        `deliver` must not block: it runs on the broker's delivery path. Handlers do not
        call this: they use `Registry.subscription`, which shares one subscription per topic
        among the process's sockets.
        """
        raise NotImplementedError

    async def join(self, group: str, member_id: str, capacity: int | None) -> Admission:
        """Admit `member_id` unless the group is full; the first member fixes the capacity.

        Raises BrokerUnavailable when a capacity cannot be enforced (Redis unreachable).
        """
        raise NotImplementedError

    async def leave(self, group: str, member_id: str) -> Departure:
        raise NotImplementedError

    async def count(self, group: str) -> int:
        raise NotImplementedError

    @asynccontextmanager
    async def membership(
        self, group: str, member_id: str, capacity: int | None = None
    ) -> AsyncIterator[Admission]:
        """Join for the length of the block (when admitted: check `admitted`), then leave."""
        admission = await self.join(group, member_id, capacity)
        try:
            yield admission
        finally:
            if admission.admitted:
                await self.leave(group, member_id)


class MemoryBroker(Broker):
    """One process: subscribers are callbacks, presence is the pure `Presence` core."""

    def __init__(self) -> None:
        self._topics = LocalTopics()
        self._presence = Presence()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._topics.clear()

    async def publish(self, topic: str, frame: str) -> None:
        self._topics.deliver(topic, frame)

    def subscribe(self, topic: str, deliver: Deliver) -> Callable[[], None]:
        return self._topics.subscribe(topic, deliver)

    async def join(self, group: str, member_id: str, capacity: int | None) -> Admission:
        admission = self._presence.join(group, member_id, capacity)
        if admission.admitted:
            self._announce(group, admission.users, admission.capacity)
        return admission

    async def leave(self, group: str, member_id: str) -> Departure:
        departure = self._presence.leave(group, member_id)
        if departure.removed:
            self._announce(group, departure.users, departure.capacity)
        return departure

    async def count(self, group: str) -> int:
        return self._presence.count(group)

    def _announce(self, group: str, users: int, capacity: int | None) -> None:
        self._topics.deliver(presence_topic(group), presence_frame(users, capacity))


def build_broker(settings: Settings, node_id: str) -> Broker:
    """One process (memory), or every process sharing the Redis at REDIS_URL."""
    from src.realtime.redis_broker import RedisBroker  # (it imports this module)

    if settings.BROKER == "memory":
        return MemoryBroker()
    assert settings.REDIS_URL, "Settings refuse BROKER=redis without REDIS_URL"
    return RedisBroker(settings.REDIS_URL, ttl_s=settings.PRESENCE_TTL_S, node_id=node_id)
