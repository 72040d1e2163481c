"""The ASGI edge: what happens to a request before, and instead of, a route handling it.

Plain ASGI middlewares (never starlette's BaseHTTPMiddleware), outermost first:

- `ResponseHeaders` (src/logs.py) gives each request its id and each response its id and
  security headers;
- `HttpMetrics` (src/metrics.py) times and counts every request by route template;
- `ProblemMiddleware` turns lihil's own text/plain 404 and 405, and any exception that
  escapes, into problems;
- `RequestGate` asks catalog writes for a bearer token and limits their rate, and refuses
  bodies that are not JSON or too large, repeated parameters and ids not in digits;
- `ConditionalGet` (src/caching.py) tags GET answers with an ETag, answers 304, and HEAD;
- `WebSocketGate` refuses what must not reach a WebSocket handler.

Both ask one `RouteTable` which routes serve a scope. Refusals are starlette `Response`s
(on a websocket scope starlette sends them as a handshake denial). What an error means is
decided in `src.errors`; this module only puts it on the wire.
"""

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from src.asgi import ASGIApp, Scope
from src.auth import verify
from src.caching import ConditionalGet
from src.config import Settings
from src.errors import (
    AppError,
    BodyTooLarge,
    FieldError,
    InvalidRequest,
    NotFound,
    Problem,
    TooManyRequests,
    UnsupportedMediaType,
    problem_response,
    to_problem,
)
from src.limits import Buckets, Network, client_address
from src.logs import ResponseHeaders
from src.metrics import HttpMetrics, Metrics
from src.realtime.protocol import Close

LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}


class _Matchable(Protocol):
    def match(self, scope: Scope) -> Any: ...


class RouteTable:
    """The app's HTTP and WebSocket routes, asked which of them serve a request."""

    def __init__(self, http: Sequence[Any], websocket: Sequence[_Matchable]) -> None:
        self.http = list(http)
        self.websocket = list(websocket)
        # The static start of each WebSocket path: most requests are ruled out by one
        # startswith instead of a regex per WebSocket route.
        self._ws_prefixes = tuple(str(getattr(r, "path", "")).split("{")[0] for r in websocket)

    def allowed_methods(self, scope: Scope) -> list[str]:
        """The methods the HTTP route matching this path accepts (for 405's Allow)."""
        for route in self.http:
            if route.match(scope):
                methods = set(route.endpoints)
                return sorted(methods | {"HEAD"} if "GET" in methods else methods)
        return []

    def template(self, scope: Scope) -> str | None:
        """The path template of the HTTP route matching this path (a metric label)."""
        for route in self.http:
            if route.match(scope):
                return str(route.path)
        return None

    def serves_websocket(self, scope: Scope) -> bool:
        if not scope["path"].startswith(self._ws_prefixes):
            return False
        return any(route.match(scope) for route in self.websocket)


def origin_allowed(origin: str, host: str | None, allowed: Iterable[str]) -> bool:
    """Same host as the request, localhost/127.0.0.1 on any port, or listed in ALLOWED_ORIGINS."""
    if origin.rstrip("/") in allowed:
        return True
    try:
        parts = urlsplit(origin)
        hostname = parts.hostname
    except ValueError:  # e.g. "http://[::1": not a URL at all
        return False
    if parts.scheme not in ("http", "https") or not hostname:
        return False
    if hostname in LOCAL_HOSTS or f"[{hostname}]" in LOCAL_HOSTS:
        return True
    return host is not None and parts.netloc.lower() == host.lower()


class WebSocketGate:
    """Everything that must not reach a WebSocket handler:

    - a handshake to a path no WebSocket route serves is refused with HTTP 404 (a problem
      body). LIHIL TRAP (WebSocket handshakes are routed to HTTP routes): lihil would hand
      it to an HTTP route with that path, which fails with a KeyError: HTTP 500.
    - a handshake from a foreign Origin is accepted, then closed with 4403 (a browser can
      read that; a refused handshake reaches it only as 1006). Handshakes without Origin
      (command-line and server clients) pass.
    - a plain HTTP request to a WebSocket path answers 426 Upgrade Required (starlette's
      WebSocket would fail an assertion on it: HTTP 500).
    """

    def __init__(self, app: ASGIApp, routes: RouteTable, settings: Settings) -> None:
        self.app = app
        self.routes = routes
        self.allowed = settings.allowed_origins
        self.trusted = settings.trusted_proxies
        self.max_per_address = settings.WS_MAX_CONNECTIONS_PER_ADDRESS  # 0: no limit
        self.open_per_address: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http" and self.routes.serves_websocket(scope):
            detail = f"{scope['path']} is a WebSocket endpoint: connect with a WebSocket client"
            problem = Problem("upgrade-required", "Upgrade required", 426, detail, scope["path"])
            await problem_response(problem, {"Upgrade": "websocket"})(scope, receive, send)
            return
        if kind != "websocket":
            await self.app(scope, receive, send)
            return
        await receive()  # websocket.connect
        if not self.routes.serves_websocket(scope):
            await self._refuse(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        origin, host = headers.get(b"origin"), headers.get(b"host")
        if origin is not None and not origin_allowed(
            origin.decode("latin-1"), host.decode("latin-1") if host else None, self.allowed
        ):
            reason = f"origin {origin.decode('latin-1')[:80]} is not allowed"
            await _accept_and_close(send, Close.FORBIDDEN, reason)
            return
        if not self.max_per_address:
            await self.app(scope, _replay_connect(receive), send)
            return
        address = address_of(scope, self.trusted)
        if self.open_per_address.get(address, 0) >= self.max_per_address:
            reason = (
                f"too many connections from this address ({self.max_per_address}, "
                "WS_MAX_CONNECTIONS_PER_ADDRESS); try again later"
            )
            await _accept_and_close(send, Close.TRY_AGAIN_LATER, reason)
            return
        self.open_per_address[address] = self.open_per_address.get(address, 0) + 1
        try:
            await self.app(scope, _replay_connect(receive), send)
        finally:
            left = self.open_per_address.pop(address) - 1
            if left:
                self.open_per_address[address] = left

    async def _refuse(self, scope: Scope, receive: Any, send: Any) -> None:
        _denied.set(True)
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": Close.POLICY})  # HTTP 403
            return
        path = scope["path"]
        problem, headers = to_problem(NotFound(f"no WebSocket at {path}"), path)
        await problem_response(problem, headers)(scope, receive, send)


async def _accept_and_close(send: Any, code: int, reason: str) -> None:
    """Refuse after accepting, so a browser can read the code (a refused handshake reaches
    it only as 1006)."""
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code, "reason": reason})


# UVICORN TRAP: after a handshake denial (an HTTP response instead of accept) uvicorn 0.54
# still logs "ERROR: ASGI callable returned without completing handshake." for every
# refused client. uvicorn logs it from the task that ran the app, so a context variable the
# gate set there tells this filter that the denial was ours and on purpose; the same line
# for a handler that forgot to accept still shows.
_denied: ContextVar[bool] = ContextVar("websocket_denied", default=False)


class _DeniedHandshakeFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() == "Invalid UTF-8 sequence received from client.":
            # UVICORN TRAP (a client's bad bytes logged as a server error): a fragmented text
            # message that is not UTF-8 is closed 1007, as it should be, but logged at ERROR
            # with a traceback. It is the client's fault: one warning line, no traceback.
            record.levelno, record.levelname, record.exc_info = logging.WARNING, "WARNING", None
            return True
        return not (_denied.get() and record.getMessage().startswith("ASGI callable returned"))


def quiet_denied_handshakes() -> None:
    """Installs the filter above on uvicorn's error logger (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DeniedHandshakeFilter) for f in logger.filters):
        logger.addFilter(_DeniedHandshakeFilter())


def _replay_connect(receive: Any) -> Any:
    """A receive that first hands back the websocket.connect the gate already consumed."""
    replayed = False

    async def wrapped() -> Any:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "websocket.connect"}
        return await receive()

    return wrapped


class ProblemMiddleware:
    """lihil's own text/plain 404, 405 and 500 become problems.

    Unknown routes and wrong methods never reach an endpoint, so lihil's problem solver
    (in `src.errors`) never sees them; exceptions raised outside an endpoint (a
    dependency's clean-up, say) neither.
    """

    def __init__(self, app: ASGIApp, routes: RouteTable) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = replaced = False

        async def _send(message: dict[str, Any]) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                started = True
                if message["status"] in (404, 405) and _plain_text(message):
                    replaced = True
                    problem, headers = self._routing_problem(scope, message["status"])
                    await problem_response(problem, headers)(scope, receive, send)
                    return
            elif replaced:
                return  # lihil's plain-text body: the problem went out instead
            await send(message)

        try:
            await self.app(scope, receive, _send)
        except Exception as exc:
            if started:
                raise
            problem, headers = to_problem(exc, scope["path"])
            await problem_response(problem, headers)(scope, receive, send)

    def _routing_problem(self, scope: Scope, status: int) -> tuple[Problem, dict[str, str] | None]:
        path = scope["path"]
        if status == 404:
            return to_problem(NotFound(f"no route matches {path}"), path)
        allow = ", ".join(self.routes.allowed_methods(scope))
        detail = f"{scope['method']} is not allowed on {path}; allowed: {allow}"
        return Problem("method-not-allowed", "Method not allowed", 405, detail, path), {
            "Allow": allow
        }


def _plain_text(message: dict[str, Any]) -> bool:
    ctype = dict(message.get("headers", ())).get(b"content-type", b"")
    return bool(ctype.startswith(b"text/plain"))


WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
ID_PATH = re.compile(r"/(products|brands)/([^/]+)")  # the routes with an id in their path


def _decimal(text: str) -> bool:
    return text.isascii() and text.isdigit()


def repeated_parameters(scope: Scope) -> list[str]:
    """Query parameters given more than once (before, the last one silently won)."""
    query = scope.get("query_string", b"")
    if not query:
        return []
    names = Counter(name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True))
    return sorted(name for name, count in names.items() if count > 1)


def is_json(content_type: bytes | None) -> bool:
    """application/json or application/*+json, any case, parameters allowed."""
    if content_type is None:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


class RequestGate:
    """What an HTTP request must be before an endpoint reads it, checked in one layer:

    - a catalog write (every POST, PUT, PATCH and DELETE a route serves): at most
      WRITE_RATE_PER_MIN per client address (429 with Retry-After), counted before the
      token is checked so guessing costs the same, and a valid bearer token (401);
    - each query parameter given once (422 naming it; before, the last one silently won),
      and an id in the path written in digits (422);
    - a body declared as JSON (415 otherwise: text/plain or no Content-Type was read as
      JSON before, and a form post would have been too);
    - a body of at most MAX_BODY_BYTES (413): refused from its Content-Length before a
      byte is read, or as soon as a chunked body grows past the limit.
    """

    def __init__(self, app: ASGIApp, routes: RouteTable, settings: Settings) -> None:
        self.app = app
        self.routes = routes
        self.secret, self.audience = settings.JWT_SECRET, settings.JWT_AUDIENCE
        self.trusted = settings.trusted_proxies
        self.rate = settings.WRITE_RATE_PER_MIN
        self.buckets = Buckets(rate=self.rate / 60, burst=self.rate)
        self.max_body_bytes = settings.MAX_BODY_BYTES

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            if scope["method"] in WRITES and scope["method"] in self.routes.allowed_methods(scope):
                self._admit_write(scope)
            self._check_shape(scope)
        except AppError as exc:
            await problem_response(*to_problem(exc, scope["path"]))(scope, receive, send)
            return
        if scope["method"] in WITH_BODY:
            receive = self._limited(receive)
        await self.app(scope, receive, send)

    def _admit_write(self, scope: Scope) -> None:
        wait = self.buckets.take(address_of(scope, self.trusted), time.monotonic())
        if wait:
            raise TooManyRequests(
                f"more than {self.rate} catalog writes a minute from this address "
                f"(WRITE_RATE_PER_MIN); retry in {wait} s",
                retry_after=wait,
            )
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), None)
        verify(header.decode("latin-1") if header else None, self.secret, audience=self.audience)

    def _check_shape(self, scope: Scope) -> None:
        if repeated := repeated_parameters(scope):
            message = "given more than once; give it once"
            raise InvalidRequest([FieldError("query", n, message) for n in repeated])
        if (match := ID_PATH.fullmatch(scope["path"])) and not _decimal(match.group(2)):
            # LIHIL TRAP (integer path parameters are read leniently): "1.0" was product 1
            # and "1e3" product 1000; an id is written in decimal digits.
            name = "product_id" if match.group(1) == "products" else "brand_id"
            raise InvalidRequest([FieldError("path", name, "Expected `int`, got `str`")])
        if scope["method"] not in WITH_BODY:
            return
        headers = dict(scope.get("headers", ()))
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            raise BodyTooLarge(self.max_body_bytes)
        if length != b"0" and not is_json(headers.get(b"content-type")):
            shown = headers.get(b"content-type", b"none").decode("latin-1")[:80]
            raise UnsupportedMediaType(f"send the body as application/json (Content-Type: {shown})")

    def _limited(self, receive: Any) -> Any:
        received = 0

        async def limited() -> Any:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                raise BodyTooLarge(self.max_body_bytes)
            return message

        return limited


def address_of(scope: Scope, trusted: tuple[Network, ...]) -> str:
    """The client address of a request or handshake (X-Forwarded-For from trusted proxies)."""
    peer = scope.get("client")
    forwarded = [
        v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"
    ]
    return client_address(peer[0] if peer else None, forwarded, trusted)


WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def edge_middlewares(
    routes: RouteTable, settings: Settings, metrics: Metrics
) -> list[Callable[[ASGIApp], ASGIApp]]:
    """The middleware factories for `Lihil(middlewares=...)`, outermost first."""
    return [
        ResponseHeaders,
        lambda app: HttpMetrics(app, metrics, routes.template),
        lambda app: ProblemMiddleware(app, routes),
        lambda app: RequestGate(app, routes, settings),
        ConditionalGet,
        lambda app: WebSocketGate(app, routes, settings),
    ]
