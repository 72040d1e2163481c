"""Slow clients (src/server.py): stalled connections are dropped after HEADER_TIMEOUT_S and
never delay anyone else; a flood beyond MAX_CONNECTIONS closes the oldest idle sockets.

End to end against a real `uvicorn src.main:app --http src.server:HttpProtocol`; the pure
parts (the gate, the cap, the framing rules, the problems) without sockets. Bounded heads,
timed bodies and framing end to end: tests/test_framing.py. `SLOW_CLIENTS=5000` runs the
flood test with thousands of stalled connections instead of 300.
"""

import asyncio
import json
import os
import resource
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
import websockets

from src.config import ConfigError
from src.logs import SECURITY_HEADERS
from src.server import (
    BAD_REQUEST,
    FD_RESERVE,
    HEADERS_TOO_LARGE,
    NOT_IMPLEMENTED,
    Gate,
    Refusal,
    check_head,
    connection_cap,
    problem_answer,
    raise_open_files_limit,
    unparseable,
)
from tests.helpers import LiveServer, Process, make_settings, start_live_server

HEADER_TIMEOUT_S = 2.0
SLACK_S = 3.0  # how late past the timeout a close may come on a loaded test machine
SLOW_CLIENTS = int(os.environ.get("SLOW_CLIENTS", "300"))
# Long enough that all of them are open before the first is dropped (5,000 take ~2 s).
FLOOD_TIMEOUT_S = max(HEADER_TIMEOUT_S, SLOW_CLIENTS / 500)
HALF_HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Serve = Callable[..., Awaitable[LiveServer]]


@pytest.fixture
async def serve(database_url: str) -> AsyncIterator[Serve]:
    """Start `uvicorn src.main:app --http src.server:HttpProtocol` (tests.helpers) with
    extra settings; every server started is stopped by PID afterwards."""
    started: list[LiveServer] = []

    async def start(**env: str) -> LiveServer:
        def start_it() -> tuple[Process, int]:
            return start_live_server(database_url, None, 0, **env)

        process, port = await asyncio.to_thread(start_it)
        started.append(LiveServer(process, port))
        return started[-1]

    try:
        yield start
    finally:
        for server in started:
            await asyncio.to_thread(server.process.stop, signal.SIGTERM)


@asynccontextmanager
async def connections(
    server: LiveServer, count: int, send: bytes = b""
) -> AsyncIterator[list[Streams]]:
    """`count` raw connections that each send `send` and then stall; closed on exit."""
    opened: list[Streams] = []
    try:
        for _ in range(count):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            if send:
                writer.write(send)
            opened.append((reader, writer))
        yield opened
    finally:
        for _, writer in opened:
            writer.close()


async def read_to_eof(reader: asyncio.StreamReader, within_s: float) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts)."""
    try:
        return await asyncio.wait_for(reader.read(), within_s)
    except ConnectionResetError:
        return b""


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 response with a Content-Length: its status line and body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.split(b"\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:")
    )
    body = await asyncio.wait_for(reader.readexactly(length), 5)
    return lines[0], body


async def test_a_half_sent_head_is_closed_with_408_within_the_timeout(serve: Serve) -> None:
    """Half a request head, then nothing: 408 and closed once HEADER_TIMEOUT_S has passed."""
    server = await serve(HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S))
    async with connections(server, 1, HALF_HEAD) as [(reader, _)]:
        started = time.monotonic()
        answer = await read_to_eof(reader, HEADER_TIMEOUT_S + SLACK_S)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"connection: close\r\n" in answer
    assert HEADER_TIMEOUT_S - 0.5 < waited < HEADER_TIMEOUT_S + SLACK_S
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"\r\ncontent-type: application/problem+json\r\n" in head  # not text/plain
    assert json.loads(body)["type"] == "request-timeout"


async def test_a_connection_that_sends_nothing_is_closed_silently_within_the_timeout(
    serve: Serve,
) -> None:
    """No byte at all: closed without an answer once HEADER_TIMEOUT_S has passed."""
    server = await serve(HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S))
    async with connections(server, 1) as [(reader, _)]:
        started = time.monotonic()
        assert await read_to_eof(reader, HEADER_TIMEOUT_S + SLACK_S) == b""
        waited = time.monotonic() - started
    assert HEADER_TIMEOUT_S - 0.5 < waited < HEADER_TIMEOUT_S + SLACK_S


async def test_a_stalled_next_head_on_a_kept_alive_connection_is_closed(serve: Serve) -> None:
    """One byte after a response cancels uvicorn's keep-alive timer; ours still closes it."""
    server = await serve(HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S))
    async with connections(server, 1, REQUEST) as [(reader, writer)]:
        status, _ = await read_response(reader)
        assert status == b"HTTP/1.1 200 OK"
        writer.write(b"G")
        answer = await read_to_eof(reader, HEADER_TIMEOUT_S + SLACK_S)
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_half_a_pipelined_head_behind_a_request_is_timed_from_its_response(
    serve: Serve,
) -> None:
    """A request and half of the next in one write: the first is answered, then 408."""
    server = await serve(HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S))
    async with connections(server, 1, REQUEST + HALF_HEAD) as [(reader, _)]:
        assert (await read_response(reader))[0] == b"HTTP/1.1 200 OK"
        answer = await read_to_eof(reader, HEADER_TIMEOUT_S + SLACK_S)
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_stalled_connections_delay_no_one_and_are_all_dropped(serve: Serve) -> None:
    """Hundreds of stalled connections (half a head, or nothing): /health answers at once
    while they are open, and every one of them is closed after the timeout."""
    server = await serve(HEADER_TIMEOUT_S=str(FLOOD_TIMEOUT_S), LOG_LEVEL="warning")
    half = SLOW_CLIENTS // 2
    async with (
        connections(server, half, HALF_HEAD) as halves,
        connections(server, SLOW_CLIENTS - half) as silent,
    ):
        stalled = halves + silent
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            started = time.monotonic()
            health = await http.get("/health", timeout=5)
            answered_in = time.monotonic() - started
        assert health.status_code == 200
        assert answered_in < 1.0, f"/health took {answered_in:.2f} s"
        assert not any(reader.at_eof() for reader, _ in stalled)  # all still open then

        answers = await asyncio.gather(
            *(read_to_eof(reader, FLOOD_TIMEOUT_S + SLACK_S + 5) for reader, _ in stalled)
        )
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers[:half])
    assert all(a == b"" for a in answers[half:])


async def test_a_slow_client_that_completes_its_head_in_time_is_served(serve: Serve) -> None:
    """A head trickled in over most of the timeout is served: the limit is on the whole
    head, not on each byte."""
    server = await serve(HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S))
    pieces = [REQUEST[i : i + 8] for i in range(0, len(REQUEST), 8)]
    async with connections(server, 1) as [(reader, writer)]:
        started = time.monotonic()
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(HEADER_TIMEOUT_S * 0.6 / len(pieces))  # the client's pace
        status, body = await read_response(reader)
    assert time.monotonic() - started > HEADER_TIMEOUT_S / 2
    assert status == b"HTTP/1.1 200 OK"
    assert b'"status"' in body


async def test_keep_alive_serves_two_requests_with_a_pause_shorter_than_the_timeout(
    serve: Serve,
) -> None:
    """Two requests on one connection, idle in between for most of the timeout."""
    server = await serve(HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S))
    async with connections(server, 1, REQUEST) as [(reader, writer)]:
        assert (await read_response(reader))[0] == b"HTTP/1.1 200 OK"
        await asyncio.sleep(HEADER_TIMEOUT_S * 0.6)  # the client idles on purpose
        writer.write(REQUEST)
        assert (await read_response(reader))[0] == b"HTTP/1.1 200 OK"


async def test_a_websocket_stays_open_past_the_header_timeout(serve: Serve) -> None:
    """The handshake is a head; once upgraded the socket is not timed."""
    server = await serve(HEADER_TIMEOUT_S="1")
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws/echo") as ws:
        await asyncio.sleep(2.5)  # outlive the header timeout twice over
        await ws.send("still here?")
        assert await asyncio.wait_for(ws.recv(), 5) == "OK!"


async def test_a_flood_beyond_the_cap_closes_the_oldest_idle_and_health_is_served(
    serve: Serve,
) -> None:
    """With MAX_CONNECTIONS=50, 200 idle sockets: the oldest 150 are closed as the newer
    ones arrive (long before the header timeout), open WebSockets are untouched, and
    /health is answered during the flood."""
    server = await serve(MAX_CONNECTIONS="50", HEADER_TIMEOUT_S="60")
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws/echo") as ws:
        await asyncio.to_thread(server.process.wait_for, "at most 50 connections", 5)
        async with connections(server, 200) as flood:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
                health = await http.get("/health", timeout=5)
            assert health.status_code == 200
            oldest = await asyncio.gather(*(read_to_eof(r, 5) for r, _ in flood[:150]))
            assert oldest == [b""] * 150
            assert not any(reader.at_eof() for reader, _ in flood[-40:])
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), 5) == "OK!"


async def test_over_the_cap_with_every_connection_busy_the_newcomer_is_closed(
    serve: Serve,
) -> None:
    """At the cap with only WebSockets open, a new connection is closed at once and the
    WebSockets keep working."""
    server = await serve(MAX_CONNECTIONS="3", LOG_LEVEL="warning")
    url = f"ws://127.0.0.1:{server.port}/ws/echo"
    async with websockets.connect(url) as a, websockets.connect(url) as b:
        async with websockets.connect(url) as c:
            async with connections(server, 1, REQUEST) as [(reader, _)]:
                assert await read_to_eof(reader, 5) == b""
            for ws in (a, b, c):
                await ws.send("hi")
                assert await asyncio.wait_for(ws.recv(), 5) == "OK!"
        async with connections(server, 1, REQUEST) as [(reader, _)]:  # room again
            assert (await read_response(reader))[0] == b"HTTP/1.1 200 OK"


def test_gate_closes_the_connection_that_has_waited_longest_for_a_head() -> None:
    """Over the cap the victim is the oldest waiting connection; busy ones are never it."""
    gate: Gate[str] = Gate(max_connections=3)
    for now, conn in enumerate(("a", "b", "c")):
        gate.waiting(conn, now)
    assert gate.victim(open_connections=3) is None
    gate.done("a")  # a sent its head
    gate.waiting("b", 3)  # b's response was sent: it waits again, newest now
    gate.waiting("d", 4)
    assert gate.victim(open_connections=4) == "c"
    assert gate.victim(open_connections=4) == "b"
    assert gate.victim(open_connections=4) == "d"
    assert gate.victim(open_connections=4) is None  # every connection busy
    assert Gate[str]().victim(open_connections=10**6) is None  # no cap


def test_gate_gives_up_on_heads_late_by_the_timeout_and_only_those() -> None:
    """`expired` returns each connection once, when its wait reaches the timeout."""
    gate: Gate[str] = Gate(header_timeout_s=10)
    gate.waiting("a", 0)
    gate.waiting("b", 1)
    gate.waiting("c", 2)
    gate.done("b")  # its head arrived in time
    gate.waiting("a", 5)  # answered at 5: its next head is due by 15
    assert gate.expired(now=11.9) == []
    assert gate.expired(now=12) == ["c"]
    assert gate.expired(now=14.9) == []
    assert gate.expired(now=20) == ["a"]
    assert gate.expired(now=100) == []


def test_connection_cap_leaves_descriptors_for_everything_else() -> None:
    """The cap stays a reserve below the open-files limit, and below what was asked for."""
    assert connection_cap(20_000) == 18_000
    assert connection_cap(800) == 800 - FD_RESERVE
    assert connection_cap(64) == 32
    assert connection_cap(20_000, requested=500) == 500
    assert connection_cap(800, requested=5000) == 800 - FD_RESERVE


def test_open_files_limit_is_raised_to_the_hard_limit() -> None:
    """The soft RLIMIT_NOFILE ends at the hard limit (or at least where it was)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        raised = raise_open_files_limit()
        assert raised >= soft
        if hard != resource.RLIM_INFINITY:
            assert raised == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_header_timeout_must_be_positive() -> None:
    """HEADER_TIMEOUT_S=0 would drop every connection: refused at start-up."""
    with pytest.raises(ConfigError, match="HEADER_TIMEOUT_S"):
        make_settings(HEADER_TIMEOUT_S="0")


def test_gate_gives_up_on_bodies_late_by_the_body_timeout() -> None:
    """Bodies have their own wait and timeout; heads are not affected by them."""
    gate: Gate[str] = Gate(header_timeout_s=10, body_timeout_s=2)
    gate.bodies.start("a", 0)
    gate.bodies.start("b", 1)
    gate.bodies.stop("a")  # its body arrived
    assert gate.bodies.expired(now=2.9) == []
    assert gate.bodies.expired(now=3) == ["b"]
    assert gate.expired(now=100) == []
    assert gate.sweep_interval_s == 0.2


def test_gate_closes_an_answered_lingering_connection_first_over_the_cap() -> None:
    """A connection that was answered and waits for its client to close goes before an
    idle one; a connection that is gone waits for nothing."""
    gate: Gate[str] = Gate(max_connections=2)
    gate.waiting("idle", 0)
    gate.waiting("gone", 1)
    gate.lingering.start("answered", 2)
    gate.forget("gone")
    assert gate.victim(open_connections=3) == "answered"
    assert gate.victim(open_connections=3) == "idle"
    assert gate.victim(open_connections=3) is None


HOSTS = frozenset({"127.0.0.1", "::1"})
HOST = [(b"host", b"127.0.0.1")]


def refused(target: bytes, headers: list[tuple[bytes, bytes]]) -> object:
    """The kind of answer `check_head` gives (None: served)."""
    refusal = check_head(target, headers, HOSTS)
    return refusal and refusal.error


def test_check_head_implements_transfer_encoding_chunked_only() -> None:
    """Exactly `chunked`, in any case and with spaces around, in one field."""
    assert refused(b"/", [*HOST, (b"transfer-encoding", b" Chunked ")]) is None
    for codings in ([b"gzip, chunked"], [b"identity"], [b"chunked", b"chunked"]):
        fields = [(b"transfer-encoding", coding) for coding in codings]
        assert refused(b"/", HOST + fields) is NOT_IMPLEMENTED, codings
    assert unparseable("Invalid `Transfer-Encoding` header value").error is NOT_IMPLEMENTED
    assert unparseable("Request has invalid `Transfer-Encoding`").error is NOT_IMPLEMENTED
    assert unparseable("Invalid method encountered").error is BAD_REQUEST
    smuggling = "Content-Length can't be present with Transfer-Encoding"
    assert unparseable(smuggling).error is BAD_REQUEST


def test_check_head_serves_an_absolute_target_only_for_an_allowed_host() -> None:
    """The authority's host (any port, IPv6 unbracketed, any case) must be allowed; `*`
    allows any; other forms, other schemes, user info or no path are 400."""
    for target in (b"http://127.0.0.1:8000/health", b"HTTPS://[::1]/x?y=1", b"*"):
        assert refused(target, HOST) is None, target
    for target in (
        b"http://evil.example/brands/1",
        b"ftp://127.0.0.1/x",
        b"http://user@127.0.0.1/x",
        b"http://127.0.0.1",
        b"127.0.0.1:443",
        b"health",
    ):
        assert refused(target, HOST) is BAD_REQUEST, target
    assert check_head(b"http://evil.example/", HOST, frozenset({"*"})) is None


def test_a_problem_answer_is_rfc_9457_and_closes_the_connection() -> None:
    """Status line, uvicorn's headers, the security headers, a problem body."""
    answer = problem_answer(
        Refusal(HEADERS_TOO_LARGE, "too big"), [(b"server", b"uvicorn"), (b"date", b"today")]
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large"
    fields = dict(line.split(b": ", 1) for line in lines)
    assert fields[b"content-type"] == b"application/problem+json"
    assert fields[b"connection"] == b"close"
    assert fields[b"server"] == b"uvicorn" and fields[b"date"] == b"today"
    assert all(fields[name] == value for name, value in SECURITY_HEADERS)
    assert int(fields[b"content-length"]) == len(body)
    assert json.loads(body) == {
        "type": "header-fields-too-large",
        "title": "Request header fields too large",
        "status": 431,
        "detail": "too big",
    }
