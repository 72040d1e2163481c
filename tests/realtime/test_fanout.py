"""Fan-out mechanics with in-memory sockets: bounded queues, 1008, coalescing, encode once."""

import asyncio
from typing import Any

from src.realtime.broker import MemoryBroker
from src.realtime.fanout import Peer, Registry


class RecordingSocket:
    """Records frames; `stuck` makes every send hang like a client that never reads."""

    def __init__(self, *, stuck: bool = False) -> None:
        self.frames: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.stuck = stuck

    async def send_text(self, frame: str) -> None:
        if self.stuck:
            await asyncio.Event().wait()
        self.frames.append(frame)
        await changed()

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        await changed()


_changes: dict[asyncio.AbstractEventLoop, asyncio.Condition] = {}


def _condition() -> asyncio.Condition:
    return _changes.setdefault(asyncio.get_running_loop(), asyncio.Condition())


async def changed() -> None:
    async with _condition():
        _condition().notify_all()


def make_peer(ws: RecordingSocket, limit: int = 4) -> Peer:
    sock: Any = ws
    return Peer(sock, queue_limit=limit, max_message_bytes=1024)


async def until(predicate: Any) -> None:
    """Wait, without polling, until a socket change makes `predicate()` true."""
    async with asyncio.timeout(2), _condition():
        await _condition().wait_for(predicate)


async def test_slow_peer_is_closed_1008_and_others_get_everything() -> None:
    """A peer that never reads overflows and is closed; a fast one receives every frame."""
    broker = MemoryBroker()
    registry = Registry(broker, window_ms=0)
    slow, fast = RecordingSocket(stuck=True), RecordingSocket()
    slow_peer, fast_peer = make_peer(slow), make_peer(fast, limit=100)
    registry.attach("t", slow_peer)
    registry.attach("t", fast_peer)
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
    registry = Registry(broker, window_ms=30)
    ws = RecordingSocket()
    peer = make_peer(ws, limit=1000)
    registry.attach("c", peer, coalesce=True)
    for i in range(1, 101):
        await broker.publish("c", str(i))
    await until(lambda: ws.frames[-1:] == ["100"])
    assert ws.frames[0] == "1" and len(ws.frames) <= 3
    await peer.finish()


async def test_coalesced_topic_gives_a_new_peer_the_current_value() -> None:
    """A newcomer gets the value even when it equals what others were last sent."""
    broker = MemoryBroker()
    registry = Registry(broker, window_ms=0)
    a, b = RecordingSocket(), RecordingSocket()
    pa = make_peer(a)
    registry.attach("c", pa, coalesce=True)
    await broker.publish("c", "3")
    pb = make_peer(b)
    registry.attach("c", pb, coalesce=True)
    await broker.publish("c", "3")
    await until(lambda: b.frames == ["3"])
    assert a.frames == ["3"]
    await pa.finish()
    await pb.finish()


async def test_frames_are_rendered_once_per_topic() -> None:
    """The renderer runs once per published frame, whatever the number of peers."""
    broker = MemoryBroker()
    registry = Registry(broker, window_ms=0)
    calls: list[str] = []

    def render(frame: str) -> str:
        calls.append(frame)
        return frame.upper()

    sockets = [RecordingSocket() for _ in range(50)]
    peers = [make_peer(s) for s in sockets]
    for p in peers:
        registry.attach("t", p, render=render)
    await broker.publish("t", "hi")
    await until(lambda: all(s.frames == ["HI"] for s in sockets))
    assert calls == ["hi"]
    for p in peers:
        await p.finish()


async def test_detaching_the_last_peer_unsubscribes_from_the_broker() -> None:
    """No local peer, no broker subscription."""
    broker = MemoryBroker()
    registry = Registry(broker, window_ms=0)
    peer = make_peer(RecordingSocket())
    detach = registry.attach("t", peer)
    assert broker._subscribers["t"]
    detach()
    assert "t" not in broker._subscribers
    await peer.finish()
