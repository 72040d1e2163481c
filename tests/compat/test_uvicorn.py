"""src/compat/uvicorn.py in-process: what `HookedHttpToolsProtocol` answers at once
(`answer_at_once`), and what it leaves to uvicorn and the app, on a transport that records
what is written."""

import asyncio
from collections.abc import MutableMapping
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from src.compat.uvicorn import HookedHttpToolsProtocol, Immediate

ANSWER = (200, [(b"content-type", b"text/plain"), (b"content-length", b"3")], b"hit")


class Transport(asyncio.Transport):
    """Records writes; a connection from 127.0.0.1."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.written = asyncio.Event()  # set by each write
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        self.written.set()

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class App:
    """An ASGI app that answers 200 "app", each request once `release` is set."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        await self.release.wait()
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"3")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"app"})


class Protocol(HookedHttpToolsProtocol):
    """Answers GET /hit at once; records what it was asked."""

    asked: list[tuple[str, str, bytes]]

    def answer_at_once(
        self, method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]]
    ) -> Immediate | None:
        self.asked.append((method, path, query))
        return ANSWER if path == "/hit" else None


def connect(app: App) -> tuple[Protocol, Transport]:
    config = Config(app=app, lifespan="off", proxy_headers=False, log_level="warning")
    config.load()
    state = ServerState()
    state.default_headers = [(b"date", b"Sun, 06 Dec 2026 00:00:00 GMT"), (b"server", b"uvicorn")]
    protocol = Protocol(config, state, {}, asyncio.get_running_loop())
    protocol.asked = []
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


def get(target: bytes, *headers: bytes, version: bytes = b"1.1") -> bytes:
    lines = [b"GET " + target + b" HTTP/" + version, b"Host: x", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def bodies(transport: Transport, count: int) -> list[bytes]:
    """The bodies of the first `count` answers written (each with a 3-byte body), once
    they are all written (the app runs in tasks)."""
    async with asyncio.timeout(5):
        while True:
            data, found = b"".join(transport.writes), list[bytes]()
            while len(found) < count and (end := data.find(b"\r\n\r\n")) >= 0:
                body, data = data[end + 4 : end + 7], data[end + 7 :]
                if len(body) < 3:
                    break
                found.append(body)
            if len(found) == count:
                return found
            transport.written.clear()
            await transport.written.wait()  # the app's task writes


async def test_a_request_answered_at_once_is_one_write_and_never_reaches_the_app() -> None:
    app = App()
    protocol, transport = connect(app)
    protocol.data_received(get(b"/hit?a=1"))
    assert protocol.asked == [("GET", "/hit", b"a=1")]
    assert app.paths == []
    (written,) = transport.writes  # written before data_received returned
    head, body = written.split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK" and body == b"hit"
    assert b"server: uvicorn" in lines and b"content-length: 3" in lines
    assert b"date: Sun, 06 Dec 2026 00:00:00 GMT" in lines
    # As after an app's answer: counted, and the connection waits for its next head.
    assert protocol.server_state.total_requests == 1
    assert protocol.timeout_keep_alive_task is not None
    protocol.data_received(get(b"/hit"))
    assert len(transport.writes) == 2 and not transport.closed
    protocol.connection_lost(None)


async def test_what_is_declined_goes_to_the_app() -> None:
    app = App()
    protocol, transport = connect(app)
    protocol.data_received(get(b"/miss"))
    assert await bodies(transport, 1) == [b"app"]
    assert app.paths == ["/miss"]
    protocol.connection_lost(None)


async def test_pipelined_requests_are_answered_in_order_around_the_app() -> None:
    """A hit behind a request the app is still answering waits its turn (uvicorn queues it
    for the app); hits before it are answered at once."""
    app = App()
    app.release.clear()
    protocol, transport = connect(app)
    protocol.data_received(get(b"/hit") + get(b"/slow") + get(b"/hit"))
    assert len(transport.writes) == 1  # the first hit; /slow holds the second back
    app.release.set()
    assert await bodies(transport, 3) == [b"hit", b"app", b"app"]
    assert app.paths == ["/slow", "/hit"]
    protocol.connection_lost(None)


async def test_only_plain_bodiless_kept_alive_gets_and_heads_are_offered() -> None:
    cases = [
        get(b"/hit", version=b"1.0"),  # no keep-alive by default
        get(b"/hit", b"Connection: close"),
        get(b"/hit", b"Content-Length: 2") + b"{}",  # a body
        get(b"/h%69t"),  # percent-escaped: uvicorn unquotes it
        b"POST /hit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    ]
    for request in cases:
        app = App()
        protocol, transport = connect(app)
        protocol.data_received(request)
        assert await bodies(transport, 1) == [b"app"], request
        assert protocol.asked == [], request
        protocol.connection_lost(None)
    app = App()
    protocol, transport = connect(app)
    protocol.data_received(b"HEAD /hit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert protocol.asked == [("HEAD", "/hit", b"")] and app.paths == []
    protocol.connection_lost(None)
