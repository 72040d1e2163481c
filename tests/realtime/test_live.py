"""End to end: a real uvicorn on port 0, real `websockets` clients, every close code."""

import asyncio
import json
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Origin

from tests.helpers import LiveServer, start_live_server

TIMEOUT = 10


async def recv(ws: ClientConnection) -> str:
    frame = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert isinstance(frame, str)
    return frame


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(await recv(ws))
    return result


async def close_of(ws: ClientConnection) -> tuple[int, str]:
    """Read until the server closes; the close code and reason it sent."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None, "closed without a close frame"
        return closed.rcvd.code, closed.rcvd.reason


async def wait_for_count(ws: ClientConnection, expected: str) -> None:
    """Read /counter frames until one equals `expected`."""
    while (frame := await recv(ws)) != expected:
        assert frame.isdigit()


@pytest.fixture
async def counter_watcher(live_server: LiveServer) -> AsyncIterator[ClientConnection]:
    async with websockets.connect(f"{live_server.ws}/counter") as ws:
        assert await recv(ws) == "1"
        yield ws


async def test_counter_counts_clients_and_drops_back_after_abrupt_loss(
    live_server: LiveServer, counter_watcher: ClientConnection
) -> None:
    """Clients that vanish without a close frame stop counting."""
    clients = [await websockets.connect(f"{live_server.ws}/counter") for _ in range(5)]
    await wait_for_count(counter_watcher, "6")
    for ws in clients[:3]:
        ws.transport.abort()  # TCP reset: no close frame
    await wait_for_count(counter_watcher, "3")
    for ws in clients[3:]:
        await ws.close()
    await wait_for_count(counter_watcher, "1")


async def test_counter_join_storm_costs_linear_messages(
    live_server: LiveServer, counter_watcher: ClientConnection
) -> None:
    """50 clients joining at once: each gets a few coalesced frames, all end on 51."""
    url = f"{live_server.ws}/counter"
    clients = await asyncio.gather(*(websockets.connect(url) for _ in range(50)))
    frames: list[int] = []

    async def drain(ws: ClientConnection) -> None:
        while (frame := await recv(ws)) != "51":
            frames.append(int(frame))
        frames.append(51)

    await asyncio.gather(*(drain(ws) for ws in [*clients, counter_watcher]))
    assert len(frames) < 51 * 10  # the tutorial's counter would send 51*52/2 = 1326+
    await asyncio.gather(*(ws.close() for ws in clients))
    await wait_for_count(counter_watcher, "1")


async def test_counter_notices_a_silent_client_through_pings(database_url: str) -> None:
    """A peer that stops answering pings (no FIN, no close) is dropped from the count."""
    process, port = start_live_server(
        database_url, extra_args=["--ws-ping-interval", "0.5", "--ws-ping-timeout", "0.5"]
    )
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/counter") as watcher:
            assert await recv(watcher) == "1"
            silent = raw_websocket(port, "/counter")  # never reads nor answers a ping
            await wait_for_count(watcher, "2")
            await wait_for_count(watcher, "1")
            silent.close()
    finally:
        process.stop(signal.SIGTERM)


async def test_viewers_of_a_product_are_counted_apart_from_other_products(
    shared_server: LiveServer,
) -> None:
    """Each viewer gets the product's viewer count on connect and on every change; another
    product's viewers are not counted (product ids of this test's own)."""
    url = f"{shared_server.ws}/ws/products/%d/viewers"
    async with websockets.connect(url % 777001) as first:
        await wait_for_count(first, "1")
        async with websockets.connect(url % 777001) as second:
            await wait_for_count(second, "2")
            await wait_for_count(first, "2")
            async with websockets.connect(url % 777002) as elsewhere:
                await wait_for_count(elsewhere, "1")
        await wait_for_count(first, "1")


@pytest.mark.parametrize("product_id", ["0", "05", "abc", "1e3", "2147483648", "-1"])
async def test_a_bad_product_id_closes_viewers_4400(
    shared_server: LiveServer, product_id: str
) -> None:
    async with websockets.connect(f"{shared_server.ws}/ws/products/{product_id}/viewers") as ws:
        code, reason = await close_of(ws)
    assert code == 4400 and reason.startswith("product_id must be an integer")


async def test_room_welcome_counts_and_messages(shared_server: LiveServer) -> None:
    """Welcome first, then counts on joins and leaves; messages reach every member."""
    url = f"{shared_server.ws}/web_socket/live-room-1?max_users=3"
    async with websockets.connect(url) as a:
        welcome_a = await recv_json(a)
        assert welcome_a == {
            "type": "welcome",
            "session_id": "live-room-1",
            "member_id": welcome_a["member_id"],
            "users": 1,
            "max_users": 3,
        }
        assert await recv_json(a) == {
            "type": "count",
            "session_id": "live-room-1",
            "users": 1,
            "max_users": 3,
        }
        async with websockets.connect(url.replace("=3", "=50")) as b:
            welcome_b = await recv_json(b)
            assert welcome_b["type"] == "welcome" and welcome_b["max_users"] == 3
            assert welcome_b["member_id"] != welcome_a["member_id"]
            assert (await recv_json(b))["users"] == 2
            assert (await recv_json(a))["users"] == 2
            await b.send("hello")
            for ws in (a, b):
                assert await recv_json(ws) == {
                    "type": "message",
                    "session_id": "live-room-1",
                    "member_id": welcome_b["member_id"],
                    "text": "hello",
                }
        assert await recv_json(a) == {
            "type": "count",
            "session_id": "live-room-1",
            "users": 1,
            "max_users": 3,
        }


async def test_join_storm_admits_exactly_the_capacity(shared_server: LiveServer) -> None:
    """50 concurrent joins to a room of 5: exactly 5 welcomes, 45 closes with 4429."""
    url = f"{shared_server.ws}/web_socket/live-storm?max_users=5"
    clients = await asyncio.gather(*(websockets.connect(url) for _ in range(50)))

    async def outcome(ws: ClientConnection) -> Any:
        try:
            return (await recv_json(ws))["type"]
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code, closed.rcvd.reason

    outcomes = await asyncio.gather(*(outcome(ws) for ws in clients))
    assert outcomes.count("welcome") == 5
    assert outcomes.count((4429, "session full (5/5)")) == 45
    await asyncio.gather(*(ws.close() for ws in clients))


async def test_room_is_recreated_after_it_empties(shared_server: LiveServer) -> None:
    """The next member after the room emptied fixes a new capacity."""
    async with websockets.connect(f"{shared_server.ws}/web_socket/live-again?max_users=1") as ws:
        assert (await recv_json(ws))["max_users"] == 1
    async with websockets.connect(f"{shared_server.ws}/web_socket/live-again?max_users=4") as ws:
        assert (await recv_json(ws))["max_users"] == 4


async def test_broadcast_reaches_everyone_in_order(shared_server: LiveServer) -> None:
    """Every client, sender included, sees all frames in the order the server got them."""
    url = f"{shared_server.ws}/ws/broadcast"
    async with websockets.connect(url) as a, websockets.connect(url) as b:
        for i in range(200):
            await (a if i % 2 else b).send(f"m{i}")
        seen_a = [await recv(a) for _ in range(200)]
        seen_b = [await recv(b) for _ in range(200)]
        assert seen_a == seen_b
        assert [m for m in seen_a if int(m[1:]) % 2] == [f"m{i}" for i in range(1, 200, 2)]
        assert [m for m in seen_a if not int(m[1:]) % 2] == [f"m{i}" for i in range(0, 200, 2)]


def raw_websocket(port: int, path: str, *, rcvbuf: int | None = None) -> socket.socket:
    """A bare client: handshakes, then reads nothing (and answers no ping) until asked."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return sock


def read_close_frame(sock: socket.socket) -> tuple[int, str]:
    """Read the server's frames (unmasked) until its close frame; its code and reason."""
    sock.settimeout(TIMEOUT)
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    del buffer[: buffer.index(b"\r\n\r\n") + 4]  # the 101 response
    while True:
        while len(buffer) < 10:
            chunk = sock.recv(1 << 20)
            assert chunk, "connection ended without a close frame"
            buffer += chunk
        opcode, length, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
        if length == 126:
            length, offset = int.from_bytes(buffer[2:4]), 4
        elif length == 127:
            length, offset = int.from_bytes(buffer[2:10]), 10
        while len(buffer) < offset + length:
            chunk = sock.recv(1 << 20)
            assert chunk, "connection ended without a close frame"
            buffer += chunk
        payload = bytes(buffer[offset : offset + length])
        del buffer[: offset + length]
        if opcode == 8:
            return int.from_bytes(payload[:2]), payload[2:].decode()


async def drain(ws: ClientConnection, count: int) -> int:
    """Receive `count` frames; how many came."""
    for _ in range(count):
        await ws.recv()
    return count


async def test_slow_reader_is_closed_1008_without_delaying_others(database_url: str) -> None:
    """A client that never reads overflows its queue; a reading client gets every frame."""
    # The sender sends 300 frames at once: over the default rate limit (bursts of 200).
    process, port = start_live_server(
        database_url, WS_SEND_QUEUE="8", WS_MAX_MESSAGES_PER_S="10000"
    )
    url = f"ws://127.0.0.1:{port}/ws/broadcast"
    slow = raw_websocket(port, "/ws/broadcast", rcvbuf=4096)
    try:
        async with (
            websockets.connect(url, max_size=None) as fast,
            websockets.connect(url, max_size=None) as sender,
        ):
            payload = "x" * 60_000
            # The sender receives every broadcast too: read them, or closing it at the end
            # waits out the client's close timeout (10 s) behind unread frames.
            echoed = asyncio.create_task(asyncio.wait_for(drain(sender, 300), TIMEOUT))
            for i in range(300):  # ~18 MB: far more than the kernel buffers hold
                await sender.send(f"{i}:{payload}")
                assert (await recv(fast)).startswith(f"{i}:")  # never held up by `slow`
            code, reason = await asyncio.to_thread(read_close_frame, slow)
            assert (code, reason) == (1008, "too slow: send queue overflowed")
            assert await echoed == 300
    finally:
        slow.close()
        process.stop(signal.SIGTERM)


async def test_echo_answers_ok(shared_server: LiveServer) -> None:
    """/ws/echo answers every text frame with OK!, up to the 64 KiB limit."""
    async with websockets.connect(f"{shared_server.ws}/ws/echo") as ws:
        for text in ("a", "", "ü" * 100, "€" * 21_000, "x" * 64 * 1024):
            await ws.send(text)
            assert await recv(ws) == "OK!"


@pytest.mark.parametrize("path", ["/ws/echo", "/ws/broadcast", "/web_socket/live-bin"])
async def test_binary_frame_closes_1003(shared_server: LiveServer, path: str) -> None:
    """Text-only endpoints close with 1003 on a binary frame."""
    async with websockets.connect(f"{shared_server.ws}{path}") as ws:
        await ws.send(b"\x00\x01")
        code, reason = await close_of(ws)
        assert code == 1003 and "binary" in reason


async def test_counter_ignores_binary_and_text(live_server: LiveServer) -> None:
    """Whatever a /counter client sends is ignored; it stays connected."""
    async with websockets.connect(f"{live_server.ws}/counter") as ws:
        assert await recv(ws) == "1"
        await ws.send(b"\x00")
        await ws.send("hello")
        async with websockets.connect(f"{live_server.ws}/counter") as other:
            assert await recv(other) == "2"
            assert await recv(ws) == "2"


@pytest.mark.parametrize("path", ["/ws/echo", "/ws/broadcast", "/web_socket/live-big"])
@pytest.mark.parametrize("text", ["x" * (64 * 1024 + 1), "€" * 22_000], ids=["ascii", "utf8"])
async def test_oversized_frame_closes_1009(shared_server: LiveServer, path: str, text: str) -> None:
    """A frame over WS_MAX_MESSAGE_BYTES (64 KiB, counted in UTF-8 bytes) closes with 1009."""
    async with websockets.connect(f"{shared_server.ws}{path}") as ws:
        await ws.send(text)
        code, _ = await close_of(ws)
        assert code == 1009


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/web_socket/bad.id", "session_id must be 1-64 characters of A-Z a-z 0-9 _ -"),
        (f"/web_socket/{'x' * 65}", "session_id must be 1-64 characters of A-Z a-z 0-9 _ -"),
        ("/web_socket/ok?max_users=0", "max_users must be an integer from 1 to 1000"),
        ("/web_socket/ok?max_users=five", "max_users must be an integer from 1 to 1000"),
        ("/web_socket/ok?max_users=1001", "max_users must be an integer from 1 to 1000"),
        # int() itself refuses over 4,300 digits: that was a ValueError, so a 1011 close.
        (f"/web_socket/ok?max_users={'9' * 5000}", "max_users must be an integer from 1 to 1000"),
        ("/ws/catalog?after=-1", f"after must be a change id: an integer from 0 to {2**63 - 1}"),
        ("/web_socket/ok?max_users=2&max_users=9", "max_users given more than once; give it once"),
    ],
)
async def test_bad_parameters_close_4400_with_a_reason(
    shared_server: LiveServer, path: str, reason: str
) -> None:
    """Bad path or query parameters are accepted, then closed 4400 saying why."""
    async with websockets.connect(f"{shared_server.ws}{path}") as ws:
        assert await close_of(ws) == (4400, reason)


@pytest.mark.parametrize(
    ("path", "send", "first"),
    [
        ("/ws/echo", "hi", "OK!"),
        ("/ws/broadcast", "hi", "hi"),
        ("/web_socket/live-origin?max_users=2", None, "welcome"),
    ],
)
async def test_foreign_origin_closes_4403(
    shared_server: LiveServer, path: str, send: str | None, first: str
) -> None:
    """A handshake from another site's Origin is closed 4403; localhost is fine."""
    url = f"{shared_server.ws}{path}"
    async with websockets.connect(url, origin=Origin("https://evil.example")) as ws:
        code, reason = await close_of(ws)
        assert code == 4403 and "evil.example" in reason
    async with websockets.connect(url, origin=Origin("http://localhost:5173")) as ws:
        if send is not None:
            await ws.send(send)
        if first == "welcome":  # the refused client never joined: this one is alone
            welcome = await recv_json(ws)
            assert welcome == {
                "type": "welcome",
                "session_id": "live-origin",
                "member_id": welcome["member_id"],
                "users": 1,
                "max_users": 2,
            }
        else:
            assert await recv(ws) == first


async def test_a_foreign_origin_on_counter_is_never_counted(live_server: LiveServer) -> None:
    """Closed 4403, and the next client is alone on /counter (its own server: it counts)."""
    url = f"{live_server.ws}/counter"
    async with websockets.connect(url, origin=Origin("https://evil.example")) as ws:
        code, reason = await close_of(ws)
        assert code == 4403 and "evil.example" in reason
    async with websockets.connect(url, origin=Origin("http://localhost:5173")) as ws:
        assert await recv(ws) == "1"


async def test_client_close_is_answered_1000(shared_server: LiveServer) -> None:
    """A normal client close completes with 1000 both ways."""
    async with websockets.connect(f"{shared_server.ws}/ws/echo") as ws:
        await ws.close()
        assert ws.close_code == 1000


async def test_graceful_stop_sends_1001_to_everyone(database_url: str) -> None:
    """SIGTERM: every client of every endpoint is closed with 1001, the server exits 0."""
    process, port = start_live_server(database_url)
    base = f"ws://127.0.0.1:{port}"
    paths = ["/counter", "/ws/echo", "/ws/broadcast", "/web_socket/s?max_users=2"]
    clients = [await websockets.connect(base + p) for p in paths]
    for ws in (clients[0], clients[3]):
        await recv(ws)  # connected and greeted
    process.proc.send_signal(signal.SIGTERM)
    closes = await asyncio.gather(*(close_of(ws) for ws in clients))
    assert closes == [(1001, "server shutting down")] * 4
    # uvicorn re-raises the signal it stopped on, so the process ends "killed by SIGTERM".
    assert await asyncio.to_thread(process.stop, signal.SIGTERM) in (0, -signal.SIGTERM)


@pytest.mark.parametrize("path", ["/health", "/products/1", "/nowhere", "/counter/"])
async def test_handshake_to_a_path_without_websocket_is_refused_404(
    shared_server: LiveServer, path: str
) -> None:
    """No WebSocket route there (HTTP routes included): HTTP 404 with a problem body."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{shared_server.ws}{path}")
    response = refused.value.response
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert json.loads(response.body)["type"] == "not-found"


async def test_malformed_origin_closes_4403(shared_server: LiveServer) -> None:
    """An Origin that is not even a URL is refused like a foreign one."""
    url = f"{shared_server.ws}/ws/echo"
    async with websockets.connect(url, origin=Origin("http://[::1")) as ws:
        code, _ = await close_of(ws)
        assert code == 4403


@pytest.fixture
def limited_server(database_url: str) -> Iterator[LiveServer]:
    process, port = start_live_server(
        database_url, WS_MAX_MESSAGES_PER_S="10", WS_MAX_CONNECTIONS_PER_ADDRESS="3"
    )
    try:
        yield LiveServer(process, port)
    finally:
        process.stop(signal.SIGTERM)


@pytest.mark.parametrize("path", ["/counter", "/ws/echo", "/ws/catalog"])
async def test_a_flooding_client_is_closed_1008_on_any_endpoint(
    limited_server: LiveServer, path: str
) -> None:
    """10 frames a second sustained, bursts of 20: the 21st frame at once is too many."""
    async with websockets.connect(f"{limited_server.ws}{path}") as ws:
        for i in range(40):
            try:
                await ws.send(f"frame {i}")
            except websockets.ConnectionClosed:
                break
        assert await close_of(ws) == (1008, "sending faster than 10 frames a second")


async def test_a_client_within_the_rate_is_served(limited_server: LiveServer) -> None:
    async with websockets.connect(f"{limited_server.ws}/ws/echo") as ws:
        for _ in range(20):  # the burst
            await ws.send("hi")
            assert await recv(ws) == "OK!"


async def test_too_many_sockets_from_one_address_close_1013(limited_server: LiveServer) -> None:
    """The fourth socket from 127.0.0.1 is refused (any endpoint counts); one closing makes
    room again."""
    first = await websockets.connect(f"{limited_server.ws}/counter")
    others = [await websockets.connect(f"{limited_server.ws}/ws/echo") for _ in range(2)]
    async with websockets.connect(f"{limited_server.ws}/ws/broadcast") as refused:
        code, reason = await close_of(refused)
    assert code == 1013 and reason.startswith("too many connections from this address (3")
    await first.close()
    # The server counts the socket out when its handler has finished, a moment after the
    # close handshake the client saw: a handshake in that moment may still be refused.
    for _ in range(50):
        async with websockets.connect(f"{limited_server.ws}/ws/echo") as again:
            await again.send("hi")
            try:
                assert await recv(again) == "OK!"
                break
            except websockets.ConnectionClosed:
                continue
    else:
        raise AssertionError("no room after a socket closed")
    for ws in others:
        await ws.close()
