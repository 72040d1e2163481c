"""Conditional GETs and HEAD, for every route that answers GET.

A 200 answer to GET carries a strong `ETag`: a hash of the very bytes being sent, computed
for each response. Nothing is cached on the server, so there is nothing to invalidate: a
tag changes exactly when the body does, whoever changed the rows behind it (this API,
another worker, plain SQL), and a 304 can never stand for a changed row. The cost is the
hash, about a microsecond per kilobyte; the saving is the body on the wire. Responses
without a Content-Length (streamed) pass through untouched.

HEAD is answered wherever GET is: the request runs as a GET and only the head is sent
(LIHIL TRAP: lihil routes HEAD nowhere, so it answered 405).
"""

import hashlib
from typing import Any

from src.asgi import ASGIApp, Scope

MAX_TAGGED_BYTES = 1024 * 1024  # larger bodies (none today) are sent untagged


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def none_match(header: str, etag: str) -> bool:
    """If-None-Match holds `etag` (weak comparison, as RFC 9110 asks for it) or `*`."""
    candidates = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in candidates or etag in candidates


class ConditionalGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        head_only = scope["method"] == "HEAD"
        if head_only:
            scope = {**scope, "method": "GET"}
        if_none_match = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"if-none-match"), None
        )
        start: dict[str, Any] | None = None
        body: list[bytes] = []

        async def _send(message: dict[str, Any]) -> None:
            nonlocal start
            if start is not None:  # a tagged answer's body: held until complete
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await _tagged(start, b"".join(body), if_none_match, head_only, send)
            elif message["type"] == "http.response.start":
                if message["status"] == 200 and _length(message) <= MAX_TAGGED_BYTES:
                    start = message
                else:
                    await send(message)
            elif head_only and message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b""})
            else:
                await send(message)

        await self.app(scope, receive, _send)


async def _tagged(
    start: dict[str, Any], body: bytes, if_none_match: str | None, head_only: bool, send: Any
) -> None:
    etag = etag_of(body)
    headers = list(start.get("headers", ()))
    headers.append((b"etag", etag.encode()))
    if not any(k == b"cache-control" for k, _ in headers):
        headers.append((b"cache-control", b"no-cache"))  # revalidate: the tag says if fresh
    if if_none_match is not None and none_match(if_none_match, etag):
        kept = [(k, v) for k, v in headers if k not in (b"content-length", b"content-type")]
        await send({"type": "http.response.start", "status": 304, "headers": kept})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head_only else body})


def _length(start: dict[str, Any]) -> int:
    """The response's Content-Length, or a huge number when it has none (streamed)."""
    for key, value in start.get("headers", ()):
        if key == b"content-length":
            return int(value)
    return MAX_TAGGED_BYTES + 1
