"""The ASGI edge, in-process: the Origin policy, the WebSocket gate's refusals and the
problem middleware's rewrites, each driven by raw ASGI messages."""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import msgspec
import pytest
import websockets
from lihil import Route, WebSocketRoute

from src.edge import ProblemMiddleware, RouteTable, WebSocketGate, origin_allowed
from src.errors import NotFound
from tests.helpers import LiveServer, make_settings

Message = dict[str, Any]
App = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


def routes() -> RouteTable:
    items = Route("/items")

    async def list_items() -> list[int]:
        return []

    async def add_item() -> int:
        return 1

    items.get(list_items)
    items.post(add_item)
    return RouteTable([items], [WebSocketRoute("/ws/echo")])


async def call(app: App, scope: dict[str, Any], incoming: list[Message]) -> list[Message]:
    """Run `app` on one scope; returns every message it sent."""
    sent: list[Message] = []
    pending = list(incoming)

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"headers": [], "extensions": {}, **scope}, receive, send)
    return sent


def http(path: str, method: str = "GET") -> dict[str, Any]:
    return {"type": "http", "path": path, "method": method}


def websocket(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "websocket",
        "path": path,
        "headers": headers or [],
        "extensions": {"websocket.http.response": {}},
    }


def reached() -> tuple[App, list[MutableMapping[str, Any]]]:
    """An inner app that records the scopes reaching it and accepts/answers 200."""
    scopes: list[MutableMapping[str, Any]] = []

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        scopes.append(scope)
        if scope["type"] == "websocket":
            assert await receive() == {"type": "websocket.connect"}  # replayed by the gate
            await send({"type": "websocket.accept"})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    return app, scopes


def body_of(sent: list[Message]) -> Any:
    return msgspec.json.decode(b"".join(m.get("body", b"") for m in sent[1:]))


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        ("http://localhost:3000", "api.example:8000", (), True),
        ("https://127.0.0.1", None, (), True),
        ("http://[::1]:8080", None, (), True),
        ("http://api.example:8000", "api.example:8000", (), True),
        ("http://api.example:9000", "api.example:8000", (), False),
        ("https://evil.example", "api.example:8000", (), False),
        ("https://shop.example", "api.example", ("https://shop.example",), True),
        ("null", "api.example", (), False),
        ("file://", None, (), False),
        ("http://localhost.evil.example", None, (), False),
        ("http://[::1", None, (), False),
    ],
)
def test_origin_policy(origin: str, host: str | None, allowed: tuple[str, ...], ok: bool) -> None:
    """Same host, localhost on any port, or an ALLOWED_ORIGINS entry; nothing else."""
    assert origin_allowed(origin, host, allowed) is ok


def test_route_table_knows_methods_and_websocket_paths() -> None:
    """One table answers both middlewares: Allow for a path, and WebSocket paths."""
    table = routes()
    assert table.allowed_methods(http("/items")) == ["GET", "HEAD", "POST"]  # HEAD wherever GET
    assert table.allowed_methods(http("/nothing")) == []
    assert table.serves_websocket(websocket("/ws/echo"))
    assert not table.serves_websocket(websocket("/items"))


async def test_gate_refuses_a_handshake_to_a_path_without_websocket_with_404() -> None:
    """The refusal is an HTTP 404 problem sent as a handshake denial."""
    inner, scopes = reached()
    sent = await call(
        WebSocketGate(inner, routes(), make_settings()),
        websocket("/items"),
        [{"type": "websocket.connect"}],
    )
    assert scopes == []
    assert [m["type"] for m in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 404
    assert (b"content-type", b"application/problem+json") in sent[0]["headers"]
    assert body_of(sent)["detail"] == "no WebSocket at /items"


async def test_gate_closes_policy_where_the_server_cannot_send_a_denial() -> None:
    """Without the websocket.http.response extension the refusal is a close (HTTP 403)."""
    inner, _ = reached()
    scope = websocket("/items") | {"extensions": {}}
    sent = await call(
        WebSocketGate(inner, routes(), make_settings()), scope, [{"type": "websocket.connect"}]
    )
    assert sent == [{"type": "websocket.close", "code": 1008}]


@pytest.mark.parametrize(
    ("origin", "passes"),
    [(None, True), (b"http://localhost:5173", True), (b"https://evil.example", False)],
)
async def test_gate_lets_allowed_origins_through_and_closes_others_4403(
    origin: bytes | None, passes: bool
) -> None:
    """No Origin or an allowed one reaches the handler; a foreign one is accepted, then 4403."""
    inner, scopes = reached()
    headers = [(b"host", b"api.example")] + ([(b"origin", origin)] if origin else [])
    sent = await call(
        WebSocketGate(inner, routes(), make_settings()),
        websocket("/ws/echo", headers),
        [{"type": "websocket.connect"}],
    )
    assert len(scopes) == passes
    if passes:
        assert sent == [{"type": "websocket.accept"}]
    else:
        assert sent[0] == {"type": "websocket.accept"}
        assert sent[1]["code"] == 4403 and "evil.example" in sent[1]["reason"]


async def test_gate_answers_plain_http_to_a_websocket_path_426() -> None:
    """GET /ws/echo without an upgrade is 426 with Upgrade: websocket, as a problem."""
    inner, scopes = reached()
    sent = await call(WebSocketGate(inner, routes(), make_settings()), http("/ws/echo"), [])
    assert scopes == [] and sent[0]["status"] == 426
    assert (b"upgrade", b"websocket") in sent[0]["headers"]
    assert body_of(sent)["type"] == "upgrade-required"


def plain(status: int) -> App:
    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"Not Found"})

    return app


def raising(exc: Exception, after_start: bool = False) -> App:
    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if after_start:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        raise exc

    return app


@pytest.mark.parametrize(
    ("inner", "path", "method", "status", "problem_type", "allow"),
    [
        (plain(404), "/nothing", "GET", 404, "not-found", None),
        (plain(405), "/items", "DELETE", 405, "method-not-allowed", b"GET, HEAD, POST"),
        (raising(NotFound("item 3 does not exist")), "/items", "GET", 404, "not-found", None),
        (raising(RuntimeError("boom")), "/items", "GET", 500, "internal-error", None),
    ],
)
async def test_problem_middleware_rewrites_what_no_endpoint_answered(
    inner: App, path: str, method: str, status: int, problem_type: str, allow: bytes | None
) -> None:
    """lihil's text/plain 404/405 and escaping exceptions leave as problem+json."""
    sent = await call(ProblemMiddleware(inner, routes()), http(path, method), [])
    headers = dict(sent[0]["headers"])
    assert sent[0]["status"] == status
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers.get(b"allow") == allow
    problem = body_of(sent)
    assert problem["type"] == problem_type and problem["instance"] == path
    assert "boom" not in problem["detail"]  # internal text never reaches the client


async def test_problem_middleware_passes_other_responses_through() -> None:
    """A 200 and its body go out untouched."""
    inner, _ = reached()
    sent = await call(ProblemMiddleware(inner, routes()), http("/items"), [])
    assert sent == [
        {"type": "http.response.start", "status": 200, "headers": []},
        {"type": "http.response.body", "body": b"ok"},
    ]


async def test_problem_middleware_reraises_once_the_response_started() -> None:
    """After the status line went out nothing can be rewritten: the server handles it."""
    with pytest.raises(RuntimeError, match="late"):
        await call(
            ProblemMiddleware(raising(RuntimeError("late"), after_start=True), routes()),
            http("/items"),
            [],
        )


async def test_a_live_server_logs_only_what_is_about_the_user(live_server: LiveServer) -> None:
    """Start-up prints no dependency warnings; a refused handshake logs no ERROR line."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"{live_server.ws}/nope"):
            pass
    assert refused.value.response.status_code == 404
    async with httpx.AsyncClient(base_url=live_server.http) as client:
        assert (await client.get("/health?after-the-refusal")).status_code == 200
    live_server.process.wait_for("GET /health?after-the-refusal")
    lines = live_server.process.lines
    assert not [line for line in lines if "Warning" in line or "ERROR" in line], lines
