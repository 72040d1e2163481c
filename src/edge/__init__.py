"""The ASGI edge: one callable between the server and the routes, with one `send` wrapper.

It matches each request's route once (`RouteTable`, compiled from what the routes declare)
and then, in this order, answers what no endpoint should see:

HTTP
1. a `Host` missing, repeated or not in ALLOWED_HOSTS: 400;
2. a path no route serves: 404 (426 when a WebSocket route serves it);
3. a method the route does not serve: 405 with `Allow`; a CORS preflight (OPTIONS with
   Origin and Access-Control-Request-Method) from an allowed origin: 204;
4. the write gate, for endpoints that declare `Unauthorized`: WRITE_RATE_PER_MIN per
   client address (429 with Retry-After, counted before the token is checked), then a valid
   bearer token (401);
5. the body: declared JSON (415), at most MAX_BODY_BYTES (413, from Content-Length, or as
   soon as a chunked body grows past it);
6. the query and path: each parameter given once, integers in canonical decimal (422).
Then it calls the route. Its `send` wrapper gives every answer (refusals included) its
request id, security headers and CORS headers (for an allowed Origin), tags a GET's 200
with an ETag (304 for a current If-None-Match; HEAD gets the head only), and the request is
counted and timed by route template. An exception that escapes before the response started
becomes a problem (500, logged); a client gone mid-body is not an error.

A cacheable GET (`@operation(cache=...)`) that the response cache holds is answered once
it has passed 1, 2, 3 and 6, without calling the route (`_from_cache`); `answer_now` gives
the same answer to the HTTP protocol, before any ASGI request is made of the head
(`src.server`), and declines everything else, which then comes here. A `Catalog-Position`
the cache has not reached has its log read the database first (`catch_up`); one still
beyond every recorded change after that is 422.

WebSocket handshakes: Host (400), route (404), Origin (accepted, then closed 4403),
connections per address (1013). What an error means is decided in `src.errors`; this
module only puts it on the wire.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect

from src.asgi import ASGIApp, Scope
from src.auth import verify
from src.compat.uvicorn import denied_on_purpose
from src.config import Settings
from src.edge.cache import Entry, ResponseCache
from src.edge.checks import INTEGER_MESSAGE, Hosts, canonical_int, is_json, query_pairs, repeated
from src.edge.etag import MAX_TAGGED_BYTES, etag_of, none_match
from src.edge.routes import Endpoint, Resource, RouteTable
from src.errors import (
    AppError,
    BadRequest,
    BodyTooLarge,
    ClientGone,
    Close,
    FieldError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    TooManyRequests,
    UnsupportedMediaType,
    UpgradeRequired,
    encode_problem,
    to_problem,
)
from src.limits import Buckets, Network, client_address
from src.logs import SANE_ID, SECURITY_HEADERS, new_request_id, request_id

WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
UNMATCHED = "unmatched"
PROBLEM_HEADERS = [(b"content-type", b"application/problem+json")]
# CORS: what a browser app on an allowed origin may send and read.
ALLOW_HEADERS = (
    b"Authorization, Catalog-Position, Content-Type, If-Match, If-None-Match, X-Request-ID"
)
EXPOSE_HEADERS = b"ETag, Location, Retry-After, X-Request-ID, Catalog-Position"
MAX_AGE = b"600"
REVALIDATE = [(b"cache-control", b"no-cache")]  # a tagged answer: ask again, the tag says if fresh
# The commit-log position an answer reflects (response) or a read must reflect (request).
POSITION = b"catalog-position"
POSITION_MESSAGE = "must be a change id: a decimal integer from 0 to 2^63-1, as a write answered"

Observe = Callable[[str, str, int, float], None]
# Has the cache's log read the database now: True once every change committed before the
# call is applied to the cache; False when the log cannot reach the database.
CatchUp = Callable[[], Awaitable[bool]]
# A whole answer: status, headers (besides the server's own), body.
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def address_of(scope: Scope, trusted: tuple[Network, ...]) -> str:
    """The client address of a request or handshake (X-Forwarded-For from trusted proxies)."""
    peer = scope.get("client")
    forwarded = [
        v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"
    ]
    return client_address(peer[0] if peer else None, forwarded, trusted)


class _Head:
    """The request headers the edge reads, gathered in one pass."""

    __slots__ = (
        "authorization",
        "content_length",
        "content_type",
        "host",
        "hosts",
        "if_none_match",
        "origin",
        "position",
        "preflight",
        "query",
        "request_id",
        "wanted",
    )

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.hosts = 0
        self.host = self.origin = self.content_type = self.content_length = None
        self.if_none_match = self.authorization = self.request_id = self.preflight = None
        self.position = None
        self.wanted: int | None = None  # the parsed Catalog-Position of a cacheable GET
        self.query: list[tuple[str, str]] = []  # the query's pairs, once the edge read them
        for name, value in headers:
            if name == b"host":
                self.hosts += 1
                self.host = value
            elif name == b"origin":
                self.origin = value
            elif name == b"content-type":
                self.content_type = value
            elif name == b"content-length":
                self.content_length = value
            elif name == b"if-none-match":
                self.if_none_match = value
            elif name == b"authorization":
                self.authorization = value
            elif name == b"x-request-id":
                self.request_id = value
            elif name == b"access-control-request-method":
                self.preflight = value
            elif name == POSITION:
                self.position = value


class Edge:
    """The served app: in front of lihil, which it hands the lifespan (see the module
    docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        table: RouteTable,
        settings: Settings,
        observe: Observe,
        cache: ResponseCache | None = None,
        catch_up: CatchUp | None = None,
    ):
        self.app, self.table, self.observe = app, table, observe
        self.cache, self.cache_wait = cache, settings.CACHE_WAIT_MS / 1000
        self.catch_up = catch_up
        self.hosts = Hosts(settings)
        self.secret, self.audience = settings.JWT_SECRET, settings.JWT_AUDIENCE
        self.trusted = settings.trusted_proxies
        self.rate = settings.WRITE_RATE_PER_MIN
        self.buckets = Buckets(rate=self.rate / 60, burst=self.rate)
        self.max_body_bytes = settings.MAX_BODY_BYTES
        self.max_per_address = settings.WS_MAX_CONNECTIONS_PER_ADDRESS  # 0: no limit
        self.open_per_address: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # -- HTTP --------------------------------------------------------------------------
    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        head = _Head(scope["headers"])
        rid, extra = self._identified(head)
        token = request_id.set(rid)
        method = scope["method"]
        tag = method in ("GET", "HEAD")
        head_only = method == "HEAD"
        status = 500
        start: dict[str, Any] | None = None
        body: list[bytes] = []
        kept: list[tuple[bytes, bytes]] = []  # a cacheable answer's own headers, to keep
        kept_at = 0  # and the position it reflects
        key: str | None = None  # the response cache's key, for a cacheable GET
        depends: Any = None  # what its answer depends on: (tags_of, path params)
        cache = self.cache

        async def _send(message: dict[str, Any]) -> None:
            nonlocal status, start, kept_at
            if message["type"] == "http.response.start":
                status = message["status"]
                given = message.get("headers", ())
                position = _position(given) if cache is not None else None
                if position is not None:
                    cache.answered(position)  # type: ignore[union-attr]
                if tag and status == 200 and (taggable := _taggable(given)) is not None:
                    message["headers"] = [*given, *extra, *taggable]
                    if key is not None and position is not None:
                        kept[:] = [*(h for h in given if h[0] != POSITION), *taggable]
                        kept_at = position
                    start = message  # held until its body is complete, then tagged
                    return
                message["headers"] = [*given, *extra]
            elif start is not None:
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    whole = b"".join(body)
                    etag = etag_of(whole).encode()
                    headers = [*start["headers"], (b"etag", etag)]
                    answer = _shaped(headers, whole, etag, head.if_none_match, head_only)
                    status = await _send_answer(answer, send)
                    if kept and key is not None and cache is not None:
                        tags_of, path_params = depends
                        tags = frozenset(tags_of(path_params, dict(head.query)))
                        entry = Entry(whole, (*kept, (b"etag", etag)), etag, kept_at, tags)
                        cache.fill(key, entry)
                return
            elif head_only and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        template = UNMATCHED
        try:
            found = self.table.match(scope["path"], websocket=False)
            if found is not None:
                template = found[0].template
            try:
                endpoint = self._admit(scope, head, found)
            except AppError as exc:
                await _problem(scope, exc, _send)
                return
            if isinstance(endpoint, str):  # a CORS preflight from an allowed origin
                await _send(
                    {
                        "type": "http.response.start",
                        "status": 204,
                        "headers": [
                            (b"access-control-allow-methods", endpoint.encode()),
                            (b"access-control-allow-headers", ALLOW_HEADERS),
                            (b"access-control-max-age", MAX_AGE),
                        ],
                    }
                )
                await _send({"type": "http.response.body", "body": b""})
                return
            assert found is not None
            resource, params = found
            tags_of = endpoint.cache if tag else None
            if tags_of is not None and cache is not None:  # a cacheable GET
                key = _cache_key(scope["path"], head.query)
                depends = (tags_of, params)  # worked out on a miss only
                try:
                    answer = await self._from_cache(key, head, head_only, extra)
                except AppError as exc:
                    await _problem(scope, exc, _send)
                    return
                if answer is not None:
                    status = await _send_answer(answer, send)
                    return
            if head_only:  # a copy: the server reads its own scope's method (HEAD: no body)
                scope = {**scope, "method": "GET"}
            scope["path_params"] = params
            scope["route"] = resource.route
            if method in WITH_BODY:
                receive = self._limited(receive)
            try:
                await resource.route(scope, receive, _send)
            except ClientDisconnect:
                status = ClientGone.status  # counted; nobody to answer, nothing to log
            except Exception as exc:
                if start is not None or status != 500:
                    raise  # the response has begun: uvicorn logs it and drops the connection
                await _problem(scope, exc, _send)
        finally:
            self.observe(method, template, status, time.perf_counter() - started)
            request_id.reset(token)

    async def _from_cache(
        self, key: str, head: _Head, head_only: bool, extra: list[tuple[bytes, bytes]]
    ) -> Answer | None:
        """The answer the response cache holds, or None to ask the route. With
        `Catalog-Position`, only once every change through it is applied here."""
        cache = self.cache
        assert cache is not None
        if head.wanted is not None and not await self._caught_up(cache, head.wanted):
            cache.bypassed()
            return None
        entry = cache.lookup(key)
        return None if entry is None else _from_entry(entry, cache, head, head_only, extra)

    async def _caught_up(self, cache: ResponseCache, wanted: int) -> bool:
        """Whether every change through `wanted` is applied here, once the cache's log has
        read the database (waiting at most CACHE_WAIT_MS). False: it could not (the route
        reads the database, which has the change). A position beyond every change the
        database has recorded is no write's: 422."""
        if cache.has(wanted):
            return True
        if not cache.connected or self.catch_up is None:
            return False
        try:
            async with asyncio.timeout(self.cache_wait):
                read = await self.catch_up()
        except TimeoutError:
            return False
        if not read or not cache.connected:
            return False
        if cache.applied < wanted:
            message = f"is beyond every change recorded (the newest is {cache.applied})"
            raise InvalidRequest([FieldError("header", "Catalog-Position", message)])
        return True

    def answer_now(
        self, method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]]
    ) -> Answer | None:
        """The whole answer to a request the response cache answers, at once (no await), or
        None: the request takes the usual way, which also answers whatever this declines
        (a miss, a refusal, a position still to wait for). The HTTP protocol asks this
        before it makes an ASGI request of a head (`src.server`), so a hit costs no task,
        no ASGI messages and one write; what it answers is what `_http` would have."""
        cache = self.cache
        if cache is None or (method != "GET" and method != "HEAD"):
            return None
        started = time.perf_counter()
        found = self.table.match(path, websocket=False)
        if found is None or (endpoint := found[0].endpoint(method)) is None:
            return None
        if endpoint.cache is None:
            return None  # not cacheable: no header read for nothing
        head = _Head(headers)
        try:
            self._admit({"method": method, "path": path, "query_string": query}, head, found)
        except AppError:
            return None
        if head.wanted is not None and cache.applied < head.wanted:
            return None  # the usual way waits for the feed
        entry = cache.peek(_cache_key(path, head.query))
        if entry is None:
            return None
        _, extra = self._identified(head)
        answer = _from_entry(entry, cache, head, method == "HEAD", extra)
        self.observe(method, found[0].template, answer[0], time.perf_counter() - started)
        return answer

    def _identified(self, head: _Head) -> tuple[str, list[tuple[bytes, bytes]]]:
        """The request's id (as sent, when sane) and the headers every answer to it gets:
        that id, the security headers, and CORS's for an allowed Origin."""
        sent_id = head.request_id.decode("latin-1") if head.request_id else ""
        rid = sent_id if sent_id and SANE_ID.fullmatch(sent_id) else new_request_id()
        extra = [(b"x-request-id", rid.encode()), *SECURITY_HEADERS]
        if head.origin is not None and self.hosts.origin_allowed(head.origin):
            extra += [
                (b"access-control-allow-origin", head.origin),
                (b"access-control-expose-headers", EXPOSE_HEADERS),
                (b"vary", b"Origin"),
            ]
        return rid, extra

    def _admit(
        self, scope: Scope, head: _Head, found: tuple[Resource, dict[str, str]] | None
    ) -> Endpoint | str:
        """The endpoint to call, the route's methods for a CORS preflight to answer with
        204, or the AppError to answer with, in the order of the module docstring."""
        if head.hosts != 1:
            raise BadRequest(
                "a request needs exactly one Host header"
                if head.hosts == 0
                else "a request must not repeat its Host header"
            )
        assert head.host is not None
        if not self.hosts.host_allowed(head.host):
            raise BadRequest(
                f"this server does not serve the host {head.host.decode('latin-1')[:100]!r} "
                "(ALLOWED_HOSTS)"
            )
        path = scope["path"]
        if found is None:
            if self.table.match(path, websocket=True) is not None:
                raise UpgradeRequired(
                    f"{path} is a WebSocket endpoint: connect with a WebSocket client"
                )
            raise NotFound(f"no route matches {path}")
        resource = found[0]
        method = scope["method"]
        endpoint = resource.endpoint(method)
        if endpoint is None:
            if method == "OPTIONS" and head.preflight is not None and head.origin is not None:
                if self.hosts.origin_allowed(head.origin):
                    return resource.allow
            raise MethodNotAllowed(method, path, resource.allow)
        if endpoint.needs_token:
            self._admit_write(scope, head)
        if endpoint.cache is not None and method in ("GET", "HEAD"):
            head.wanted = _wanted_position(head)
        if method in WITH_BODY:
            self._check_body(head)
        head.query = self._check_parameters(scope, endpoint, found[1])
        return endpoint

    def _admit_write(self, scope: Scope, head: _Head) -> None:
        wait = self.buckets.take(address_of(scope, self.trusted), time.monotonic())
        if wait:
            raise TooManyRequests(
                f"more than {self.rate} catalog writes a minute from this address "
                "(WRITE_RATE_PER_MIN)",
                retry_after=wait,
            )
        authorization = head.authorization.decode("latin-1") if head.authorization else None
        verify(authorization, self.secret, audience=self.audience)

    def _check_body(self, head: _Head) -> None:
        length = head.content_length
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            raise BodyTooLarge(self.max_body_bytes)
        if length != b"0" and not is_json(head.content_type):
            shown = (head.content_type or b"none").decode("latin-1")[:80]
            raise UnsupportedMediaType(f"send the body as application/json (Content-Type: {shown})")

    def _check_parameters(
        self, scope: Scope, endpoint: Endpoint, path: dict[str, str]
    ) -> list[tuple[str, str]]:
        """The query's pairs, once each is given once and integers are canonical."""
        pairs = query_pairs(scope.get("query_string", b""))
        if twice := repeated(pairs):
            raise InvalidRequest(
                [FieldError("query", name, "given more than once; give it once") for name in twice]
            )
        if not endpoint.integers:
            return pairs
        query = dict(pairs)
        errors = []
        for location, name in endpoint.integers:
            text = path.get(name) if location == "path" else query.get(name)
            if text is not None and canonical_int(text) is None:
                errors.append(FieldError(location, name, INTEGER_MESSAGE))
        if errors:
            raise InvalidRequest(errors)
        return pairs

    def _limited(self, receive: Any) -> Any:
        received = 0
        limit = self.max_body_bytes

        async def limited() -> Any:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
            return message

        return limited

    # -- WebSocket handshakes -------------------------------------------------------------
    async def _websocket(self, scope: Scope, receive: Any, send: Any) -> None:
        await receive()  # websocket.connect
        head = _Head(scope["headers"])
        path = scope["path"]
        found = self.table.match(path, websocket=True)
        if head.hosts != 1 or not self.hosts.host_allowed(head.host or b""):
            await _refuse(scope, BadRequest("this server does not serve that Host"), send)
            return
        if found is None:
            await _refuse(scope, NotFound(f"no WebSocket at {path}"), send)
            return
        if head.origin is not None and not self.hosts.origin_allowed(head.origin):
            reason = f"origin {head.origin.decode('latin-1')[:80]} is not allowed"
            await _accept_and_close(send, Close.FORBIDDEN, reason)
            return
        resource, params = found
        scope["path_params"] = params
        scope["route"] = resource.route
        if not self.max_per_address:
            await resource.route(scope, _replay_connect(receive), send)
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
            await resource.route(scope, _replay_connect(receive), send)
        finally:
            left = self.open_per_address.pop(address) - 1
            if left:
                self.open_per_address[address] = left


async def _problem(
    scope: Scope, exc: BaseException, send: Any, kind: str = "http.response", *extra: Any
) -> None:
    """Answer with the problem `exc` maps to: through the edge's own `send` wrapper for
    HTTP; as a handshake denial (`websocket.http.response`, with `extra` headers) for a
    WebSocket."""
    problem, headers = to_problem(exc, scope["path"])
    body = encode_problem(problem)
    raw = [*PROBLEM_HEADERS, (b"content-length", str(len(body)).encode()), *extra]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": f"{kind}.start", "status": problem.status, "headers": raw})
    await send({"type": f"{kind}.body", "body": body})


async def _refuse(scope: Scope, exc: AppError, send: Any) -> None:
    """Deny a WebSocket handshake with an HTTP problem (403 where the server cannot send one)."""
    denied_on_purpose()
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": Close.POLICY})  # HTTP 403
        return
    await _problem(scope, exc, send, "websocket.http.response", *SECURITY_HEADERS)


async def _accept_and_close(send: Any, code: int, reason: str) -> None:
    """Refuse after accepting, so a browser can read the code (a refused handshake reaches
    it only as 1006)."""
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code, "reason": reason})


def _replay_connect(receive: Any) -> Any:
    """A receive that first hands back the websocket.connect the edge already consumed."""
    replayed = False

    async def wrapped() -> Any:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "websocket.connect"}
        return await receive()

    return wrapped


def _position(headers: Any) -> int | None:
    """The Catalog-Position an answer carries (set by the route that made it), if any."""
    for name, value in headers:
        if name == POSITION:
            return int(value)
    return None


def _wanted_position(head: _Head) -> int | None:
    """The request's Catalog-Position: None if absent, 422 if not a change id."""
    if head.position is None:
        return None
    wanted = canonical_int(head.position.decode("latin-1"))
    if wanted is None or wanted < 0 or wanted >= 2**63:
        raise InvalidRequest([FieldError("header", "Catalog-Position", POSITION_MESSAGE)])
    return wanted


def _cache_key(path: str, pairs: list[tuple[str, str]]) -> str:
    """One key per answer: the path and the query in a canonical order (integers are
    canonical already: the edge refused any other spelling)."""
    if not pairs:
        return path
    return path + "?" + "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _from_entry(
    entry: Entry,
    cache: ResponseCache,
    head: _Head,
    head_only: bool,
    extra: list[tuple[bytes, bytes]],
) -> Answer:
    """The answer a cache entry gives this request."""
    # The entry is current through every change applied here, not only its own fill.
    position = (POSITION, str(max(entry.position, cache.applied)).encode())
    headers = [*entry.headers, position, *extra]
    return _shaped(headers, entry.body, entry.etag, head.if_none_match, head_only)


def _shaped(
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    etag: bytes,
    if_none_match: bytes | None,
    head_only: bool,
) -> Answer:
    """A 200 whose headers carry its ETag, or 304 for a current If-None-Match. A route's
    answer and a cached one take this shape."""
    if if_none_match is not None and none_match(
        if_none_match.decode("latin-1"), etag.decode("latin-1")
    ):
        kept = [(k, v) for k, v in headers if k not in (b"content-length", b"content-type")]
        return 304, kept, b""
    return 200, headers, b"" if head_only else body


async def _send_answer(answer: Answer, send: Any) -> int:
    """Send an answer as ASGI messages; its status."""
    status, headers, body = answer
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return status


def _taggable(headers: Any) -> list[tuple[bytes, bytes]] | None:
    """Whether a 200 gets an ETag: when its Content-Length is known and at most
    MAX_TAGGED_BYTES (a streamed body passes untouched). Then the headers it gets besides
    (Cache-Control: no-cache, unless it set its own, like the docs' immutable assets)."""
    length, extra = MAX_TAGGED_BYTES + 1, REVALIDATE
    for key, value in headers:
        if key == b"content-length":
            length = int(value)
        elif key == b"cache-control":
            extra = []
    return extra if length <= MAX_TAGGED_BYTES else None
