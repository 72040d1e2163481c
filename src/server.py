"""The HTTP connection protocol the service is served with: what plain uvicorn leaves to a
proxy in front, done in the process, so a client talking to it directly cannot hold its
sockets, its memory or a request open, nor smuggle a request past the app.

    uvicorn src.main:app --http src.server:HttpProtocol     (`make run` passes it too)

`HttpProtocol` is uvicorn's httptools protocol (through `src.compat.uvicorn`, which holds
every use of uvicorn's private parts) plus:

- **A deadline on every request head.** Set on accept and again after each response on a
  kept-alive connection: if the head (request line and headers, up to the blank line) has
  not fully arrived within HEADER_TIMEOUT_S, the connection is closed, with a 408 problem if
  part of a head had arrived. A head that completes in time, however slowly it trickled in,
  is served; a WebSocket handshake is a head too, and once upgraded the socket is not timed.
- **Bounded heads.** A head over MAX_HEADER_BYTES (default 16 KiB) or with more than
  MAX_HEADERS (default 100) header fields is answered 431 (414 when the request target
  alone is over), WebSocket handshakes included, as soon as the limit is crossed: bytes are
  counted as they arrive (each read while a head is open, and the parser's pieces of
  target and fields), never buffered whole first.
- **A deadline on every request body.** Once a head is complete, the body must have arrived
  within BODY_TIMEOUT_S: otherwise a 408 problem and close (just a close when the app has
  already answered without reading the body).
- **HTTP/1.1 framing by the book (RFC 9112).** A `Transfer-Encoding` other than exactly
  `chunked` is 501 (with a `Content-Length` beside it, 400 from the parser); an
  absolute-form target (`GET http://host/path`) is served only when its host is in
  ALLOWED_HOSTS (`*`: any), and a target in no form this server serves (authority-form, a
  CONNECT) is 400. The `Host` header (exactly one, naming an allowed host) is the app's
  edge's check (`src.edge`), so plain uvicorn and tests in-process apply it too.
- **Problems for protocol errors.** Every answer given here (400 for bytes httptools cannot
  parse, 408, 414, 431, 501) is `application/problem+json` (RFC 9457, `src.errors.Problem`)
  with `connection: close`, uvicorn's `server` and `date` and the app's security headers
  (`src.logs.SECURITY_HEADERS`); plain uvicorn answers its 400 in text/plain. After the
  answer the write side is shut and the input drained until the client closes (at most
  LINGER_S): closing with input unread would reset the connection and could destroy the
  answer before the client reads it.
- **Cache hits answered at once.** When the app offers `answer_now` (the edge: a hit of
  its response cache, `src.edge.Edge.answer_now`), a bodiless GET or HEAD that nothing
  before it on the connection is still answering is offered to it as soon as its head is
  read; an answer is written in one piece, without an ASGI request (no task, no messages,
  no per-header checks), and anything declined goes to the app as usual. A hit then costs
  about a third of what it does through ASGI (docs/BENCHMARKS.md).
- **A cap on open connections** (HTTP and WebSocket) per process, MAX_CONNECTIONS, by
  default a reserve below the open-files limit, whose soft value is first raised to the hard
  one. One connection over the cap closes a connection that answered and lingers, else the
  oldest connection still waiting for a head (idle keep-alive or stalled), so a flood of
  idle sockets is dropped rather than accumulated and a new client is served; only if every
  connection is busy (in a request, or a WebSocket) is the newcomer closed.

Plain uvicorn 0.54 (`uvicorn src.main:app` without `--http`) has none of these.

UVICORN TRAP: no timer on a request head. uvicorn arms `timeout_keep_alive` only after a
response, and cancels it on the next byte received; nothing is armed from accept until the
first byte, nor while a head is incomplete. A connection that sends nothing, or half a
request line, or one byte after a response, stays open for ever: 600 such connections were
all still open after 135 s, and 20,000 of them used up the file descriptors
(RLIMIT_NOFILE), so accept failed and /health went unanswered for everyone. uvicorn's
`limit_concurrency` does not help: it is checked only once a head is complete, so stalled
connections never meet it; it answers 503 to the requests that do complete (the healthy
ones) while the stalled connections stay; and it counts WebSockets, so a crowd of /counter
clients would turn /health into 503. With a 2,048 open-files limit and 6,000 idle sockets,
plain uvicorn held 2,032 of them and reset every /health; with this protocol it held 1,842
and answered /health in ~6 ms.
UVICORN TRAP: no bound on a head. httptools gathers a header field whole before uvicorn
sees it, and uvicorn keeps every field: a 1 MiB header, 10,000 or 300,000 headers were
answered 200, and a 64 MiB header took 5 s and 125 MiB of memory (with this protocol:
431 in 0.07 s, the memory unchanged).
UVICORN TRAP: no timer on a body. A body that stalls after a complete head kept its
connection (and the app's request) open for 150 s and more; MAX_BODY_BYTES bounds a body's
size, not its pace.
UVICORN TRAP: framing left to llhttp, which accepts `Transfer-Encoding: gzip, chunked` and
`identity, chunked`, a request without `Host`, and any host in an absolute-form target.

All timers are one periodic sweep per process (every tenth of the shortest timeout, at most
every second) over `Gate`'s ordered waits, never a timer per request: on uvloop a call_later
and its cancel cost ~4 µs, a request's own work here ~50 µs. So a head or a body is given up
between its timeout and 1.1 times that after its wait began. The limits, the gate and the
sweep's loop are one `Served` object per process, made by its first connection (`served()`),
so importing this module does nothing and a process served by another protocol is left as
it was.

Not covered: uvicorn's h11 protocol (we serve httptools). A refused request that was
pipelined behind one still being answered closes the connection without an answer (ours
would be read as the earlier request's). A body's deadline also runs while uvicorn has
paused reading it because the app has not yet read 64 KiB of it. Behind a proxy such as nginx, its
`client_header_timeout`, `large_client_header_buffers`, `client_body_timeout` and
`worker_connections` do the same in front; this protocol still guards the process against
whatever reaches it directly.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import resource
from collections.abc import Callable, Iterable
from typing import Generic, NamedTuple, TypeVar

import httptools
import msgspec
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake
from websockets.headers import parse_extension
from websockets.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS, Request
from websockets.server import ServerProtocol

from src.compat.uvicorn import HookedHttpToolsProtocol, Immediate, offered
from src.config import Settings, load_settings
from src.errors import PROBLEM_JSON, Problem
from src.logs import SECURITY_HEADERS, request_id

log = logging.getLogger("catalog")

# Descriptors kept free for everything that is not a client socket: the database pool and
# the feed's listener, the listening socket, logs, the embedded server's pipes.
FD_RESERVE = 100
OPEN_FILES_TARGET = 1 << 20  # the soft limit we ask for when the hard limit is unlimited
# How long a connection that was answered here waits for its client to close.
LINGER_S = 2.0
# The bytes of a request line besides its target, at the shortest ("GET " and
# " HTTP/1.1\r\n"): a target longer than MAX_HEADER_BYTES less this is a 414.
REQUEST_LINE_BYTES = len(b"GET  HTTP/1.1\r\n")


class ServerLimits(NamedTuple):
    """What every connection of a process applies (from its settings, `configure`)."""

    header_timeout_s: float
    max_connections: int  # 0: no cap
    body_timeout_s: float
    max_header_bytes: int
    max_headers: int
    allowed_hosts: frozenset[str]  # as Settings.allowed_hosts; "*": any


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


# -- the answers given here ----------------------------------------------------------------


class ProtocolError(NamedTuple):
    """A kind of answer decided before the app sees a request."""

    status: int
    phrase: str
    type: str
    title: str


BAD_REQUEST = ProtocolError(400, "Bad Request", "bad-request", "Bad request")
REQUEST_TIMEOUT = ProtocolError(408, "Request Timeout", "request-timeout", "Request timeout")
URI_TOO_LONG = ProtocolError(414, "URI Too Long", "uri-too-long", "URI too long")
HEADERS_TOO_LARGE = ProtocolError(
    431,
    "Request Header Fields Too Large",
    "header-fields-too-large",
    "Request header fields too large",
)
NOT_IMPLEMENTED = ProtocolError(501, "Not Implemented", "not-implemented", "Not implemented")


class Refusal(NamedTuple):
    error: ProtocolError
    detail: str


_encode = msgspec.json.Encoder().encode


def problem_answer(refusal: Refusal, default_headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The whole HTTP/1.1 answer: an RFC 9457 problem, then the connection closes."""
    error = refusal.error
    body = _encode(
        Problem(type=error.type, title=error.title, status=error.status, detail=refusal.detail)
    )
    head = [b"HTTP/1.1 %d %s\r\n" % (error.status, error.phrase.encode())]
    head += [name + b": " + value + b"\r\n" for name, value in default_headers]
    head += [name + b": " + value + b"\r\n" for name, value in SECURITY_HEADERS]
    head.append(b"content-type: %s\r\n" % PROBLEM_JSON.encode())
    head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
    return b"".join(head) + body


def unparseable(reason: str) -> Refusal:
    """The answer to bytes httptools refused, `reason` being its phrase."""
    if "invalid `transfer-encoding`" in reason.lower():
        # llhttp refuses some codings while reading the field ("chunked, chunked", a second
        # Transfer-Encoding after chunked), before the head is whole and `check_head` runs.
        # (Content-Length beside Transfer-Encoding stays a 400, as RFC 9112 6.1 allows.)
        return Refusal(NOT_IMPLEMENTED, "only Transfer-Encoding: chunked is implemented")
    return Refusal(BAD_REQUEST, f"the request could not be parsed: {reason}")


def check_head(
    target: bytes,
    headers: Iterable[tuple[bytes, bytes]],
    allowed_hosts: frozenset[str],
) -> Refusal | None:
    """What RFC 9112 makes of a complete head, before the app sees it (None: serve it).
    `headers` have lower-case names; `allowed_hosts` as `Settings.allowed_hosts`."""
    codings = [value for name, value in headers if name == b"transfer-encoding"]
    if codings and (len(codings) > 1 or codings[0].strip(b" \t").lower() != b"chunked"):
        return Refusal(NOT_IMPLEMENTED, "only Transfer-Encoding: chunked is implemented")
    if target[:1] == b"/" or target == b"*":  # origin-form, asterisk-form
        return None
    return check_absolute_form(target, allowed_hosts)


def check_absolute_form(target: bytes, allowed_hosts: frozenset[str]) -> Refusal | None:
    """An absolute-form target (`http://host:port/path?query`) is served only when its host
    is allowed; anything else that is not a path is refused."""
    try:
        url = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        url = None
    if url is None or url.host is None or (url.schema or b"").lower() not in (b"http", b"https"):
        return Refusal(BAD_REQUEST, "the request target is neither a path nor an http(s) URL")
    if url.userinfo is not None or url.path is None:
        return Refusal(BAD_REQUEST, "an absolute request target needs a path and no user")
    host = url.host.decode("latin-1").lower()
    if host not in allowed_hosts and "*" not in allowed_hosts:
        return Refusal(BAD_REQUEST, "the request target names a host this server does not serve")
    return None


def _unparseable_by_websockets(
    target: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> Refusal | None:
    """Why the `websockets` library would refuse a handshake, or None. uvicorn hands it the
    head as `GET <target> HTTP/1.1` plus `name: value` lines: lines it cannot read hang
    (below), and a handshake it reads but refuses (no or a bad Sec-WebSocket-Key, a version
    other than 13, a bad Upgrade, two Origins, a malformed extension offer) gets its own
    text/plain 400; both are answered here first, as problems, by the library's own rules
    (its sans-I/O `ServerProtocol.process_request`)."""
    if len(target) + len(b"GET  HTTP/1.1\r\n") > MAX_LINE_LENGTH:
        return Refusal(
            URI_TOO_LONG,
            f"a WebSocket handshake's request line is limited to {MAX_LINE_LENGTH} bytes",
        )
    headers = list(headers)
    if len(headers) > MAX_NUM_HEADERS or any(
        len(name) + len(value) + 4 > MAX_LINE_LENGTH for name, value in headers
    ):
        return Refusal(
            HEADERS_TOO_LARGE,
            f"a WebSocket handshake is limited to {MAX_NUM_HEADERS} header fields"
            f" of at most {MAX_LINE_LENGTH} bytes each",
        )
    fields = Headers()
    for name, value in headers:
        fields[name.decode("latin-1")] = value.decode("latin-1")
    try:
        # No extension factory: negotiating permessage-deflate would allocate zlib state per
        # handshake (the soak test saw the heap grow 10%); the offers' syntax is parsed alone.
        ServerProtocol().process_request(Request(target.decode("latin-1"), fields))
        for offer in fields.get_all("Sec-WebSocket-Extensions"):
            parse_extension(offer)
    except InvalidHandshake as exc:
        return Refusal(BAD_REQUEST, f"not a valid WebSocket handshake: {exc}")
    return None


# -- the waits, and the process's state ----------------------------------------------------

C = TypeVar("C")


class Waits(Generic[C]):
    """Connections each waiting for something since some time, oldest wait first (dict
    insertion order), and which of them have waited `timeout_s` or more. Pure bookkeeping."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._since: dict[C, float] = {}

    def start(self, conn: C, now: float) -> None:
        self._since.pop(conn, None)
        self._since[conn] = now

    def stop(self, conn: C) -> None:
        self._since.pop(conn, None)

    def expired(self, now: float) -> list[C]:
        """Remove and return the connections that have waited `timeout_s` or more."""
        late: list[C] = []
        deadline = now - self.timeout_s
        for conn, since in self._since.items():
            if since > deadline:
                break
            late.append(conn)
        for conn in late:
            del self._since[conn]
        return late

    def oldest(self) -> C | None:
        """Remove and return the connection that has waited longest (None if none)."""
        if not self._since:
            return None
        conn = next(iter(self._since))
        del self._since[conn]
        return conn


class Gate(Generic[C]):
    """What each connection waits for (a request head, a request body, its client's close
    after an answer), which of them to give up on, and which to close when one too many is
    open. Pure bookkeeping, no I/O (times are the loop's clock, passed in)."""

    def __init__(
        self,
        header_timeout_s: float = 10.0,
        max_connections: int = 0,
        body_timeout_s: float = 10.0,
        linger_s: float = LINGER_S,
    ) -> None:
        self.max_connections = max_connections
        self.heads: Waits[C] = Waits(header_timeout_s)
        self.bodies: Waits[C] = Waits(body_timeout_s)
        self.lingering: Waits[C] = Waits(linger_s)

    def waiting(self, conn: C, now: float) -> None:
        """`conn` waits for a request head from `now` (just accepted, or answered)."""
        self.heads.start(conn, now)

    def done(self, conn: C) -> None:
        """`conn` has sent its head."""
        self.heads.stop(conn)

    def expired(self, now: float) -> list[C]:
        """Remove and return the connections that have waited HEADER_TIMEOUT_S or more."""
        return self.heads.expired(now)

    def forget(self, conn: C) -> None:
        """`conn` is gone (or handed over): it waits for nothing."""
        self.heads.stop(conn)
        self.bodies.stop(conn)
        self.lingering.stop(conn)

    def victim(self, open_connections: int) -> C | None:
        """Over the cap: remove and return a connection that was answered and lingers, else
        the oldest waiting for a head (None if none)."""
        if not self.max_connections or open_connections <= self.max_connections:
            return None
        answered = self.lingering.oldest()
        return answered if answered is not None else self.heads.oldest()

    @property
    def sweep_interval_s(self) -> float:
        """A tenth of the shortest timeout, at most a second."""
        return min(1.0, self.heads.timeout_s / 10, self.bodies.timeout_s / 10)


class Served:
    """One per served process: its limits, its gate, the loop its sweep runs on. uvicorn
    builds a protocol per connection; they all share this one, which `served()` makes at the
    first connection (reading the settings, raising the open-files limit) and keeps."""

    def __init__(self, limits: ServerLimits) -> None:
        self.limits = limits
        self.gate: Gate[HttpProtocol] = Gate(
            limits.header_timeout_s, limits.max_connections, limits.body_timeout_s
        )
        self._sweeping: asyncio.AbstractEventLoop | None = None

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the sweep on `loop` (once per loop)."""
        if self._sweeping is not loop:
            self._sweeping = loop
            self._sweep(loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        gate = self.gate
        loop.call_later(gate.sweep_interval_s, self._sweep, loop)  # first: a failure below
        now = loop.time()  # must not end the sweeps
        for conn in gate.expired(now):
            conn.head_late()
        for conn in gate.bodies.expired(now):
            conn.body_late()
        for conn in gate.lingering.expired(now):
            conn.close()


def configure(settings: Settings) -> ServerLimits:
    """Raise this process's open-files limit; the limits every `HttpProtocol` in it applies."""
    open_files = raise_open_files_limit()
    limits = ServerLimits(
        header_timeout_s=settings.HEADER_TIMEOUT_S,
        max_connections=connection_cap(open_files, settings.MAX_CONNECTIONS),
        body_timeout_s=settings.BODY_TIMEOUT_S,
        max_header_bytes=settings.MAX_HEADER_BYTES,
        max_headers=settings.MAX_HEADERS,
        allowed_hosts=settings.allowed_hosts,
    )
    log.info(
        "Slow clients: request heads within %g s, bodies within %g s, heads of at most %d"
        " bytes and %d fields, at most %d connections (open files %d)",
        limits.header_timeout_s,
        limits.body_timeout_s,
        limits.max_header_bytes,
        limits.max_headers,
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


@functools.cache
def served() -> Served:
    """This process's `Served`, made at the first call (the first connection)."""
    return Served(configure(load_settings()))


# -- the protocol --------------------------------------------------------------------------


class Reading(enum.Enum):
    """Where a connection is in reading its client's requests."""

    NEXT_HEAD = "between requests: no byte of the next head yet"
    HEAD = "part of a request head has arrived"
    BODY = "the head is complete; its body (if any) is still to come"
    DONE = "answered, closed or handed over: nothing more is read"


class HttpProtocol(HookedHttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines on heads and bodies, bounded heads,
    RFC 9112 framing, problems for protocol errors, and the connection cap."""

    _served: Served
    _limits: ServerLimits
    _gate: Gate[HttpProtocol]
    _reading = Reading.NEXT_HEAD
    _heads = 0  # heads read whole on this connection
    _unparsed_bytes = 0  # bytes of reads that fell wholly inside the current head
    _answer_now: Callable[[str, str, bytes, list[tuple[bytes, bytes]]], Immediate | None] | None

    def accepted(self) -> None:
        # What the app answers without an ASGI request (the edge: response cache hits).
        self._answer_now = offered(self.app, "answer_now")
        self._served = served()
        self._limits = self._served.limits
        self._gate = self._served.gate
        self._served.watch(self.event_loop)
        self._gate.waiting(self, self.event_loop.time())
        victim = self._gate.victim(self.open_connections)
        if victim is not None:
            # Not counted from now on, so a burst of accepts in one loop iteration closes one
            # connection per newcomer, not one per connection still on its way out.
            victim.uncount()
            victim._drop()

    def lost(self) -> None:
        self._reading = Reading.DONE
        self._gate.forget(self)

    def lingering(self) -> None:
        self._reading = Reading.DONE
        self._gate.forget(self)
        self._gate.lingering.start(self, self.event_loop.time())

    def upgraded(self) -> None:
        self._reading = Reading.DONE
        self._gate.forget(self)

    # A head, counted as it arrives.

    def data_received(self, data: bytes) -> None:
        reading, heads = self._reading, self._heads
        super().data_received(data)
        # A read that began and ended inside one head (no head completed meanwhile) is all
        # head: count it, since httptools holds a header field it is still receiving. A
        # head that grows past the limit is refused here, before it is read further.
        if reading is Reading.BODY or self._heads != heads or self.finished:
            return
        self._unparsed_bytes += len(data)
        if self._unparsed_bytes > self._limits.max_header_bytes:
            self.answer_and_close(self._refusing(self._too_large(len(self.url))))

    def head_begun(self) -> None:
        self._reading = Reading.HEAD  # part of a head: a timeout now answers 408

    def _too_large(self, target_bytes: int) -> Refusal:
        """414 when the request line alone is over MAX_HEADER_BYTES, else 431."""
        limit = self._limits.max_header_bytes
        if target_bytes + REQUEST_LINE_BYTES > limit:
            return Refusal(
                URI_TOO_LONG, f"the request line is over {limit} bytes (MAX_HEADER_BYTES)"
            )
        return Refusal(
            HEADERS_TOO_LARGE, f"the request head is over {limit} bytes (MAX_HEADER_BYTES)"
        )

    def head_received(
        self, method: bytes, version: str, target: bytes, headers: list[tuple[bytes, bytes]]
    ) -> bytes | None:
        limits = self._limits
        if len(headers) > limits.max_headers:
            return self._refusing(
                Refusal(
                    HEADERS_TOO_LARGE,
                    f"the request has more than {limits.max_headers} header fields (MAX_HEADERS)",
                )
            )
        # The exact size: request line, fields (": " and CRLF each), blank line.
        size = len(method) + len(target) + len(b"  HTTP/1.1\r\n\r\n")
        for name, value in headers:
            size += len(name) + len(value) + 4
        if size > limits.max_header_bytes:
            return self._refusing(self._too_large(len(target)))
        if refusal := check_head(target, headers, self._limits.allowed_hosts):
            return self._refusing(refusal)
        self._heads += 1
        self._unparsed_bytes = 0
        self._reading = Reading.BODY
        self._gate.done(self)  # before a WebSocket upgrade hands the socket on
        return None

    def _refusing(self, refusal: Refusal) -> bytes:
        """The answer to a head refused: its problem, or nothing (just close) while the app
        still answers an earlier request on this connection (ours would be read as its)."""
        return b"" if self.answering else problem_answer(refusal, self.default_headers)

    def unparseable(self, reason: str) -> bytes:
        return self._refusing(unparseable(reason))

    def upgrade_refused(
        self, target: bytes, headers: Iterable[tuple[bytes, bytes]]
    ) -> bytes | None:
        # UVICORN TRAP (a handshake the WebSocket layer cannot read hangs for ever): uvicorn
        # re-parses the head with the `websockets` library, which refuses lines over 8 KiB
        # and more than 128 headers by ending its output silently; uvicorn then neither
        # answers nor closes, and past the hand-over no head timer runs.
        if refusal := _unparseable_by_websockets(target, headers):
            return self._refusing(refusal)
        return None

    def answer_at_once(
        self, method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]]
    ) -> Immediate | None:
        answer_now = self._answer_now
        answer = None if answer_now is None else answer_now(method, path, query, headers)
        if answer is not None:
            # uvicorn's access line, with the answer's request id as every line has it.
            rid = next((v for k, v in answer[1] if k == b"x-request-id"), b"")
            token = request_id.set(rid.decode("latin-1"))
            try:
                self.log_access(method, path, query, answer[0])
            finally:
                request_id.reset(token)
        return answer

    # A body, timed from its head.

    def body_awaited(self) -> None:
        if self._reading is Reading.BODY:
            self._gate.bodies.start(self, self.event_loop.time())

    def body_received(self) -> None:
        self._gate.bodies.stop(self)
        self._reading = Reading.NEXT_HEAD
        self._unparsed_bytes = 0

    def head_awaited(self) -> None:
        # uvicorn armed its keep-alive timer: the connection now waits for the next head
        # (it does not if it closed the connection, or started a pipelined request).
        self._gate.waiting(self, self.event_loop.time())

    # What the sweep and the cap do.

    def head_late(self) -> None:
        """The head is HEADER_TIMEOUT_S late: 408 if part of it arrived, else just close."""
        self._drop(linger=True)

    def _drop(self, *, linger: bool = False) -> None:
        """Close a connection the gate gave up on; 408 if part of a head had arrived."""
        if self._reading is not Reading.HEAD:
            self.close()
            return
        timeout = self._limits.header_timeout_s
        refusal = Refusal(
            REQUEST_TIMEOUT,
            f"the request head did not arrive within {timeout:g} s (HEADER_TIMEOUT_S)",
        )
        self.answer_and_close(self._refusing(refusal), linger=linger)

    def body_late(self) -> None:
        """The body is BODY_TIMEOUT_S late: 408, or just close if the app has answered."""
        if self.response_started:
            self.close()
            return
        timeout = self._limits.body_timeout_s
        refusal = Refusal(
            REQUEST_TIMEOUT,
            f"the request body did not arrive within {timeout:g} s of its head (BODY_TIMEOUT_S)",
        )
        self.answer_and_close(problem_answer(refusal, self.default_headers))
