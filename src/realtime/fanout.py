"""Fan-out without head-of-line blocking.

Each `Peer` (one accepted WebSocket) has a bounded send queue and one writer task; sending
to a peer only enqueues. A peer whose queue overflows is closed with 1008 and nobody else
notices. The `Registry` maps local topics to peers: a frame from the broker is rendered
(encoded) once per topic and enqueued on every peer; a coalesced topic (the /counter count)
sends at most one frame per window and always ends on the latest value.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from lihil.vendors import WebSocket, WebSocketDisconnect

from src.realtime.broker import Broker
from src.realtime.protocol import Close

log = logging.getLogger("catalog.realtime")
CLOSE_TIMEOUT = 60.0


class Peer:
    """One accepted socket: reads through `receive`, writes through a bounded queue."""

    def __init__(self, ws: WebSocket, *, queue_limit: int, max_message_bytes: int) -> None:
        self.ws = ws
        self.queue_limit = queue_limit
        self.max_message_bytes = max_message_bytes
        self.close_code: int | None = None
        self._queue: deque[str] = deque()
        self._ready = asyncio.Event()
        self._paused = False
        self._writer = asyncio.create_task(self._write(), name="ws-writer")
        self._closer: asyncio.Task[None] | None = None

    @property
    def open(self) -> bool:
        return self.close_code is None

    @property
    def closing(self) -> "asyncio.Task[None] | None":
        """The task sending this peer's close frame, once `close` was called."""
        return self._closer

    def send(self, frame: str) -> None:
        """Enqueue a frame; never blocks. Overflow closes this peer with 1008."""
        if not self.open:
            return
        if len(self._queue) >= self.queue_limit:
            self.close(Close.POLICY, "too slow: send queue overflowed")
            return
        self._queue.append(frame)
        self._ready.set()

    def pause(self) -> None:
        """Hold queued frames until `resume` (so a welcome can go out first)."""
        self._paused = True

    def resume(self, first: str | None = None) -> None:
        if first is not None and self.open:
            self._queue.appendleft(first)
        self._paused = False
        self._ready.set()

    def close(self, code: int, reason: str = "") -> None:
        """Close now: pending frames are dropped, the close frame goes out at once."""
        if not self.open:
            return
        self.close_code = code
        self._writer.cancel()
        self._closer = asyncio.create_task(self._close(code, reason), name="ws-close")

    async def _close(self, code: int, reason: str) -> None:
        # A client that does not read cannot receive the close frame either: it goes out
        # when the client reads again, or uvicorn's ping timeout tears the connection down.
        try:
            await asyncio.wait_for(self.ws.close(code, reason), timeout=CLOSE_TIMEOUT)
        except Exception as exc:  # the client may already be gone; nothing left to do
            log.debug("close %s failed: %r", code, exc)

    async def receive(self, *, text_only: bool = True) -> str | None:
        """The next text frame, or None once the socket is closed (by either side).

        A binary frame closes with 1003 where only text is accepted (else it is skipped);
        a frame over the size limit closes with 1009.
        """
        while self.open:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                break
            if message["type"] == "websocket.disconnect":
                self.close_code = self.close_code or message.get("code", Close.NORMAL)
                self._writer.cancel()
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
        """Stop the writer and wait for a pending close; called once the handler is done."""
        self._writer.cancel()
        if self.open:
            self.close(Close.NORMAL)
        for task in (self._writer, self._closer):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)

    async def _write(self) -> None:
        try:
            while True:
                while self._paused or not self._queue:
                    self._ready.clear()
                    await self._ready.wait()
                await self.ws.send_text(self._queue.popleft())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client went away mid-send; the reader will see it
            log.debug("writer stopped: %r", exc)


Render = Callable[[str], str]


@dataclass
class _Topic:
    render: Render | None
    coalesce: bool
    unsubscribe: Callable[[], None] = lambda: None
    peers: dict[Peer, str | None] = field(default_factory=dict)  # peer -> last coalesced frame
    latest: str | None = None
    last_flush: float = float("-inf")
    timer: asyncio.TimerHandle | None = None


class Registry:
    """Local peers per topic, and every open peer (for a graceful 1001 at shutdown)."""

    def __init__(self, broker: Broker, *, window_ms: int) -> None:
        self.broker = broker
        self.window = window_ms / 1000
        self.peers: set[Peer] = set()
        self._topics: dict[str, _Topic] = {}

    def attach(
        self, topic: str, peer: Peer, *, render: Render | None = None, coalesce: bool = False
    ) -> Callable[[], None]:
        """Deliver `topic`'s frames to `peer` until the returned detach is called."""
        t = self._topics.get(topic)
        if t is None:
            t = self._topics[topic] = _Topic(render, coalesce)
            t.unsubscribe = self.broker.subscribe(topic, lambda frame: self._deliver(topic, frame))
        t.peers[peer] = None

        def detach() -> None:
            t.peers.pop(peer, None)
            if not t.peers and self._topics.get(topic) is t:
                t.unsubscribe()
                if t.timer:
                    t.timer.cancel()
                del self._topics[topic]

        return detach

    def _deliver(self, topic: str, frame: str) -> None:
        t = self._topics.get(topic)
        if t is None:
            return
        rendered = t.render(frame) if t.render else frame  # encoded once for every peer
        if not t.coalesce:
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
        for peer in tuple(self.peers):
            peer.close(code, reason)
        return [p.closing for p in self.peers if p.closing is not None]
