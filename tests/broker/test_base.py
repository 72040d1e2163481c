"""The Broker's behaviour, one suite for every implementation (memory and Redis).

Each test receives a started broker from the `broker` fixture, parametrized over the
implementations, and asserts only what the interfaces (`PubSub`, `Presence`) promise. Each
Redis broker works under a fresh key prefix (its keys and channels), so tests share one
server.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from src.broker.base import Broker
from src.broker.memory import MemoryBroker
from src.broker.presence import (
    Admission,
    Departure,
    PresenceEvent,
    decode_presence,
    presence_frame,
    presence_topic,
)
from src.broker.redis import RedisBroker


def redis_broker(request: pytest.FixtureRequest) -> Broker:
    url = request.getfixturevalue("redis_url")
    return RedisBroker(url, ttl_s=5, node_id="n1", prefix=f"test-{uuid.uuid4().hex[:8]}:")


IMPLEMENTATIONS: dict[str, Callable[[pytest.FixtureRequest], Broker]] = {
    "memory": lambda _: MemoryBroker(),
    "redis": redis_broker,
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    instance = IMPLEMENTATIONS[request.param](request)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


class Inbox:
    """Frames delivered to one subscriber, awaitable without polling."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, frame: str) -> None:
        self.frames.append(frame)
        self._changed.set()

    async def until(self, count: int) -> list[str]:
        return await self.wait_for(lambda frames: len(frames) >= count)

    async def wait_for(self, done: Callable[[list[str]], bool], within: float = 2) -> list[str]:
        """The frames, once `done(frames)` holds (checked at each new frame)."""
        async with asyncio.timeout(within):
            while not done(self.frames):
                self._changed.clear()
                await self._changed.wait()
        return self.frames


async def test_publish_reaches_every_subscriber_in_order(broker: Broker) -> None:
    """Two subscribers of a topic each get every frame, in publish order; others get none."""
    a, b, other = Inbox(), Inbox(), Inbox()
    broker.subscribe("t", a)
    broker.subscribe("t", b)
    broker.subscribe("u", other)
    for i in range(100):
        await broker.publish("t", f"m{i}")
    expected = [f"m{i}" for i in range(100)]
    assert await a.until(100) == expected
    assert await b.until(100) == expected
    await broker.publish("u", "last")  # delivered after everything published before it
    assert await other.until(1) == ["last"]


async def test_unsubscribed_callback_gets_nothing_more(broker: Broker) -> None:
    """After unsubscribe, frames go to the remaining subscribers only."""
    gone, staying = Inbox(), Inbox()
    unsubscribe = broker.subscribe("t", gone)
    broker.subscribe("t", staying)
    await broker.publish("t", "1")
    await gone.until(1)
    unsubscribe()
    await broker.publish("t", "2")
    assert await staying.until(2) == ["1", "2"]
    assert gone.frames == ["1"]


async def test_presence_changes_are_announced_in_order(broker: Broker) -> None:
    """Each join and leave announces the group's new count on its presence topic."""
    events = Inbox()
    broker.subscribe(presence_topic("g"), events)
    assert await broker.join("g", "m1", None) == Admission(True, 1, None)
    assert await broker.join("g", "m2", None) == Admission(True, 2, None)
    assert await broker.leave("g", "m1") == Departure(True, 1, None)
    frames = await events.until(3)
    assert [decode_presence(f) for f in frames] == [
        PresenceEvent(1, None),
        PresenceEvent(2, None),
        PresenceEvent(1, None),
    ]
    assert await broker.count("g") == 1


async def test_announcements_are_presence_frames(broker: Broker) -> None:
    """Every implementation announces with the one encoder: the frames are presence_frame's."""
    events = Inbox()
    broker.subscribe(presence_topic("room"), events)
    await broker.join("room", "m1", 5)
    await broker.leave("room", "m1")
    assert await events.until(2) == [presence_frame(1, 5), presence_frame(0, 5)]


async def test_leaving_twice_changes_nothing_and_announces_nothing(broker: Broker) -> None:
    """A member that is not there is not removed, and nobody is told."""
    events = Inbox()
    broker.subscribe(presence_topic("g"), events)
    await broker.join("g", "m1", None)
    await broker.join("g", "m2", None)
    assert (await broker.leave("g", "m1")).removed
    assert await broker.leave("g", "m1") == Departure(False, 1, None)
    await broker.leave("g", "m2")
    assert [decode_presence(f).users for f in await events.until(4)] == [1, 2, 1, 0]


async def test_concurrent_joins_never_exceed_the_capacity(broker: Broker) -> None:
    """50 simultaneous joins to a room of 5 admit exactly 5; the rest see it full."""
    results = await asyncio.gather(*(broker.join("room", f"m{i}", 5) for i in range(50)))
    assert sum(r.admitted for r in results) == 5
    assert all(r == Admission(False, 5, 5) for r in results if not r.admitted)
    assert await broker.count("room") == 5


async def test_first_member_fixes_the_capacity_until_the_group_empties(broker: Broker) -> None:
    """A later, larger capacity does not change the room's; an emptied room starts afresh."""
    await broker.join("room", "m1", 1)
    assert await broker.join("room", "m2", 10) == Admission(False, 1, 1)
    await broker.leave("room", "m1")
    assert await broker.join("room", "m3", 10) == Admission(True, 1, 10)


async def test_membership_leaves_when_the_block_ends(broker: Broker) -> None:
    """`async with membership(...)` joins, and leaves on exit even when the block raises."""
    with pytest.raises(RuntimeError, match="handler failed"):
        async with broker.membership("g", "m1") as admission:
            assert admission.admitted and await broker.count("g") == 1
            raise RuntimeError("handler failed")
    assert await broker.count("g") == 0


async def test_refused_membership_leaves_nobody(broker: Broker) -> None:
    """A member refused for capacity is not counted, and its exit removes no one else."""
    async with broker.membership("room", "m1", 1):
        async with broker.membership("room", "m2", 1) as refused:
            assert not refused.admitted
        assert await broker.count("room") == 1
