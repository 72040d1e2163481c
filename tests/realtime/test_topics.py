"""Fan-out mechanics with in-memory sockets: bounded queues, 1008, coalescing, encode once."""

import asyncio
from contextlib import ExitStack

import pytest

from src.broker.memory import MemoryBroker
from src.realtime.peers import PeerState
from src.realtime.topics import Delivery, Registry
from tests.realtime.test_peers import GatedSocket, RecordingSocket, make_peer, until


def make_registry(broker: MemoryBroker, window_ms: int = 0) -> Registry:
    return Registry(broker, window_ms=window_ms, queue_limit=4, max_message_bytes=1024)


def upper(topic: str, frame: str) -> str:
    return frame.upper()


COALESCED = Delivery(coalesce=True)


async def test_slow_peer_is_closed_1008_and_others_get_everything() -> None:
    """A peer that never reads overflows and is closed; a fast one receives every frame."""
    broker = MemoryBroker()
    registry = make_registry(broker)
    slow, fast = RecordingSocket(stuck=True), RecordingSocket()
    slow_peer, fast_peer = make_peer(slow), make_peer(fast, limit=100)
    with registry.subscription("t", slow_peer), registry.subscription("t", fast_peer):
        for i in range(20):
            await broker.publish("t", f"m{i}")
        await until(lambda: slow.closed is not None and len(fast.frames) == 20)
    assert slow.closed == (1008, "too slow: send queue overflowed")
    assert fast.frames == [f"m{i}" for i in range(20)]
    await slow_peer.finish()
    await fast_peer.finish()


async def test_coalesced_topic_sends_at_most_one_frame_per_window_and_ends_on_latest() -> None:
    """A burst of 100 changes reaches a peer as a handful of frames ending on the last."""
    broker = MemoryBroker()
    registry = make_registry(broker, window_ms=30)
    ws = RecordingSocket()
    peer = make_peer(ws, limit=1000)
    with registry.subscription("c", peer, COALESCED):
        for i in range(1, 101):
            await broker.publish("c", str(i))
        await until(lambda: ws.frames[-1:] == ["100"])
    assert ws.frames[0] == "1" and len(ws.frames) <= 3
    await peer.finish()


async def test_coalesced_topic_gives_a_new_peer_the_current_value() -> None:
    """A newcomer gets the value even when it equals what others were last sent."""
    broker = MemoryBroker()
    registry = make_registry(broker)
    a, b = RecordingSocket(), RecordingSocket()
    pa, pb = make_peer(a), make_peer(b)
    with registry.subscription("c", pa, COALESCED):
        await broker.publish("c", "3")
        with registry.subscription("c", pb, COALESCED):
            await broker.publish("c", "3")
            await until(lambda: b.frames == ["3"])
    assert a.frames == ["3"]
    await pa.finish()
    await pb.finish()


async def test_frames_are_rendered_once_per_topic() -> None:
    """The renderer runs once per published frame, whatever the number of peers."""
    broker = MemoryBroker()
    registry = make_registry(broker)
    calls: list[str] = []

    def render(topic: str, frame: str) -> str:
        calls.append(frame)
        return f"{topic}:{frame.upper()}"

    delivery = Delivery(render=render)
    sockets = [RecordingSocket() for _ in range(50)]
    peers = [make_peer(s) for s in sockets]
    with ExitStack() as stack:
        for p in peers:
            stack.enter_context(registry.subscription("t", p, delivery))
        await broker.publish("t", "hi")
        await until(lambda: all(s.frames == ["t:HI"] for s in sockets))
    assert calls == ["hi"]
    for p in peers:
        await p.finish()


async def test_leaving_the_block_stops_delivery_to_that_peer_only() -> None:
    """After its subscription block a peer gets nothing more; the others keep receiving."""
    broker = MemoryBroker()
    registry = make_registry(broker)
    gone, staying = RecordingSocket(), RecordingSocket()
    pg, ps = make_peer(gone), make_peer(staying)
    with registry.subscription("t", ps):
        with registry.subscription("t", pg):
            await broker.publish("t", "both")
            await until(lambda: gone.frames == ["both"] and staying.frames == ["both"])
        await broker.publish("t", "one")
        await until(lambda: staying.frames == ["both", "one"])
    await broker.publish("t", "none")  # nobody subscribed: delivered synchronously to no one
    await pg.finish()
    await ps.finish()
    assert gone.frames == ["both"] and staying.frames == ["both", "one"]


async def test_a_topic_is_delivered_one_way_only() -> None:
    """A second subscription asking another Delivery for a live topic is a bug."""
    registry = make_registry(MemoryBroker())
    a, b = make_peer(RecordingSocket()), make_peer(RecordingSocket())
    with registry.subscription("t", a, Delivery(render=upper)):
        with pytest.raises(ValueError, match="delivered as"), registry.subscription("t", b):
            pass
    with registry.subscription("t", b):  # the topic was dropped with its last peer
        pass
    await a.finish()
    await b.finish()


async def test_registry_closes_every_peer_it_tracks() -> None:
    """close_all sends each connected peer the given code; a closed peer drops new frames."""
    registry = make_registry(MemoryBroker())
    sockets = [RecordingSocket() for _ in range(3)]
    contexts = [registry.connect(s) for s in sockets]  # type: ignore[arg-type]
    peers = [await c.__aenter__() for c in contexts]
    assert registry.open_peers == 3
    closers = registry.close_all(1001, "server shutting down")
    await asyncio.gather(*closers)
    assert all(s.closed == (1001, "server shutting down") for s in sockets)
    assert all(p.state is PeerState.CLOSED for p in peers)
    peers[0].send("late")
    for c in contexts:
        await c.__aexit__(None, None, None)
    assert registry.open_peers == 0 and all(s.frames == [] for s in sockets)


async def test_writable_peers_are_written_without_a_task() -> None:
    """A broadcast to peers that keep up creates no task at all (no switch per frame)."""
    broker = MemoryBroker()
    registry = make_registry(broker)
    sockets = [RecordingSocket() for _ in range(100)]
    peers = [make_peer(s) for s in sockets]
    with ExitStack() as stack:
        for p in peers:
            stack.enter_context(registry.subscription("t", p))
        before = len(asyncio.all_tasks())
        await broker.publish("t", "hi")
        assert len(asyncio.all_tasks()) == before
        assert all(s.frames == ["hi"] for s in sockets)  # written in the publisher's step
    for p in peers:
        await p.finish()


async def test_a_slow_reader_of_a_coalesced_topic_gets_only_the_latest_value() -> None:
    """Values offered while a peer cannot write replace each other: no queue, no 1008."""
    broker = MemoryBroker()
    registry = make_registry(broker)
    slow = GatedSocket()
    peer = make_peer(slow, limit=2)
    with registry.subscription("c", peer, COALESCED):
        for i in range(1, 50):
            await broker.publish("c", str(i))
            await asyncio.sleep(0)  # let each round run: every value reaches the peer
        slow.gate.set()
        await until(lambda: slow.frames[-1:] == ["49"])
    # The blocked first value, then only the latest (at most one more caught mid-way).
    assert slow.frames[0] == "1" and slow.frames[-1] == "49" and len(slow.frames) <= 3
    assert slow.closed is None
    await peer.finish()


async def test_a_join_storm_costs_a_small_multiple_of_the_joins_in_frames() -> None:
    """1,000 peers join one by one, each join changing the count: every peer ends on the
    true count, and all of them together receive at most 3 frames per join."""
    broker = MemoryBroker()
    registry = make_registry(broker, window_ms=20)
    sockets = [RecordingSocket() for _ in range(1000)]
    peers = [make_peer(s) for s in sockets]
    with ExitStack() as stack:
        for n, p in enumerate(peers, 1):
            stack.enter_context(registry.subscription("c", p, COALESCED))
            await broker.publish("c", str(n))
        await until(lambda: all(s.frames[-1:] == ["1000"] for s in sockets))
    frames = sum(len(s.frames) for s in sockets)
    assert frames <= 3 * len(peers), frames
    assert all(s.frames[0] for s in sockets)  # every newcomer got a value when it joined
    for p in peers:
        await p.finish()
