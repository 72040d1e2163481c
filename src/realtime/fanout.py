"""Fan-out without head-of-line blocking.

Each `Peer` (one accepted WebSocket) has a bounded send queue and one writer task; sending
to a peer only enqueues. A peer whose queue overflows is closed with 1008 and nobody else
notices. The `Registry` owns every local peer and maps topics to peers: a frame from the
broker is rendered (encoded) once per topic and enqueued on every subscribed peer; a
coalesced topic (the /counter count) sends at most one frame per window and always ends on
the latest value.
"""

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

from lihil.vendors import WebSocket, WebSocketDisconnect

from src.realtime.broker import Broker
from src.realtime.protocol import Close

log = logging.getLogger("catalog.realtime")
CLOSE_TIMEOUT = 60.0


class PeerState(enum.Enum):
    """A peer's life, one state at a time (like websockets' `State`)."""

    HELD = "held"  # accepted; frames queue up but wait (so a welcome can go out first)
    OPEN = "open"  # frames are written as they come
    CLOSING = "closing"  # our close frame is going out; new frames are dropped
    CLOSED = "closed"  # the connection is gone (either side closed it)


class Peer:
    """One accepted socket: reads through `receive`, writes through a bounded queue."""

    def __init__(self, ws: WebSocket, *, queue_limit: int, max_message_bytes: int) -> None:
        self.ws = ws
        self.queue_limit = queue_limit
        self.max_message_bytes = max_message_bytes
        self.state = PeerState.OPEN
        self.close_code: int | None = None  # set once CLOSING or CLOSED
        self.closing: asyncio.Task[None] | None = None  # the task sending our close frame
        self._queue: deque[str] = deque()
        self._ready = asyncio.Event()
        self._writer = asyncio.create_task(self._write(), name="ws-writer")

    @property
    def open(self) -> bool:
        return self.state in (PeerState.HELD, PeerState.OPEN)

    def send(self, frame: str) -> None:
        """Enqueue a frame; never blocks. Overflow closes this peer with 1008."""
        if not self.open:
            return
        if len(self._queue) >= self.queue_limit:
            self.close(Close.POLICY, "too slow: send queue overflowed")
            return
        self._queue.append(frame)
        self._ready.set()

    def hold(self) -> None:
        """Queue frames without writing them until `release` (so a welcome can go first)."""
        if self.state is PeerState.OPEN:
            self.state = PeerState.HELD

    def release(self, first: str | None = None) -> None:
        """Write `first`, then everything queued while held."""
        if self.state is not PeerState.HELD:
            return
        if first is not None:
            self._queue.appendleft(first)
        self.state = PeerState.OPEN
        self._ready.set()

    def close(self, code: int, reason: str = "") -> None:
        """Close now: pending frames are dropped, the close frame goes out at once."""
        if not self.open:
            return
        self.state, self.close_code = PeerState.CLOSING, code
        self._writer.cancel()
        self.closing = asyncio.create_task(self._close(code, reason), name="ws-close")

    async def _close(self, code: int, reason: str) -> None:
        # A client that does not read cannot receive the close frame either: it goes out
        # when the client reads again, or uvicorn's ping timeout tears the connection down.
        try:
            await asyncio.wait_for(self.ws.close(code, reason), timeout=CLOSE_TIMEOUT)
        except Exception as exc:  # the client may already be gone; nothing left to do
            log.debug("close %s failed: %r", code, exc)
        finally:
            self.state = PeerState.CLOSED

    def _closed_by_client(self, code: int) -> None:
        self.state, self.close_code = PeerState.CLOSED, self.close_code or code
        self._writer.cancel()

    async def receive(self, *, text_only: bool = True) -> str | None:
        """The next text frame, or None once the socket is closed (by either side).

        A binary frame closes with 1003 where only text is accepted (else it is skipped);
        a frame over the size limit closes with 1009.
        """
        while self.open:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                self._closed_by_client(Close.ABNORMAL)
                break
            if message["type"] == "websocket.disconnect":
                self._closed_by_client(message.get("code", Close.NORMAL))
                break
            text, data = message.get("text"), message.get("bytes")
            if self._too_big(text, data):
                self.close(Close.TOO_BIG, f"message larger than {self.max_message_bytes} bytes")
            elif text is not None:
                return str(text)
            elif text_only:
                self.close(Close.UNSUPPORTED, "binary frames are not accepted; send text")
        return None

    def _too_big(self, text: str | None, data: bytes | None) -> bool:
        limit = self.max_message_bytes
        if data is not None:
            return len(data) > limit
        # UTF-8 needs at most 4 bytes a character: only long texts are worth encoding.
        return text is not None and len(text) * 4 > limit and len(text.encode()) > limit

    async def finish(self) -> None:
        """Close (1000 unless closed already), stop the writer, wait for the close frame."""
        self.close(Close.NORMAL)
        self._writer.cancel()
        for task in (self._writer, self.closing):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        self.state = PeerState.CLOSED

    async def _write(self) -> None:
        try:
            while True:
                while self.state is PeerState.HELD or not self._queue:
                    self._ready.clear()
                    await self._ready.wait()
                await self.ws.send_text(self._queue.popleft())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client went away mid-send; the reader will see it
            log.debug("writer stopped: %r", exc)


Render = Callable[[str, str], str]  # (topic, frame from the broker) -> frame for the peers


@dataclass(frozen=True)
class Delivery:
    """How a topic's frames reach local peers. One per topic: its first subscription fixes
    it, and a later subscription asking for another is a bug (ValueError)."""

    render: Render | None = None  # encode once per frame for every peer; None: as published
    coalesce: bool = False  # at most one frame per window, always ending on the latest


AS_PUBLISHED = Delivery()


@dataclass
class _Topic:
    delivery: Delivery
    unsubscribe: Callable[[], None] = lambda: None
    peers: dict[Peer, str | None] = field(default_factory=dict)  # peer -> last coalesced frame
    latest: str | None = None
    last_flush: float = float("-inf")
    timer: asyncio.TimerHandle | None = None


class Registry:
    """Every open local peer, and which topics each of them listens to."""

    def __init__(
        self, broker: Broker, *, window_ms: int, queue_limit: int, max_message_bytes: int
    ) -> None:
        self.broker = broker
        self.window = window_ms / 1000
        self.queue_limit = queue_limit
        self.max_message_bytes = max_message_bytes
        self._peers: set[Peer] = set()
        self._topics: dict[str, _Topic] = {}

    @property
    def open_peers(self) -> int:
        return len(self._peers)

    @asynccontextmanager
    async def connect(self, ws: WebSocket) -> AsyncIterator[Peer]:
        """Accept `ws` and track it as a Peer until the block ends; then close (1000 unless
        closed already) and forget it."""
        await ws.accept()
        peer = Peer(ws, queue_limit=self.queue_limit, max_message_bytes=self.max_message_bytes)
        self._peers.add(peer)
        try:
            yield peer
        finally:
            self._peers.discard(peer)
            await peer.finish()

    @contextmanager
    def subscription(
        self, topic: str, peer: Peer, delivery: Delivery = AS_PUBLISHED
    ) -> Iterator[None]:
        """Deliver `topic`'s frames to `peer` while the block runs."""
        t = self._topics.get(topic)
        if t is None:
            t = self._topics[topic] = _Topic(delivery)
            t.unsubscribe = self.broker.subscribe(topic, lambda frame: self._deliver(topic, frame))
        elif t.delivery != delivery:
            raise ValueError(f"topic {topic!r} is delivered as {t.delivery}, not {delivery}")
        t.peers[peer] = None
        try:
            yield
        finally:
            t.peers.pop(peer, None)
            if not t.peers and self._topics.get(topic) is t:
                t.unsubscribe()
                if t.timer:
                    t.timer.cancel()
                del self._topics[topic]

    def _deliver(self, topic: str, frame: str) -> None:
        t = self._topics.get(topic)
        if t is None:
            return
        render = t.delivery.render
        rendered = render(topic, frame) if render else frame  # encoded once for every peer
        if not t.delivery.coalesce:
            for peer in tuple(t.peers):
                peer.send(rendered)
            return
        t.latest = rendered
        if t.timer is None:
            delay = t.last_flush + self.window - time.monotonic()
            if delay <= 0:
                self._flush(t)
            else:
                t.timer = asyncio.get_running_loop().call_later(delay, self._flush, t)

    def _flush(self, t: _Topic) -> None:
        t.timer = None
        t.last_flush = time.monotonic()
        latest = t.latest
        if latest is None:
            return
        for peer, last in tuple(t.peers.items()):
            if last != latest:  # a peer that already shows this value gets nothing
                t.peers[peer] = latest
                peer.send(latest)

    def close_all(self, code: int, reason: str) -> list[asyncio.Task[None]]:
        """Close every open peer; returns the tasks sending their close frames."""
        for peer in tuple(self._peers):
            peer.close(code, reason)
        return [p.closing for p in self._peers if p.closing is not None]
