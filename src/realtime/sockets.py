"""The WebSocket edge: the Origin guard, the accepted-socket factory, graceful 1001."""

import asyncio
import itertools
import logging
import os
import secrets
import signal
import threading
from collections.abc import AsyncIterator, MutableMapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from lihil import Ignore, use
from lihil.vendors import WebSocket

from src.config import Settings
from src.errors import PROBLEM_JSON, Problem, problem_response
from src.realtime.fanout import Peer, Registry
from src.realtime.protocol import Close

log = logging.getLogger("catalog.realtime")
LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}

# Member ids are unique across processes and hosts: a random node id plus a sequence.
NODE_ID = f"{os.getpid():x}{secrets.token_hex(3)}"
_sequence = itertools.count(1)


def new_member_id() -> str:
    return f"{NODE_ID}-{next(_sequence)}"


def origin_allowed(origin: str, host: str | None, allowed: tuple[str, ...]) -> bool:
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


Scope = MutableMapping[str, Any]


class WebSocketGate:
    """ASGI middleware for everything that must not reach a WebSocket handler:

    - a handshake to a path no WebSocket route serves is refused with HTTP 404 (a problem
      body). LIHIL TRAP: lihil would hand it to an HTTP route with that path, which fails
      with a KeyError on the missing method: HTTP 500.
    - a handshake from a foreign Origin is accepted, then closed with 4403 (a browser can
      read that; a refused handshake reaches it only as 1006). Handshakes without Origin
      (command-line and server clients) pass.
    - a plain HTTP request to a WebSocket path answers 426 Upgrade Required (starlette's
      WebSocket would fail an assertion on it: HTTP 500).
    """

    def __init__(self, app: Any, allowed: tuple[str, ...], routes: list[Any]) -> None:
        self.app = app
        self.allowed = allowed
        self.routes = routes

    def _serves(self, scope: Scope) -> bool:
        return any(route.match(scope) for route in self.routes)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self._serves(scope):
            detail = f"{scope['path']} is a WebSocket endpoint: connect with a WebSocket client"
            problem = Problem("upgrade-required", "Upgrade required", 426, detail, scope["path"])
            response = problem_response(problem, {"Upgrade": "websocket"})
            await response(scope, receive, send)
            return
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        await receive()  # websocket.connect
        if not self._serves(scope):
            await self._refuse(scope, send)
            return
        headers = dict(scope.get("headers", ()))
        origin, host = headers.get(b"origin"), headers.get(b"host")
        if origin is not None and not origin_allowed(
            origin.decode("latin-1"), host.decode("latin-1") if host else None, self.allowed
        ):
            await send({"type": "websocket.accept"})
            reason = f"origin {origin.decode('latin-1')[:80]} is not allowed"
            await send({"type": "websocket.close", "code": Close.FORBIDDEN, "reason": reason})
            return
        await self.app(scope, _replay_connect(receive), send)

    async def _refuse(self, scope: Scope, send: Any) -> None:
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": Close.POLICY})  # HTTP 403
            return
        path = scope["path"]
        body = problem_response(
            Problem("not-found", "Resource not found", 404, f"no WebSocket at {path}", path)
        ).body
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 404,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})


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


async def open_peer(
    ws: Ignore[WebSocket], settings: Settings, registry: Registry
) -> Ignore[AsyncIterator[Peer]]:
    """Accept, hand the handler a Peer (queue + writer task), close and clean up after."""
    await ws.accept()
    peer = Peer(
        ws, queue_limit=settings.WS_SEND_QUEUE, max_message_bytes=settings.WS_MAX_MESSAGE_BYTES
    )
    registry.peers.add(peer)
    try:
        yield peer
    finally:
        registry.peers.discard(peer)
        await peer.finish()


PeerDep = Annotated[Peer, use(open_peer)]


def close_peers_on_signals(registry: Registry) -> None:
    """Send 1001 to every client as soon as SIGINT/SIGTERM arrives.

    UVICORN TRAP: on a graceful stop uvicorn closes open WebSockets itself with 1012, before
    the lifespan's shutdown runs. We chain onto its signal handlers (installed before the
    lifespan starts): our 1001 close frames go out first, and only then (or after one
    second) is uvicorn's own handler called; it then finds those sockets closing.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # TestClient runs the app in a thread; the lifespan's close_all covers it
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)

        async def close_then_stop(signum: int, frame: Any, previous: Any) -> None:
            closers = registry.close_all(Close.GOING_AWAY, "server shutting down")
            if closers:
                await asyncio.wait(closers, timeout=1.0)
            if callable(previous):
                previous(signum, frame)

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            def begin() -> None:
                task = loop.create_task(close_then_stop(signum, frame, previous))
                _shutdown_tasks.add(task)
                task.add_done_callback(_shutdown_tasks.discard)

            loop.call_soon_threadsafe(begin)

        signal.signal(sig, handler)


_shutdown_tasks: set[asyncio.Task[None]] = set()
