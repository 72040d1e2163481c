"""The broker's two interfaces, and the `Broker` handlers are given, which is both.

`PubSub`: topics, publish and subscribe (and the lifecycle: start, stop, available).
`Presence`: groups of members with counts and admission by capacity (join, leave, count,
and `membership`, the context manager handlers hold). Code that needs one of them depends
on that one: the Registry (`src.realtime.topics`) subscribes through a `PubSub`.

`MemoryBroker` (`src.broker.memory`) serves one process. `RedisBroker` (`src.broker.redis`)
makes every process sharing one Redis act as one service: global counts and capacities,
broadcasts to every process; while Redis is unreachable each process serves its own clients
(`available` is False, a join that needs a global capacity raises `BrokerUnavailable`).
Both implement both interfaces; the shared behaviour suite in tests/broker/test_base.py
runs against both.

Presence changes are announced by the broker itself on the topic `presence_topic(group)`,
as a frame from `presence_frame` (`src.broker.presence`), in the same atomic step as the
change, so announcements of one group are delivered in the order the changes happened.

LIHIL TRAP (Protocol/ABC types cannot be injected): `PubSub` and `Presence` are Protocols,
so a handler cannot be given one; it is given `Broker`, a plain class (neither a Protocol
nor an ABC) combining both, whose instance the app registers as a singleton.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from src.broker.presence import Admission, Departure

__all__ = ["Broker", "Deliver", "Presence", "PubSub"]

Deliver = Callable[[str], None]


class PubSub(Protocol):
    """Topics: every frame published on a topic reaches each of its subscribers, in order."""

    @property
    def available(self) -> bool:
        """False while the broker cannot reach what it shares with other processes."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, topic: str, frame: str) -> None:
        """Deliver `frame` to every subscriber of `topic`, in publish order."""
        ...

    def subscribe(self, topic: str, deliver: Deliver) -> Callable[[], None]:
        """Call `deliver(frame)` for each frame on `topic`; returns the unsubscriber.

        `deliver` must not block: it runs on the broker's delivery path. Handlers do not
        call this: they use `Registry.subscription`, which shares one subscription per topic
        among the process's sockets.
        """
        ...


class Presence(Protocol):
    """Groups of members, counted (across processes where the broker spans them), each
    change announced on the group's presence topic."""

    async def join(self, group: str, member_id: str, capacity: int | None) -> Admission:
        """Admit `member_id` unless the group is full; the first member fixes the capacity.

        Raises BrokerUnavailable when a capacity cannot be enforced (Redis unreachable).
        """
        ...

    async def leave(self, group: str, member_id: str) -> Departure: ...

    async def count(self, group: str) -> int: ...

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


class Broker(PubSub, Presence):
    """Topics and presence in one object: what handlers are injected (see the LIHIL TRAP
    above). Its subclasses implement every member of both interfaces (mypy refuses to
    build one that does not)."""
