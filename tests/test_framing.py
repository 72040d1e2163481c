"""Request heads and bodies as src/server.py reads them: bounded heads (MAX_HEADER_BYTES,
MAX_HEADERS), timed bodies (BODY_TIMEOUT_S), RFC 9112 framing, and protocol errors answered
as problems.

End to end over raw sockets against one real `uvicorn src.main:app --http
src.server:HttpProtocol` for the module; the pure parts are in tests/test_server.py.
"""

import asyncio
import json
import signal
from collections.abc import Iterator
from typing import NamedTuple

import pytest

from src.logs import SECURITY_HEADERS
from tests.conftest import DatabaseCopies
from tests.helpers import AUTH, LiveServer, start_live_server

BODY_TIMEOUT_S = 1.0
SLACK_S = 3.0  # how late past a timeout a close may come on a loaded test machine
MAX_HEADER_BYTES = 16 * 1024  # the defaults
MAX_HEADERS = 100
WS_HANDSHAKE = (
    b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


@pytest.fixture(scope="module")
def server(database_copies: DatabaseCopies) -> Iterator[LiveServer]:
    """One server for the module, on its own copy of the demo catalog; stopped by PID."""
    with database_copies.copy() as url:
        process, port = start_live_server(
            url,
            BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
            HEADER_TIMEOUT_S="30",  # far beyond every wait below: no head is timed out
        )
        try:
            yield LiveServer(process, port)
        finally:
            process.stop(signal.SIGTERM)


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def parse(raw: bytes) -> Answer:
    """The first response in `raw` (its body as given by Content-Length)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(rest)))
    return Answer(int(status_line.split()[1]), headers, rest[:length])


async def exchange(server: LiveServer, request: bytes, within_s: float = 10) -> Answer:
    """Send `request` and read until the server closes; its (first) answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request)
        raw = await asyncio.wait_for(reader.read(), within_s)
    finally:
        writer.close()
    assert raw, "closed without an answer"
    return parse(raw)


def get(target: bytes, *headers: bytes, host: bytes = b"127.0.0.1") -> bytes:
    """A GET that asks the server to close after answering."""
    fields = b"".join(h + b"\r\n" for h in ((b"Host: " + host,) if host else ()) + headers)
    return b"GET " + target + b" HTTP/1.1\r\n" + fields + b"Connection: close\r\n\r\n"


def handshake(target: bytes, *headers: bytes) -> bytes:
    """A WebSocket handshake (to a path that accepts one)."""
    fields = b"".join(h + b"\r\n" for h in headers)
    return b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + WS_HANDSHAKE + fields + b"\r\n"


def assert_problem(answer: Answer, status: int, type_: str) -> None:
    """An RFC 9457 problem, closing the connection, with uvicorn's and the app's headers."""
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["connection"] == "close"
    for name, value in SECURITY_HEADERS:
        assert answer.headers[name.decode()] == value.decode()
    assert answer.headers["server"] == "uvicorn" and answer.headers["date"]
    problem = json.loads(answer.body)
    assert problem["type"] == type_ and problem["status"] == status
    assert problem["title"] and problem["detail"]


@pytest.mark.parametrize(
    "request_",
    [
        "GET /products?limit=٥ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(),
        b"FOO /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Note: a\x00b\r\n\r\n",
    ],
    ids=["raw-utf8-in-url", "unknown-method", "nul-in-header"],
)
async def test_a_request_the_parser_refuses_is_a_bad_request_problem(
    server: LiveServer, request_: bytes
) -> None:
    """uvicorn's text/plain 'Invalid HTTP request received.' becomes a 400 problem."""
    assert_problem(await exchange(server, request_), 400, "bad-request")


async def test_a_head_over_max_header_bytes_is_a_431_problem(server: LiveServer) -> None:
    """A 1 MiB header (uvicorn answered 200) is refused."""
    answer = await exchange(server, get(b"/health", b"X-Big: " + b"a" * (1 << 20)))
    assert_problem(answer, 431, "header-fields-too-large")


async def test_a_head_is_refused_once_it_crosses_the_limit_not_at_its_end(
    server: LiveServer,
) -> None:
    """A header that keeps growing and never ends is answered as soon as the head is over
    MAX_HEADER_BYTES (uvicorn buffered it, waiting for the end)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        for _ in range(4 * MAX_HEADER_BYTES // 1024):
            writer.write(b"a" * 1024)
            await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    assert_problem(parse(raw), 431, "header-fields-too-large")


async def test_more_than_max_headers_is_a_431_problem(server: LiveServer) -> None:
    """MAX_HEADERS fields are served; one more, or 10,000 (uvicorn served them), is 431."""
    fields = [b"X-F%d: v" % i for i in range(10_000)]
    at_limit = await exchange(server, get(b"/health", *fields[: MAX_HEADERS - 2]))  # + Host
    assert at_limit.status == 200  # and Connection: close
    one_more = await exchange(server, get(b"/health", *fields[: MAX_HEADERS - 1]))
    assert_problem(one_more, 431, "header-fields-too-large")
    assert_problem(await exchange(server, get(b"/health", *fields)), 431, "header-fields-too-large")


async def test_a_request_line_over_max_header_bytes_is_a_414_problem(server: LiveServer) -> None:
    """The request target alone over the limit: 414, not 431."""
    answer = await exchange(server, get(b"/health?x=" + b"a" * MAX_HEADER_BYTES))
    assert_problem(answer, 414, "uri-too-long")


@pytest.mark.parametrize(
    ("request_", "status", "type_"),
    [
        (
            handshake(b"/ws/echo", *[b"X-F%d: v" % i for i in range(MAX_HEADERS)]),
            431,
            "header-fields-too-large",
        ),
        (  # over the websockets library's 8 KiB line, under MAX_HEADER_BYTES
            handshake(b"/ws/echo?x=" + b"a" * 9000),
            414,
            "uri-too-long",
        ),
    ],
    ids=["over-max-headers", "line-over-8-KiB"],
)
async def test_a_websocket_handshake_over_the_head_limits_is_a_problem(
    server: LiveServer, request_: bytes, status: int, type_: str
) -> None:
    """A handshake is a head: MAX_HEADERS applies (the websockets library allows 128), and
    its own 8 KiB line limit is answered as a problem, not in text/plain."""
    assert_problem(await exchange(server, request_), status, type_)


@pytest.mark.parametrize(
    "request_",
    [
        get(b"/health", host=b""),
        get(b"/health", b"Host: 127.0.0.1"),
    ],
    ids=["no-host", "two-hosts"],
)
async def test_a_request_without_host_or_with_two_is_a_400_problem(
    server: LiveServer, request_: bytes
) -> None:
    """RFC 9112 3.2: a request needs exactly one Host (the edge's check, as served)."""
    assert_problem(await exchange(server, request_), 400, "bad-request")


@pytest.mark.parametrize(
    "coding",
    [
        b"Transfer-Encoding: identity, chunked",
        b"Transfer-Encoding: gzip, chunked",
        b"Transfer-Encoding: chunked, chunked",
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked",
    ],
    ids=["identity-chunked", "gzip-chunked", "chunked-chunked", "two-fields"],
)
async def test_a_transfer_encoding_other_than_chunked_is_a_501_problem(
    server: LiveServer, coding: bytes
) -> None:
    """Only `chunked` alone frames a request body here (llhttp read some of these)."""
    request_ = (
        b"POST /products HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: {AUTH['Authorization']}\r\n".encode()
        + coding
        + b'\r\n\r\n15\r\n{"brand_name": "TE!"}\r\n0\r\n\r\n'
    )
    assert_problem(await exchange(server, request_), 501, "not-implemented")


async def test_an_absolute_form_target_is_served_only_for_an_allowed_host(
    server: LiveServer,
) -> None:
    """`GET http://evil.example/health` is refused; the same for an allowed host is served."""
    refused = await exchange(server, get(b"http://evil.example/health"))
    assert_problem(refused, 400, "bad-request")
    served = await exchange(server, get(b"http://127.0.0.1:%d/health" % server.port))
    assert served.status == 200


async def test_a_stalled_body_is_a_408_problem_and_closed(server: LiveServer) -> None:
    """A body that stops arriving is given up BODY_TIMEOUT_S after its head."""
    request_ = (
        b"POST /products HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: {AUTH['Authorization']}\r\n".encode()
        + b'Content-Length: 100\r\n\r\n{"brand_name": '
    )
    answer = await exchange(server, request_, within_s=BODY_TIMEOUT_S + SLACK_S)
    assert_problem(answer, 408, "request-timeout")


async def test_a_stalled_body_the_app_answered_without_reading_is_just_closed(
    server: LiveServer,
) -> None:
    """An unauthorized write is answered 401 before its body; the stalled body then closes
    the connection once BODY_TIMEOUT_S is over, with nothing after the 401 (uvicorn held
    it for its keep-alive timeout, 5 s)."""
    request_ = (
        b"POST /products HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"brand_name": '
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request_)
        raw = await asyncio.wait_for(reader.read(), BODY_TIMEOUT_S + SLACK_S)
    finally:
        writer.close()
    answer = parse(raw)
    assert answer.status == 401
    assert raw.endswith(answer.body)  # one answer, then the close


async def test_requests_within_the_limits_are_served_whatever_their_total_size(
    server: LiveServer,
) -> None:
    """Guard: the head limits are per head. Pipelined heads over MAX_HEADER_BYTES in all,
    in one write, are all served; a body over it is no head; a chunked body is read."""
    health = get(b"/health").replace(b"Connection: close\r\n", b"")
    count = 2 * MAX_HEADER_BYTES // len(health)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(health * count + get(b"/health"))
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert raw.count(b"HTTP/1.1 200 OK\r\n") == count + 1

    product = json.dumps({"product_name": "x" * 40_000, "brand_id": 1}).encode()
    write = (
        b"POST /products HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: {AUTH['Authorization']}\r\nConnection: close\r\n".encode()
    )
    big = await exchange(server, write + b"Content-Length: %d\r\n\r\n" % len(product) + product)
    assert big.status == 422  # the name is too long: the app read the body
    small = json.dumps({"product_name": "Chunked", "brand_id": 1}).encode()
    chunked = await exchange(
        server,
        write + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(small), small),
    )
    assert chunked.status == 201
