"""One accepted WebSocket as a `Peer`: its state, its bounded send queue, its writer task.

Sending to a peer never blocks: a frame is written at once while the client reads, else
queued (bounded) behind a writer task that finishes the blocked send; a peer whose queue
overflows is closed with 1008 and nobody else notices. What reaches a peer, and when, is
decided by the `Registry` (`src.realtime.topics`).
"""

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any

from lihil.vendors import WebSocket, WebSocketDisconnect

from src.compat.starlette import send_now
from src.limits import Bucket
from src.realtime.protocol import Close

log = logging.getLogger("catalog.realtime")
CLOSE_TIMEOUT = 60.0


class PeerState(enum.Enum):
    """A peer's life, one state at a time (like websockets' `State`)."""

    HELD = "held"  # accepted; frames queue up but wait (so a welcome can go out first)
    OPEN = "open"  # frames are written as they come
    CLOSING = "closing"  # our close frame is going out; new frames are dropped
    CLOSED = "closed"  # the connection is gone (either side closed it)


Message = dict[str, Any]  # an ASGI "websocket.send" message, shared by every peer it goes to


def text_message(frame: str) -> Message:
    return {"type": "websocket.send", "text": frame}


class Peer:
    """One accepted socket: reads through `receive`, writes without blocking anyone.

    A frame for a peer with nothing queued is written at once, in the caller's step: uvicorn
    only suspends a send while the client's transport is paused (it stopped reading; see
    `src.compat.starlette`). Only then does the peer get a writer task, which finishes that
    send and drains the frames queued behind it (at most `queue_limit`, else 1008). A
    coalesced value (`offer`) waits in a single slot instead, replaced by a newer one: a
    slow reader never piles them up.
    """

    def __init__(
        self,
        ws: WebSocket,
        *,
        queue_limit: int,
        max_message_bytes: int,
        max_messages_per_s: float = float("inf"),
    ) -> None:
        self.ws = ws
        self.queue_limit = queue_limit
        self.max_message_bytes = max_message_bytes
        self.max_messages_per_s = max_messages_per_s
        self.endpoint = ""  # its route's path template, set by Registry.connect (metrics)
        self.sent = 0  # frames handed to the socket (metrics)
        # What the client sends: `max_messages_per_s` sustained, bursts of 2 s worth.
        self._incoming = Bucket(max_messages_per_s, 2 * max_messages_per_s, time.monotonic())
        self.state = PeerState.OPEN
        self.close_code: int | None = None  # set once CLOSING or CLOSED
        self.closing: asyncio.Task[None] | None = None  # the task sending our close frame
        self._queue: deque[Message] = deque()
        self._latest: Message | None = None  # the pending coalesced value, if any
        self._writer: asyncio.Task[None] | None = None  # only while a send is blocked

    @property
    def open(self) -> bool:
        return self.state in (PeerState.HELD, PeerState.OPEN)

    @property
    def _can_write_now(self) -> bool:
        return self.state is PeerState.OPEN and self._writer is None and not self._queue

    def send(self, frame: str) -> None:
        """Send a text frame in order; never blocks. Overflow closes this peer with 1008."""
        self.send_message(text_message(frame))

    def send_message(self, message: Message) -> None:
        if self._can_write_now:
            self._write_now(message)
        elif self.open:
            if len(self._queue) >= self.queue_limit:
                self.close(Close.POLICY, "too slow: send queue overflowed")
                return
            self._queue.append(message)

    def offer(self, message: Message) -> None:
        """Send the latest value of a coalesced topic; an older value still waiting is
        replaced rather than queued behind."""
        if self._can_write_now:  # nothing is pending, no older value either
            self._write_now(message)
        elif self.open:
            self._latest = message

    def _write_now(self, message: Message) -> None:
        self.sent += 1
        try:
            blocked = send_now(self.ws, message)
        except Exception as exc:  # the client is gone; the reader will see it
            log.debug("send failed: %r", exc)
            return
        if blocked is not None:
            self._writer = asyncio.create_task(self._drain(blocked), name="ws-writer")

    async def _drain(self, blocked: Awaitable[None]) -> None:
        try:
            await blocked
            while self.state is PeerState.OPEN:
                if self._queue:
                    message = self._queue.popleft()
                elif self._latest is not None:
                    message, self._latest = self._latest, None
                else:
                    break
                self.sent += 1
                await self.ws.send(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client went away mid-send; the reader will see it
            log.debug("writer stopped: %r", exc)
        finally:
            self._writer = None

    def hold(self) -> None:
        """Queue frames without writing them until `release` (so a welcome can go first)."""
        if self.state is PeerState.OPEN:
            self.state = PeerState.HELD

    async def write_held(self, frame: str) -> bool:
        """While held, write `frame` now, waiting for the client to take it (a replay that
        must not pile up in the queue); False once the peer is no longer held."""
        if self.state is not PeerState.HELD:
            return False
        try:
            self.sent += 1
            await self.ws.send(text_message(frame))
        except Exception as exc:  # the client went away; the reader will see it
            log.debug("send failed: %r", exc)
            return False
        return self.state is PeerState.HELD

    def release(self, first: str | None = None) -> None:
        """Write `first`, then everything queued while held in order, then the latest
        coalesced value offered meanwhile."""
        if self.state is not PeerState.HELD:
            return
        held, latest = [*self._queue], self._latest
        self._queue.clear()
        self._latest = None
        self.state = PeerState.OPEN
        if first is not None:
            self.send(first)
        for message in held:
            self.send_message(message)
        if latest is not None:
            self.offer(latest)

    def close(self, code: int, reason: str = "") -> None:
        """Close now: pending frames are dropped, the close frame goes out at once."""
        if not self.open:
            return
        self.state, self.close_code = PeerState.CLOSING, code
        self._stop_writer()
        self.closing = asyncio.create_task(self._close(code, reason), name="ws-close")

    def _stop_writer(self) -> None:
        self._queue.clear()
        self._latest = None
        if self._writer is not None:
            self._writer.cancel()

    async def _close(self, code: int, reason: str) -> None:
        # A client that does not read cannot receive the close frame either: it goes out
        # when the client reads again, or uvicorn's ping timeout tears the connection down.
        try:
            if self._writer is not None:  # a cancelled send must finish unwinding first
                await asyncio.gather(self._writer, return_exceptions=True)
            await asyncio.wait_for(self.ws.close(code, reason), timeout=CLOSE_TIMEOUT)
        except Exception as exc:  # the client may already be gone; nothing left to do
            log.debug("close %s failed: %r", code, exc)
        finally:
            self.state = PeerState.CLOSED

    def _closed_by_client(self, code: int) -> None:
        self.state, self.close_code = PeerState.CLOSED, self.close_code or code
        self._stop_writer()

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
            if self._incoming.take(time.monotonic()):
                limit = f"{self.max_messages_per_s:g}"
                self.close(Close.POLICY, f"sending faster than {limit} frames a second")
            elif self._too_big(text, data):
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
        """Close (1000 unless closed already) and wait for the close frame to go out."""
        self.close(Close.NORMAL)  # a peer closed already has its writer stopped
        for task in (self._writer, self.closing):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        self.state = PeerState.CLOSED
