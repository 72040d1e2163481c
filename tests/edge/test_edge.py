"""The ASGI edge in-process, driven by raw ASGI messages: the order of answers, hosts,
integers, CORS, the write gate, WebSocket refusals, a client gone mid-body, and what every
answer carries."""

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from types import SimpleNamespace
from typing import Annotated, Any

import httpx
import msgspec
import pytest
import websockets
from lihil import Param
from starlette.requests import Request

from src.edge import Edge
from src.edge.cache import ResponseCache
from src.edge.routes import RouteTable, operation
from src.errors import Unauthorized
from tests.helpers import AUTH, LiveServer, make_settings
from tests.test_metrics import sample

Message = dict[str, Any]
App = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


class FakeRoute:
    """Stands in for a lihil route: what the edge reads of one (path, regex, endpoints),
    and an ASGI app that records the scopes reaching it and answers 200 "ok" (after
    reading the body, for a method with one)."""

    def __init__(self, path: str, handlers: dict[str, Callable[..., Any]]) -> None:
        self.path = path
        self.path_regex = re.compile("^" + re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", path) + "$")
        self.endpoints = {m: SimpleNamespace(unwrapped_func=h) for m, h in handlers.items()}
        self.scopes: list[MutableMapping[str, Any]] = []

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        if scope["type"] == "websocket":
            assert await receive() == {"type": "websocket.connect"}  # replayed by the edge
            await send({"type": "websocket.accept"})
            return
        if scope["method"] in ("POST", "PUT"):
            await Request(scope, receive).body()
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})


async def list_items(limit: Annotated[int, Param("query", ge=1)] = 20) -> None: ...


async def get_item(item_id: int) -> None: ...


@operation("addItem", "Add an item", Unauthorized)
async def add_item() -> None: ...


class Service:
    """An edge over three routes, with the metrics it observed."""

    def __init__(self, **settings: object) -> None:
        self.items = FakeRoute("/items", {"GET": list_items, "POST": add_item})
        self.item = FakeRoute("/items/{item_id}", {"GET": get_item})
        self.echo = FakeRoute("/ws/echo", {})
        self.observed: list[tuple[str, str, int]] = []
        table = RouteTable([self.items, self.item], [self.echo])
        self.edge = Edge(self._unreachable, table, make_settings(**settings), self._observe)

    def _observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.observed.append((method, route, status))

    async def _unreachable(self, scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the edge calls the matched route itself")

    async def request(
        self,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        body: list[Message] | None = None,
        query: bytes = b"",
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "query_string": query,
            "headers": [(b"host", b"localhost:8000"), *(headers or [])],
        }
        sent = await call(self.edge, scope, body or [])
        return (
            sent[0]["status"],
            dict(sent[0]["headers"]),
            b"".join(m.get("body", b"") for m in sent[1:]),
        )


async def call(app: App, scope: dict[str, Any], incoming: list[Message]) -> list[Message]:
    """Run `app` on one scope; returns every message it sent."""
    sent: list[Message] = []
    pending = list(incoming)

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"extensions": {}, **scope}, receive, send)
    return sent


def problem(body: bytes) -> Any:
    return msgspec.json.decode(body)


FORM = [(b"content-type", b"application/x-www-form-urlencoded")]


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("POST", "/nope", [], 404),  # no Content-Type: was 415
        ("POST", "/nope", FORM, 404),  # curl -d x=1: was 415
        ("PATCH", "/items/1", [], 405),  # was 415
        ("DELETE", "/items", FORM, 405),
        ("POST", "/items/1", [], 405),
    ],
)
async def test_404_and_405_come_before_the_gate_and_the_body_checks(
    method: str, path: str, headers: list[tuple[bytes, bytes]], status: int
) -> None:
    """A path no route serves is 404, a method its route does not serve 405 with Allow,
    whatever the headers or body; only then 401/429 and 415/413/422."""
    service = Service()
    got, sent, body = await service.request(method, path, headers)
    assert got == status
    assert sent[b"content-type"] == b"application/problem+json"
    if status == 405:
        allowed = b"GET, HEAD, POST" if path == "/items" else b"GET, HEAD"
        assert sent[b"allow"] == allowed and problem(body)["type"] == "method-not-allowed"


async def test_the_gate_then_the_body_checks_in_order() -> None:
    """A write to a served path: 401 without a token, then 415 for a body not JSON."""
    service = Service()
    assert (await service.request("POST", "/items", FORM))[0] == 401
    assert (await service.request("POST", "/items", [*FORM, *_auth()]))[0] == 415
    json = [(b"content-type", b"application/json"), *_auth()]
    assert (await service.request("POST", "/items", json, [_body(b"{}")]))[0] == 200


def _auth() -> list[tuple[bytes, bytes]]:
    return [(b"authorization", AUTH["Authorization"].encode())]


def _body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


@pytest.mark.parametrize("value", ["1e2", "1.0", "05", "+5", "-5", " 5", "٥", "1_0", ""])
async def test_query_integers_are_canonical_decimal_or_422_naming_them(value: str) -> None:
    """limit=1e2 was 100 items, limit=1.0 one item, limit=05 a 422: one reading now."""
    service = Service()
    query = f"limit={value}".encode()
    status, _, body = await service.request("GET", "/items", query=query)
    assert status == 422
    (error,) = problem(body)["errors"]
    assert error["location"] == "query" and error["field"] == "limit"
    assert service.items.scopes == []


@pytest.mark.parametrize("value", ["05", "1e3", "1.0", "0x1"])
async def test_path_integers_are_canonical_decimal_or_422(value: str) -> None:
    service = Service()
    status, _, body = await service.request("GET", f"/items/{value}")
    assert status == 422 and problem(body)["errors"][0]["field"] == "item_id"


async def test_canonical_integers_reach_the_route_with_their_path_parameters() -> None:
    service = Service()
    assert (await service.request("GET", "/items/10"))[0] == 200
    assert service.item.scopes[0]["path_params"] == {"item_id": "10"}
    assert (await service.request("GET", "/items", query=b"limit=0"))[0] == 200


async def test_a_repeated_parameter_is_422_naming_it() -> None:
    status, _, body = await Service().request("GET", "/items", query=b"limit=1&limit=2")
    assert status == 422 and problem(body)["errors"][0]["field"] == "limit"


@pytest.mark.parametrize(
    ("hosts", "detail"),
    [
        ([], "exactly one Host"),
        ([b"localhost", b"localhost"], "must not repeat"),
        ([b"evil.example:8000"], "does not serve the host"),
    ],
)
async def test_a_host_missing_repeated_or_not_allowed_is_400(
    hosts: list[bytes], detail: str
) -> None:
    service = Service()
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/items",
        "query_string": b"",
        "headers": [(b"host", h) for h in hosts],
    }
    sent = await call(service.edge, scope, [])
    assert sent[0]["status"] == 400
    assert detail in problem(sent[1]["body"])["detail"]
    assert service.items.scopes == []


ORIGIN = [(b"origin", b"https://shop.example")]


async def test_a_preflight_from_an_allowed_origin_is_204_with_the_routes_methods() -> None:
    """No token needed; the route's methods, the headers a client may send, a max age."""
    service = Service(ALLOWED_ORIGINS="https://shop.example")
    preflight = [*ORIGIN, (b"access-control-request-method", b"POST")]
    status, headers, _ = await service.request("OPTIONS", "/items", preflight)
    assert status == 204
    assert headers[b"access-control-allow-origin"] == b"https://shop.example"
    assert headers[b"access-control-allow-methods"] == b"GET, HEAD, POST"
    allow_headers = headers[b"access-control-allow-headers"].decode().lower()
    for name in ["authorization", "content-type", "if-match", "if-none-match"]:
        assert name in allow_headers
    assert int(headers[b"access-control-max-age"]) > 0
    assert headers[b"vary"] == b"Origin"


async def test_answers_to_an_allowed_origin_expose_the_headers_a_client_reads() -> None:
    service = Service(ALLOWED_ORIGINS="https://shop.example")
    for method, path in [("GET", "/items"), ("GET", "/nope")]:
        _, headers, _ = await service.request(method, path, ORIGIN)
        assert headers[b"access-control-allow-origin"] == b"https://shop.example"
        exposed = headers[b"access-control-expose-headers"].decode().lower()
        for name in ["etag", "location", "retry-after", "x-request-id"]:
            assert name in exposed
        assert headers[b"vary"] == b"Origin"


async def test_an_origin_not_allowed_gets_no_cors_header_and_no_preflight() -> None:
    service = Service()
    evil = [(b"origin", b"https://evil.example"), (b"access-control-request-method", b"POST")]
    status, headers, _ = await service.request("OPTIONS", "/items", evil)
    assert status == 405
    assert not [k for k in headers if k.startswith(b"access-control-")]
    _, headers, _ = await service.request("GET", "/items", evil[:1])
    assert not [k for k in headers if k.startswith(b"access-control-")]


async def test_every_answer_carries_its_request_id_and_security_headers() -> None:
    service = Service()
    for path in ["/items", "/nope"]:
        _, headers, _ = await service.request("GET", path)
        assert re.fullmatch(rb"[0-9a-f]{32}", headers[b"x-request-id"])
        assert headers[b"x-content-type-options"] == b"nosniff"
    _, headers, _ = await service.request("GET", "/items", [(b"x-request-id", b"mine-1")])
    assert headers[b"x-request-id"] == b"mine-1"


async def test_requests_are_counted_by_template_once_matched() -> None:
    service = Service()
    await service.request("GET", "/items/3")
    await service.request("GET", "/nope/3")
    await service.request("DELETE", "/items/3")
    assert service.observed == [
        ("GET", "/items/{item_id}", 200),
        ("GET", "unmatched", 404),
        ("DELETE", "/items/{item_id}", 405),
    ]


async def test_a_client_gone_mid_body_is_no_error(caplog: pytest.LogCaptureFixture) -> None:
    """The body stops with http.disconnect: counted as 499, nothing logged, no 500."""
    service = Service()
    json = [(b"content-type", b"application/json"), *_auth()]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/items",
        "query_string": b"",
        "headers": [LOCAL, *json],
    }
    with caplog.at_level(logging.INFO):
        sent = await call(service.edge, scope, [_body(b'{"a"', more=True)])
    assert sent == []  # nobody to answer
    assert service.observed == [("POST", "/items", 499)]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def websocket(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "websocket",
        "path": path,
        "query_string": b"",
        "headers": headers,
        "extensions": {"websocket.http.response": {}},
    }


CONNECT = [{"type": "websocket.connect"}]
LOCAL = (b"host", b"localhost:8000")


async def test_a_handshake_to_a_path_without_websocket_is_a_404_problem() -> None:
    service = Service()
    sent = await call(service.edge, websocket("/items", [LOCAL]), CONNECT)
    assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 404
    assert (b"content-type", b"application/problem+json") in sent[0]["headers"]
    assert problem(sent[1]["body"])["detail"] == "no WebSocket at /items"
    assert service.items.scopes == []


async def test_a_handshake_for_a_host_not_allowed_is_a_400_problem() -> None:
    service = Service()
    headers = [(b"host", b"evil.example:8000"), (b"origin", b"http://evil.example:8000")]
    sent = await call(service.edge, websocket("/ws/echo", headers), CONNECT)
    assert sent[0]["status"] == 400 and service.echo.scopes == []


async def test_a_handshake_closes_policy_where_the_server_cannot_send_a_denial() -> None:
    """Without the websocket.http.response extension the refusal is a close (HTTP 403)."""
    scope = websocket("/items", [LOCAL]) | {"extensions": {}}
    sent = await call(Service().edge, scope, CONNECT)
    assert sent == [{"type": "websocket.close", "code": 1008}]


@pytest.mark.parametrize(
    ("origin", "passes"),
    [(None, True), (b"http://localhost:5173", True), (b"https://evil.example", False)],
)
async def test_allowed_origins_reach_the_handler_and_others_close_4403(
    origin: bytes | None, passes: bool
) -> None:
    service = Service()
    headers = [LOCAL] + ([(b"origin", origin)] if origin else [])
    sent = await call(service.edge, websocket("/ws/echo", headers), CONNECT)
    assert len(service.echo.scopes) == passes
    if passes:
        assert sent == [{"type": "websocket.accept"}]
        assert service.echo.scopes[0]["route"] is service.echo  # the template, for metrics
    else:
        assert sent[0] == {"type": "websocket.accept"}
        assert sent[1]["code"] == 4403 and "evil.example" in sent[1]["reason"]


async def test_plain_http_to_a_websocket_path_is_426() -> None:
    status, headers, body = await Service().request("GET", "/ws/echo")
    assert status == 426 and headers[b"upgrade"] == b"websocket"
    assert problem(body)["type"] == "upgrade-required"


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


async def test_a_client_gone_mid_body_is_counted_499_and_logged_nowhere(
    live_server: LiveServer,
) -> None:
    """Over a real server: a POST whose client closes after part of its body, and one whose
    chunk size cannot be parsed, were each a 500 with starlette's ClientDisconnect traceback
    in the log. Now each is counted as status 499 and nothing is logged."""
    token = AUTH["Authorization"].encode()
    head = (
        b"POST /products HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: " + token + b"\r\n"
    )
    for request in [
        head + b'Content-Length: 200\r\n\r\n{"product_name": "half',
        head + b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"pro\r\nzz\r\n',
    ]:
        _, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
        writer.write(request)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    async with httpx.AsyncClient(base_url=live_server.http) as client:
        deadline = asyncio.get_running_loop().time() + 10
        while True:  # until the server has counted both (each scrape is a round trip)
            text = (await client.get("/metrics")).text
            gone = sample(
                text, "catalog_http_requests_total", method="POST", route="/products", status="499"
            )
            if gone == 2.0 or asyncio.get_running_loop().time() > deadline:
                break
    assert gone == 2.0, text
    assert 'status="500"' not in text
    lines = live_server.process.lines
    assert not [line for line in lines if "ERROR" in line or "Traceback" in line], lines


# -- answers given at once (Edge.answer_now) ------------------------------------------------


def item_tags(path: dict[str, str], query: dict[str, str]) -> set[str]:
    return {"item:" + path["item_id"]}


@operation("getCachedItem", "Get an item", cache=item_tags)
async def get_cached_item(item_id: int) -> None: ...


class PositionedRoute(FakeRoute):
    """A cacheable route: its 200 carries the position its read saw, as catalog reads do."""

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        body = b'{"item_id":' + scope["path_params"]["item_id"].encode() + b"}"
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"catalog-position", b"7"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class CachedService(Service):
    """`Service` with a response cache, connected at position 7, a cacheable route, and a
    log whose catch-up applies the changes in `committed` (or waits for `stalled`)."""

    def __init__(self, **settings: object) -> None:
        super().__init__(**settings)
        self.cached = PositionedRoute("/cached/{item_id}", {"GET": get_cached_item})
        self.cache = ResponseCache(100)
        self.cache.connect(7)
        self.committed: list[int] = []  # change ids the next catch-up applies
        self.catch_ups = 0
        self.stalled: asyncio.Event | None = None  # a catch-up that waits for this
        table = RouteTable([self.items, self.item, self.cached], [self.echo])
        self.edge = Edge(
            self._unreachable,
            table,
            make_settings(**settings),
            self._observe,
            self.cache,
            self._catch_up,
        )

    async def _catch_up(self) -> bool:
        self.catch_ups += 1
        if self.stalled is not None:
            await self.stalled.wait()
        for change_id in self.committed:
            self.cache.invalidate(change_id, ["item:9"])
        return True

    def now(
        self, path: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
    ) -> Any:
        return self.edge.answer_now(
            "GET", path, query, [(b"host", b"localhost:8000"), *(headers or [])]
        )


async def test_answer_now_gives_what_the_asgi_path_answers_for_a_hit() -> None:
    service = CachedService()
    assert service.now("/cached/1") is None  # a miss: the usual way fills it
    assert service.cache.stats.misses == 0  # not counted: the usual way counts it
    first = await service.request("GET", "/cached/1")
    assert len(service.cached.scopes) == 1
    asgi = await service.request("GET", "/cached/1")  # a hit through ASGI
    now = service.now("/cached/1")
    assert len(service.cached.scopes) == 1  # neither reached the route
    assert now is not None
    status, headers, body = now
    assert (status, body) == (200, first[2]) == (asgi[0], asgi[2])
    assert [name for name, _ in headers] == list(asgi[1])
    without_id = {k: v for k, v in asgi[1].items() if k != b"x-request-id"}
    assert {k: v for k, v in headers if k != b"x-request-id"} == without_id
    assert service.observed[-1] == ("GET", "/cached/{item_id}", 200)
    assert service.cache.stats.hits == 2


async def test_answer_now_honours_if_none_match_and_head() -> None:
    service = CachedService()
    _, headers, _ = await service.request("GET", "/cached/2")
    etag = headers[b"etag"]
    status, sent, body = service.now("/cached/2", headers=[(b"if-none-match", etag)])
    assert (status, body) == (304, b"")
    assert b"content-length" not in dict(sent) and dict(sent)[b"etag"] == etag
    host = [(b"host", b"localhost:8000")]
    head = service.edge.answer_now("HEAD", "/cached/2", b"", host)
    assert head is not None
    status, sent, body = head
    assert (status, body) == (200, b"")
    assert dict(sent)[b"content-length"] == b"13"


@pytest.mark.parametrize(
    ("method", "path", "query", "headers"),
    [
        ("POST", "/cached/3", b"", []),  # not a read
        ("GET", "/items/3", b"", []),  # not cacheable
        ("GET", "/nope", b"", []),  # no route
        ("GET", "/cached/03", b"", []),  # not canonical: the usual way answers 422
        ("GET", "/cached/3", b"a=1&a=2", []),  # repeated: 422
        ("GET", "/cached/3", b"", [(b"host", b"evil.example")]),  # a second Host: 400
        ("GET", "/cached/3", b"", [(b"catalog-position", b"8")]),  # the feed is at 7: wait
        ("GET", "/cached/3", b"", [(b"catalog-position", b"x")]),  # 422
    ],
)
async def test_answer_now_declines_what_the_usual_way_must_answer(
    method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    service = CachedService()
    await service.request("GET", "/cached/3")  # held
    assert service.now("/cached/3") is not None
    host = [(b"host", b"localhost:8000"), *headers]
    assert service.edge.answer_now(method, path, query, host) is None


async def test_answer_now_serves_nothing_while_the_feed_is_away_or_the_cache_off() -> None:
    service = CachedService()
    await service.request("GET", "/cached/4")
    service.cache.disconnect()
    assert service.now("/cached/4") is None
    assert Service().edge.answer_now("GET", "/items/1", b"", []) is None  # no cache


async def test_a_position_not_applied_yet_has_the_log_read_the_database_first() -> None:
    service = CachedService()
    await service.request("GET", "/cached/5")  # held, as of position 7
    service.committed = [8]  # committed elsewhere; this log has not read it yet
    status, headers, _ = await service.request(
        "GET", "/cached/5", headers=[(b"catalog-position", b"8")]
    )
    assert (status, headers[b"catalog-position"]) == (200, b"8")
    assert service.catch_ups == 1 and len(service.cached.scopes) == 1  # a hit, caught up
    assert service.cache.stats.bypasses == 0


async def test_a_position_beyond_every_recorded_change_is_422_once_the_log_has_read() -> None:
    service = CachedService()
    status, _, body = await service.request(
        "GET", "/cached/5", headers=[(b"catalog-position", b"99")]
    )
    assert status == 422 and service.catch_ups == 1
    (error,) = problem(body)["errors"]
    assert error["location"] == "header" and error["field"] == "Catalog-Position"
    assert error["message"] == "is beyond every change recorded (the newest is 7)"
    assert service.cached.scopes == []


async def test_a_log_that_cannot_read_in_time_leaves_the_read_to_the_database() -> None:
    service = CachedService(CACHE_WAIT_MS=10)
    await service.request("GET", "/cached/5")
    service.stalled = asyncio.Event()  # never set: the catch-up outlasts CACHE_WAIT_MS
    status, _, _ = await service.request("GET", "/cached/5", headers=[(b"catalog-position", b"8")])
    assert status == 200 and len(service.cached.scopes) == 2  # the route read it
    assert service.cache.stats.bypasses == 1
    service.cache.disconnect()
    status, _, _ = await service.request("GET", "/cached/5", headers=[(b"catalog-position", b"8")])
    assert status == 200 and service.catch_ups == 1  # the log is away: no catch-up asked
