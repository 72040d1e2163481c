"""The HTTP connection protocol the service is served with: a timer on every request head and
a cap on open connections, so stalled clients cannot hold the process's sockets.

    uvicorn src.main:app --http src.server:HttpProtocol     (`make run` passes it too)

UVICORN TRAP: no timer on a request head. uvicorn 0.54's HTTP protocols arm
`timeout_keep_alive` only after a response, and cancel it on the next byte received; nothing
is armed from accept until the first byte, nor while a head is incomplete. A connection that
sends nothing, or half a request line, or one byte after a response, stays open for ever:
600 such connections were all still open after 135 s, and 20,000 of them used up the file
descriptors (RLIMIT_NOFILE), so accept failed and /health went unanswered for everyone.
uvicorn's `limit_concurrency` does not help: it is checked only once a head is complete, so
stalled connections never meet it; it answers 503 to the requests that do complete (the
healthy ones) while the stalled connections stay; and it counts WebSockets, so a crowd of
/counter clients would turn /health into 503.

So `HttpProtocol` (uvicorn's httptools protocol plus two things):
- a deadline set on accept and again after each response on a kept-alive connection; if the
  request head (request line and headers, up to the blank line) has not fully arrived within
  HEADER_TIMEOUT_S, the connection is closed (with 408 if part of a head had arrived) by a
  sweep that runs every tenth of the timeout (at most every second). A head
  that completes in time, however slowly it trickled in, is served; a WebSocket handshake
  is a head too, and once upgraded the socket is no longer timed;
- a cap on open connections (HTTP and WebSocket) per process, MAX_CONNECTIONS, by default a
  reserve below the open-files limit, whose soft value is first raised to the hard one (both
  done when the process accepts its first connection). One connection over the cap closes
  the oldest connection still waiting for a head (idle keep-alive or stalled), so a flood of
  idle sockets is dropped rather than accumulated and a new client is served; only if every
  connection is busy (in a request, or a WebSocket) is the newcomer closed.
With a 2,048 open-files limit and 6,000 idle sockets, plain uvicorn held 2,032 of them and
reset every /health; with this protocol it held 1,842 and answered /health in ~6 ms.

Not covered: a request body that stalls after a complete head (MAX_BODY_BYTES bounds its
size, not its pace), and uvicorn's h11 protocol (we serve httptools).
Behind a proxy such as nginx, its `client_header_timeout` (and `client_body_timeout`,
`worker_connections`) do the same in front; this protocol still guards the process against
whatever reaches it directly.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Iterable
from typing import ClassVar, Generic, NamedTuple, TypeVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from websockets.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS

from src.config import Settings, load_settings

log = logging.getLogger("catalog")

# Descriptors kept free for everything that is not a client socket: the database pool and
# the feed's listener, the listening socket, logs, the embedded server's pipes.
FD_RESERVE = 100
OPEN_FILES_TARGET = 1 << 20  # the soft limit we ask for when the hard limit is unlimited


class ServerLimits(NamedTuple):
    header_timeout_s: float
    max_connections: int  # 0: no cap


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (as far as the kernel allows); the
    soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = OPEN_FILES_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # above fs.nr_open: keep what we have
            pass
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return OPEN_FILES_TARGET if soft == resource.RLIM_INFINITY else soft


def connection_cap(open_files: int, requested: int = 0) -> int:
    """The most client connections a process with `open_files` descriptors should hold:
    `requested` (0: as many as fit), never more than leaves a reserve for everything else."""
    fits = max(open_files // 2, open_files - max(FD_RESERVE, open_files // 10))
    return min(requested, fits) if requested else fits


C = TypeVar("C")


class Gate(Generic[C]):
    """The connections waiting for a request head, oldest wait first, and which of them to
    close: those that have waited too long, and the oldest when one too many is open.
    Pure bookkeeping, no I/O (times are the loop's clock, passed in)."""

    def __init__(self, header_timeout_s: float = 10.0, max_connections: int = 0) -> None:
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections
        self._waiting: dict[C, float] = {}  # since when; insertion order is age order

    def waiting(self, conn: C, now: float) -> None:
        """`conn` waits for a request head from `now` (just accepted, or answered)."""
        self._waiting.pop(conn, None)
        self._waiting[conn] = now

    def done(self, conn: C) -> None:
        """`conn` has sent its head, or is gone."""
        self._waiting.pop(conn, None)

    def expired(self, now: float) -> list[C]:
        """Remove and return the connections that have waited HEADER_TIMEOUT_S or more."""
        late: list[C] = []
        deadline = now - self.header_timeout_s
        for conn, since in self._waiting.items():
            if since > deadline:
                break
            late.append(conn)
        for conn in late:
            del self._waiting[conn]
        return late

    def victim(self, open_connections: int) -> C | None:
        """Over the cap: remove and return the oldest waiting connection (None if none)."""
        if not self.max_connections or open_connections <= self.max_connections:
            return None
        if not self._waiting:
            return None
        conn = next(iter(self._waiting))
        del self._waiting[conn]
        return conn


def configure(settings: Settings) -> ServerLimits:
    """Raise this process's open-files limit and set the limits every `HttpProtocol` in it
    applies. Done once, when the first connection is accepted, so a process served by
    another protocol is left as it was."""
    open_files = raise_open_files_limit()
    limits = ServerLimits(
        header_timeout_s=settings.HEADER_TIMEOUT_S,
        max_connections=connection_cap(open_files, settings.MAX_CONNECTIONS),
    )
    HttpProtocol.limits = limits
    HttpProtocol.gate.header_timeout_s = limits.header_timeout_s
    HttpProtocol.gate.max_connections = limits.max_connections
    log.info(
        "Slow clients: request heads within %g s, at most %d connections (open files %d)",
        limits.header_timeout_s,
        limits.max_connections,
        open_files,
    )
    if settings.MAX_CONNECTIONS > limits.max_connections:
        log.warning(
            "MAX_CONNECTIONS=%d does not fit in %d open files: capped at %d",
            settings.MAX_CONNECTIONS,
            open_files,
            limits.max_connections,
        )
    return limits


def _unparseable_by_websockets(url: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The HTTP answer for a handshake the `websockets` library would refuse to read, or
    None. uvicorn hands it the head as `GET <url> HTTP/1.1` plus `name: value` lines."""
    if len(url) + len(b"GET  HTTP/1.1\r\n") > MAX_LINE_LENGTH:
        return _plain(414, "URI Too Long", f"request line over {MAX_LINE_LENGTH} bytes")
    headers = list(headers)
    if len(headers) > MAX_NUM_HEADERS or any(
        len(name) + len(value) + 4 > MAX_LINE_LENGTH for name, value in headers
    ):
        return _plain(431, "Request Header Fields Too Large", "too many or too long headers")
    return None


def _plain(status: int, phrase: str, text: str) -> bytes:
    body = (text + "\n").encode()
    return (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


def _timeout_response(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    body = b"Request head not received in time.\n"
    head = [b"HTTP/1.1 408 Request Timeout\r\n"]
    head += [name + b": " + value + b"\r\n" for name, value in default_headers]
    head.append(b"content-type: text/plain; charset=utf-8\r\n")
    head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
    return b"".join(head) + body


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request-head timeout and the connection cap."""

    # One set of limits, one gate and one sweep timer per process (uvicorn builds a protocol
    # per connection); the limits are read from the settings at the first connection. One
    # periodic sweep rather than a timer per request: on uvloop a call_later and its cancel
    # cost ~4 µs, a request's own work here ~50 µs.
    limits: ClassVar[ServerLimits | None] = None
    gate: ClassVar[Gate[HttpProtocol]] = Gate()
    sweeping: ClassVar[asyncio.AbstractEventLoop | None] = None

    _head_begun = False  # part of a request head has arrived (a timeout then answers 408)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if self.limits is None:
            configure(load_settings())
        if self.sweeping is not self.loop:
            HttpProtocol.sweeping = self.loop
            self._sweep(self.loop)
        super().connection_made(transport)
        self.gate.waiting(self, self.loop.time())
        victim = self.gate.victim(len(self.connections))
        if victim is not None:
            # Not counted from now on, so a burst of accepts in one loop iteration closes one
            # connection per newcomer, not one per connection still on its way out.
            self.connections.discard(victim)
            victim._drop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.done(self)
        super().connection_lost(exc)
        self._unlink()

    def handle_websocket_upgrade(self) -> None:
        if refusal := _unparseable_by_websockets(self.url, self.scope["headers"]):
            # UVICORN TRAP (a handshake the WebSocket layer cannot read hangs for ever):
            # uvicorn re-parses the head with the `websockets` library, which refuses lines
            # over 8 KiB and more than 128 headers by ending its output silently; uvicorn
            # then neither answers nor closes, and past the hand-over no head timer runs.
            self.transport.write(refusal)
            self.transport.close()
            self._unlink()
            return
        super().handle_websocket_upgrade()
        self._unlink()  # the socket now belongs to the WebSocket protocol

    def _unlink(self) -> None:
        """UVICORN TRAP (a reference cycle per connection): the httptools parser holds this
        protocol's bound callbacks and the protocol holds the parser, so every connection
        (and every upgraded WebSocket's HTTP half) left a cycle with its transport behind,
        freed only by a full garbage collection, which the served process makes rare
        (src.app.tune_gc): a soak of 8,000 WebSocket cycles grew the process by 23 MB.
        Dropping the parser once the protocol is done breaks the cycle."""
        self.parser = None  # type: ignore[assignment]

    def on_message_begin(self) -> None:
        self._head_begun = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head_begun = False
        self.gate.done(self)  # before a WebSocket upgrade hands the socket on
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn armed its keep-alive timer: the connection now waits for the next head
        # (it did not if it closed the connection, or started a pipelined request).
        if self.timeout_keep_alive_task is not None:
            self.gate.waiting(self, self.loop.time())

    @classmethod
    def _sweep(cls, loop: asyncio.AbstractEventLoop) -> None:
        """Close the connections whose head is late; again every tenth of the timeout (at
        most every second), so a head is given up HEADER_TIMEOUT_S to 1.1 times that late."""
        for conn in cls.gate.expired(loop.time()):
            conn._drop()
        loop.call_later(min(1.0, cls.gate.header_timeout_s / 10), cls._sweep, loop)

    def _drop(self) -> None:
        """Close a connection the gate gave up on; 408 if part of a head had arrived."""
        if self.transport.is_closing():
            return
        if self._head_begun:
            self.transport.write(_timeout_response(self.server_state.default_headers))
        self.transport.close()
