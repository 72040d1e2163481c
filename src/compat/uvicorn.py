"""uvicorn: its httptools protocol opened up by named hooks (UVICORN TRAPs).

`src.server.HttpProtocol` must see a request head as it arrives (to refuse it before uvicorn
has read all of it), know when a connection waits for a head or a body, and answer or close
a connection itself. uvicorn 0.54's `HttpToolsProtocol` has no interface for any of that:
its parser callbacks, `parser`, `url`, `headers`, `cycle`, `pipeline`,
`timeout_keep_alive_task`, `server_state.default_headers` and `server_state.connections` are
private. `HookedHttpToolsProtocol` is the one place that touches them. It calls hooks, which
do nothing here and which a subclass overrides:

    accepted()                  the connection is open and counted in `open_connections`
    head_begun()                the first byte of a request line was parsed
    head_received(method, version, target, headers)
                                the head is complete; uvicorn has not seen it yet
    body_awaited()              the app runs the request and its body is still to come
    body_received()             the request is read to its end (body included, if any)
    head_awaited()              a response is complete; the connection idles for a head
    unparseable(reason)         httptools refused the bytes (a malformed request)
    answer_at_once(method, path, query, headers)
                                a whole answer for a bodiless keep-alive request that no
                                earlier request on the connection is still answering, or
                                None; see `Immediate` below
    upgrade_refused(target, headers)
                                a WebSocket handshake is about to be handed over
    upgraded()                  it was: the socket belongs to the WebSocket protocol now
    lingering()                 an answer was sent and the write side shut: the connection
                                waits for the client to close (see `answer_and_close`)
    lost()                      the connection is closed

(No hook runs per header field or piece of the target: a hook there cost two Python calls
per field on every request. The head is whole at `head_received`, and what arrives before
it is counted by a subclass's `data_received`.)

A hook that returns bytes refuses the request with them: the whole raw answer, or b"" to
close without one. The services a subclass uses instead of uvicorn's attributes are
`event_loop`, `default_headers`, `log_access`, `open_connections`, `uncount`, `answering`,
`response_started`, `finished`, `answer_and_close` and `close`.

Also here: uvicorn's error log (two lines it logs that are not the server's errors,
`quiet_uvicorn_log`), and the running server behind a signal handler (`server_of`,
`drop_connections`), for a graceful stop (src.realtime.shutdown).

Nothing happens at import: this only defines a class and functions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

PACKAGE = "uvicorn"
WRITTEN_FOR = "0.54.0"


# What `answer_at_once` gives: status, headers besides the server's own, body.
Immediate = tuple[int, list[tuple[bytes, bytes]], bytes]


class _Refused(Exception):
    """Raised in a parser callback to stop httptools; the answer is kept on the protocol."""


class HookedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with hooks at each step of a request (no-ops here)."""

    _refusal: bytes | None = None  # the answer a hook gave while httptools was parsing
    _finished = False  # answered, closed or handed over: nothing more is read or served
    _body_due = False  # a request began in this read; its body may still be to come
    _immediate: bytes | None = None  # the answer given at once, written once the request ends

    # -- hooks (override them) -----------------------------------------------------------

    def accepted(self) -> None:
        """The connection is open."""

    def head_begun(self) -> None:
        """The first byte of a request line was parsed."""

    def head_received(
        self, method: bytes, version: str, target: bytes, headers: list[tuple[bytes, bytes]]
    ) -> bytes | None:
        """The whole head (header names in lower case); bytes to refuse the request."""
        return None

    def answer_at_once(
        self, method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]]
    ) -> Immediate | None:
        """The whole answer to a request, without the app, or None (the app is asked)."""
        return None

    def body_awaited(self) -> None:
        """The app runs the request; its body (if any) is still to come."""

    def body_received(self) -> None:
        """The request has been read to its end."""

    def head_awaited(self) -> None:
        """A response is complete and the connection idles, waiting for the next head."""

    def unparseable(self, reason: str) -> bytes:
        """The answer to bytes httptools refused (`reason` is its own short phrase)."""
        return b""

    def upgrade_refused(
        self, target: bytes, headers: Iterable[tuple[bytes, bytes]]
    ) -> bytes | None:
        """A WebSocket handshake about to be handed over; bytes to refuse it instead."""
        return None

    def upgraded(self) -> None:
        """The socket was handed over to the WebSocket protocol."""

    def lingering(self) -> None:
        """An answer was sent and the write side shut; `close()` ends the wait."""

    def lost(self) -> None:
        """The connection is closed."""

    # -- services ------------------------------------------------------------------------

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """uvicorn's headers for every response (`server`, `date`), kept up to date."""
        return self.server_state.default_headers

    def log_access(self, method: str, path: str, query: bytes, status: int) -> None:
        """uvicorn's access line, for a request answered at once (if its access log is on)."""
        if self.access_log:
            target = path + "?" + query.decode("ascii") if query else path
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d', client, method, target, "1.1", status
            )

    @property
    def open_connections(self) -> int:
        """Connections this process's server counts as open (HTTP and WebSocket)."""
        return len(self.connections)

    def uncount(self) -> None:
        """No longer count this connection as open (it is on its way out)."""
        self.connections.discard(self)

    @property
    def answering(self) -> bool:
        """A request on this connection has no complete response yet (the app runs it, or it
        waits for its body): an answer written now would be read as that request's."""
        return self.cycle is not None and not self.cycle.response_complete

    @property
    def response_started(self) -> bool:
        """The app has started (or sent) its response to the request being read."""
        return self.cycle is not None and self.cycle.response_started

    @property
    def finished(self) -> bool:
        """Answered, closed or handed over: nothing more is read or served here."""
        return self._finished or self.transport.is_closing()

    def answer_and_close(self, answer: bytes, *, linger: bool = True) -> None:
        """Write `answer` (raw bytes, b"" for none) and close. The request the app may be
        running sees a disconnect and its response is dropped.

        With `linger`, the write side is shut after the answer and the connection reads
        (and discards) until the client closes, then `lingering()` is called: closing a
        socket that still has unread input resets it, and a reset can destroy the answer
        before the client reads it (a client still sending a large head, for one)."""
        if self.finished:
            return
        if not answer:
            self.close()
            return
        self._finishing()
        self.transport.write(answer)
        if not linger or not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.flow.resume_reading()  # so the client's close (or more input) is seen
        self.lingering()

    def close(self) -> None:
        """Close now, without an answer (also one that lingers after its answer)."""
        if not self.transport.is_closing():
            self._finishing()
            self.transport.close()

    def _finishing(self) -> None:
        self._finished = True
        self._unset_keepalive_if_required()
        self._unlink()
        # What connection_lost does, early: the app's receive() returns http.disconnect and
        # its send() becomes a no-op, so it never writes after the answer (after write_eof,
        # uvloop raises on a write) nor sends `100 Continue`.
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.waiting_for_100_continue = False
            cycle.message_event.set()

    # -- uvicorn's protocol, calling the hooks -------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.accepted()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finished = True
        super().connection_lost(exc)
        self._unlink()  # uvicorn 0.54 does it too; this keeps it so
        self.lost()

    def data_received(self, data: bytes) -> None:
        # uvicorn's own, except for the answer to an unparseable or refused request, and
        # for what arrives after an answer (discarded).
        if self._finished:
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            answer, self._refusal = self._refusal, None
            if answer is None:
                answer = self.unparseable(self._reason(exc))
            self.answer_and_close(answer)
            return
        if self._body_due:  # the head's read ended before its body did
            self._body_due = False
            self.body_awaited()

    def _reason(self, exc: httptools.HttpParserError) -> str:
        """httptools's phrase for what it refused; a failure in a callback (uvicorn's or a
        hook's) that is not a parse error is a bug, logged with its traceback."""
        if not isinstance(exc, httptools.HttpParserCallbackError):
            self.logger.warning("Invalid HTTP request received.")  # as uvicorn logs it
            return str(exc)
        cause = exc.__context__
        if not isinstance(cause, httptools.HttpParserError):
            self.logger.error("Error while reading a request head", exc_info=cause)
        return "the request head could not be read"

    def _refuse(self, answer: bytes) -> None:
        self._refusal = answer
        raise _Refused  # httptools stops and raises HttpParserCallbackError in feed_data

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_begun()

    def on_headers_complete(self) -> None:
        parser = self.parser
        answer = self.head_received(
            parser.get_method(), parser.get_http_version(), self.url, self.headers
        )
        if answer is not None:
            self._refuse(answer)
        if (immediate := self._at_once(parser)) is not None:
            self._immediate = immediate  # no cycle: uvicorn never sees this request
            return
        earlier = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # A new cycle that uvicorn started at once (not queued behind a pipelined request
        # still answering, nor a WebSocket upgrade, which makes no cycle).
        if cycle is not earlier and not (self.pipeline and self.pipeline[0][0] is cycle):
            self._body_due = True  # `body_awaited` at the end of this read, if still due

    def _at_once(self, parser: httptools.HttpRequestParser) -> bytes | None:
        """The answer `answer_at_once` gives, framed, when the request may be answered
        here: a GET or HEAD, HTTP/1.1 kept alive, no body, no upgrade, a plain path (no
        percent-escape, what uvicorn would unquote; no root path), nothing answering or
        queued before it, the client reading what it is sent. Else None: uvicorn serves it."""
        method = parser.get_method()
        if method != b"GET" and method != b"HEAD":
            return None
        cycle, target = self.cycle, self.url
        if (
            (cycle is not None and not cycle.response_complete)
            or self.pipeline
            or self.flow.write_paused
            or self.root_path
            or not parser.should_keep_alive()
            or parser.get_http_version() != "1.1"
            or parser.should_upgrade()
            or target[:1] != b"/"
            or not target.isascii()
            or b"%" in target
            or b"#" in target
        ):
            return None
        for name, value in self.headers:
            if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
                return None
            if name == b"x-forwarded-for" and self.access_log:
                return None  # the access line names the client uvicorn's proxy middleware finds
        path, _, query = target.partition(b"?")
        answer = self.answer_at_once(method.decode(), path.decode(), query, self.headers)
        if answer is None:
            return None
        status, headers, body = answer
        # As uvicorn's `send` frames an answer, less its checks of each header: the app
        # gives these headers whole and valid (`answer_at_once`'s contract).
        content = [STATUS_LINE[status]]
        for name, value in (*self.server_state.default_headers, *headers):
            content += (name, b": ", value, b"\r\n")
        content += (b"\r\n", body)
        return b"".join(content)

    def on_message_complete(self) -> None:
        self._body_due = False  # a request without a body: nothing to wait for
        if (immediate := self._immediate) is not None:
            self._immediate = None
            self.body_received()
            self.transport.write(immediate)
            self.on_response_complete()  # as after an app's answer: keep-alive, next head
            return
        super().on_message_complete()
        self.body_received()

    def on_response_complete(self) -> None:
        queued = len(self.pipeline)
        following = self.pipeline[-1][0] if queued else None  # the next one uvicorn starts
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # uvicorn idles for the next head
            self.head_awaited()
        elif following is not None and len(self.pipeline) < queued and following.more_body:
            self.body_awaited()  # a pipelined request started, its body still to come

    def handle_websocket_upgrade(self) -> None:
        if (answer := self.upgrade_refused(self.url, self.scope["headers"])) is not None:
            self.answer_and_close(answer)
            return
        super().handle_websocket_upgrade()
        self._finished = True
        self._unlink()
        self.upgraded()

    def _unlink(self) -> None:
        """UVICORN TRAP (a reference cycle per connection): the httptools parser holds this
        protocol's bound callbacks and the protocol holds the parser, so every connection
        (and every upgraded WebSocket's HTTP half) left a cycle with its transport behind,
        freed only by a full garbage collection, which the served process makes rare
        (src.app.tune_gc): a soak of 8,000 WebSocket cycles grew the process by 23 MB.
        Dropping the parser once the protocol is done with it breaks the cycle (on an
        upgrade, after an answer, and when the connection is lost)."""
        self.parser = None  # type: ignore[assignment]


# UVICORN TRAP: after a handshake denial (an HTTP response instead of accept) uvicorn 0.54
# still logs "ERROR: ASGI callable returned without completing handshake." for every
# refused client. uvicorn logs it from the task that ran the app, so a context variable the
# edge sets there tells this filter that the denial was ours and on purpose; the same line
# for a handler that forgot to accept still shows.
_denied: ContextVar[bool] = ContextVar("websocket_denied", default=False)


def denied_on_purpose() -> None:
    """The edge refuses this task's handshake on purpose: uvicorn's complaint is not logged."""
    _denied.set(True)


class _QuietFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() == "Invalid UTF-8 sequence received from client.":
            # UVICORN TRAP (a client's bad bytes logged as a server error): a fragmented text
            # message that is not UTF-8 is closed 1007, as it should be, but logged at ERROR
            # with a traceback. It is the client's fault: one warning line, no traceback.
            record.levelno, record.levelname, record.exc_info = logging.WARNING, "WARNING", None
            return True
        return not (_denied.get() and record.getMessage().startswith("ASGI callable returned"))


def quiet_uvicorn_log() -> None:
    """Installs the filter above on uvicorn's error logger (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietFilter) for f in logger.filters):
        logger.addFilter(_QuietFilter())


def offered(app: Any, name: str) -> Any:
    """The attribute `name` of the ASGI app uvicorn serves, looked up through the
    middlewares uvicorn wraps it in (each keeps the app it wraps as `.app`), or None."""
    for _ in range(8):
        if app is None:
            return None
        if (found := getattr(app, name, None)) is not None:
            return found
        app = getattr(app, "app", None)
    return None


def server_of(signal_handler: Any) -> uvicorn.Server | None:
    """The uvicorn server whose signal handler this is (uvicorn installs a bound method of
    its Server before the lifespan starts), or None."""
    server = getattr(signal_handler, "__self__", None)
    return server if isinstance(server, uvicorn.Server) else None


def drop_connections(server: uvicorn.Server) -> None:
    """Abort every open connection of the server now (`server_state` is private)."""
    for connection in tuple(server.server_state.connections):
        transport = getattr(connection, "transport", None)
        if isinstance(transport, asyncio.Transport):
            transport.abort()
