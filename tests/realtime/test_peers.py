"""A Peer with in-memory sockets: held frames, the welcome first, coalesced values."""

import asyncio
from typing import Any

from src.realtime.peers import Peer, PeerState


class RecordingSocket:
    """Records frames; `stuck` makes every send hang like a client that never reads."""

    def __init__(self, *, stuck: bool = False) -> None:
        self.frames: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.stuck = stuck

    async def accept(self) -> None:
        return None

    async def send(self, message: dict[str, Any]) -> None:
        """An ASGI websocket.send; like uvicorn's, it suspends only while it cannot write."""
        if self.stuck:
            await asyncio.Event().wait()
        self.frames.append(message["text"])
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


class GatedSocket(RecordingSocket):
    """A client that stops reading until `gate` is set (uvicorn's send then suspends)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        await self.gate.wait()
        await super().send(message)


async def test_held_peer_writes_its_first_frame_before_the_queued_ones() -> None:
    """hold() queues frames; release(first) writes `first`, then the queue, in order."""
    ws = RecordingSocket()
    peer = make_peer(ws, limit=10)
    states = []
    peer.hold()
    states.append(peer.state)
    peer.send("count 2")
    peer.release(first="welcome")
    await until(lambda: ws.frames == ["welcome", "count 2"])
    states.append(peer.state)
    await peer.finish()
    states.append(peer.state)
    assert states == [PeerState.HELD, PeerState.OPEN, PeerState.CLOSED]
    assert ws.closed == (1000, "")


async def test_a_value_offered_while_held_goes_out_on_release() -> None:
    """A coalesced value that arrives before the welcome is written after it, not lost."""
    ws = RecordingSocket()
    peer = make_peer(ws, limit=10)
    peer.hold()
    peer.offer({"type": "websocket.send", "text": "3"})
    peer.release(first="welcome")
    await until(lambda: ws.frames == ["welcome", "3"])
    peer.offer({"type": "websocket.send", "text": "4"})  # and the next one is not stuck
    await until(lambda: ws.frames == ["welcome", "3", "4"])
    await peer.finish()
