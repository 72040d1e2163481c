"""What only the Redis broker promises: several processes (brokers with their own node ids)
act as one, a dead one stops counting within its lease, and an outage of Redis degrades to
local service and heals by itself."""

import asyncio
import logging
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from src.broker.embedded_redis import EmbeddedRedis
from src.broker.presence import decode_presence, presence_topic
from src.broker.redis import Link, RedisBroker
from src.db.embedded import free_port
from src.errors import BrokerUnavailable
from tests.broker.test_base import Inbox
from tests.redisd import redis_server


def users_reach(expected: int) -> Callable[[list[str]], bool]:
    """Done once the latest announcement counts `expected` members."""
    return lambda frames: bool(frames) and decode_presence(frames[-1]).users == expected


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def pair(redis_url: str, prefix: str) -> AsyncIterator[tuple[RedisBroker, RedisBroker]]:
    """Two brokers on one Redis, as two processes would be."""
    a = RedisBroker(redis_url, ttl_s=5, node_id="a", prefix=prefix)
    b = RedisBroker(redis_url, ttl_s=5, node_id="b", prefix=prefix)
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()


async def kill(broker: RedisBroker) -> None:
    """What kill -9 leaves behind: its counts and leases in Redis, nothing withdrawn."""
    broker.state = Link.STOPPED
    for task in broker._tasks:
        task.cancel()
    await asyncio.gather(*broker._tasks, return_exceptions=True)
    assert broker._redis is not None
    await broker._redis.aclose()


async def test_two_brokers_count_one_group_together(
    pair: tuple[RedisBroker, RedisBroker],
) -> None:
    """Members joined through either broker make one count, announced to both."""
    a, b = pair
    seen_by_a, seen_by_b = Inbox(), Inbox()
    a.subscribe(presence_topic("counter"), seen_by_a)
    b.subscribe(presence_topic("counter"), seen_by_b)
    await a.join("counter", "a-1", None)
    await b.join("counter", "b-1", None)
    await a.join("counter", "a-2", None)
    assert await a.count("counter") == await b.count("counter") == 3
    for inbox in (seen_by_a, seen_by_b):
        assert [decode_presence(f).users for f in await inbox.until(3)] == [1, 2, 3]
    await b.leave("counter", "b-1")
    await seen_by_a.wait_for(users_reach(2))


async def test_a_frame_published_by_one_broker_reaches_the_other(
    pair: tuple[RedisBroker, RedisBroker],
) -> None:
    """Broadcasts span processes, in each sender's order."""
    a, b = pair
    inbox = Inbox()
    b.subscribe("broadcast", inbox)
    for i in range(50):
        await a.publish("broadcast", f"m{i}")
    assert await inbox.until(50) == [f"m{i}" for i in range(50)]


async def test_joins_spread_over_two_brokers_never_exceed_the_capacity(
    pair: tuple[RedisBroker, RedisBroker],
) -> None:
    """60 simultaneous joins, half through each broker, to a room of 5 admit exactly 5."""
    a, b = pair
    joins = [(a if i % 2 else b).join("room:x", f"m{i}", 5) for i in range(60)]
    results = await asyncio.gather(*joins)
    assert sum(r.admitted for r in results) == 5
    assert all(r.users == 5 and r.capacity == 5 for r in results if not r.admitted)
    assert await a.count("room:x") == await b.count("room:x") == 5


async def test_a_dead_broker_stops_counting_within_its_lease(redis_url: str, prefix: str) -> None:
    """Killed without leaving, a broker's members are dropped by the survivors' heartbeat
    within the lease (1 s here), and the survivor announces it."""
    ttl = 1.0
    survivor = RedisBroker(redis_url, ttl_s=ttl, node_id="survivor", prefix=prefix)
    doomed = RedisBroker(redis_url, ttl_s=ttl, node_id="doomed", prefix=prefix)
    await survivor.start()
    await doomed.start()
    try:
        inbox = Inbox()
        survivor.subscribe(presence_topic("counter"), inbox)
        await survivor.join("counter", "s-1", None)
        for i in range(3):
            await doomed.join("counter", f"d-{i}", None)
        await inbox.wait_for(users_reach(4))
        await kill(doomed)
        killed = time.monotonic()
        await inbox.wait_for(users_reach(1), within=ttl + 2)
        assert time.monotonic() - killed < ttl + 0.5  # the lease, plus scheduling slack
        assert await survivor.count("counter") == 1
    finally:
        await survivor.stop()


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    """A Redis this test may kill and restart (same port) without disturbing the others."""
    with redis_server() as server:
        yield server


async def test_redis_outage_degrades_to_local_service_then_heals(
    own_redis: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis killed: frames still reach local subscribers, /counter joins count locally,
    room joins raise BrokerUnavailable; restarted: both brokers recover by themselves and
    the count is exact again. One log line when the outage starts, one when it ends."""
    caplog.set_level(logging.INFO, logger="catalog.broker")
    a = RedisBroker(own_redis.url, ttl_s=5, node_id="a")
    b = RedisBroker(own_redis.url, ttl_s=5, node_id="b")
    await a.start()
    await b.start()
    try:
        counts, frames = Inbox(), Inbox()
        a.subscribe(presence_topic("counter"), counts)
        a.subscribe("broadcast", frames)
        await a.join("counter", "a-1", None)
        await b.join("counter", "b-1", None)
        await counts.wait_for(users_reach(2))

        own_redis.stop(signal.SIGKILL)
        await a.publish("broadcast", "during the outage")  # fails over to local delivery
        assert await frames.until(1) == ["during the outage"]
        assert not a.available
        with pytest.raises(BrokerUnavailable):
            await a.join("room:r", "a-2", 5)
        assert (await a.join("counter", "a-3", None)).admitted
        await counts.wait_for(users_reach(2))  # a's own two, announced locally
        assert await a.count("counter") == 2
        await a.leave("counter", "a-1")
        await a.publish("broadcast", "still local")

        own_redis.start()  # same port, empty: every count is rebuilt from the brokers
        await counts.wait_for(users_reach(2), within=10)  # a-3 and b-1, across both
        assert a.available and await a.count("counter") == 2
        await b.join("counter", "b-2", None)
        await counts.wait_for(users_reach(3))
        assert (await a.join("room:r", "a-2", 5)).admitted
    finally:
        await a.stop()
        await b.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "catalog.broker"]
    lost = [line for line in lines if "unreachable" in line]
    back = [line for line in lines if "is back after" in line]
    assert len(lost) == len(back) == 2, lines  # one of each per broker, whatever failed


async def test_start_up_without_redis_serves_locally_then_connects(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No Redis at start-up is not fatal: the broker serves locally and connects once a
    Redis appears, with the local members counted."""
    port = free_port()
    broker = RedisBroker(f"redis://127.0.0.1:{port}/0", ttl_s=5, node_id="early")
    await broker.start()
    folder = Path(tempfile.mkdtemp(prefix="catalog-test-redis-"))
    server = EmbeddedRedis(folder, port=port)
    try:
        assert not broker.available
        counts = Inbox()
        broker.subscribe(presence_topic("counter"), counts)
        assert (await broker.join("counter", "m1", None)).admitted
        await counts.wait_for(users_reach(1))
        server.start()
        await counts.wait_for(lambda frames: len(frames) >= 2, within=10)  # the resync
        assert broker.available and await broker.count("counter") == 1
    finally:
        await broker.stop()
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
