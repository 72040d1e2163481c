"""The floor for WebSockets: a bare ASGI callable, no framework, served by the same uvicorn.

- /ws/echo answers "OK!" to every text frame (the handshake floor);
- /counter sends the number of /counter connections to every one of them on each connect
  and disconnect, directly: `for send in sockets: await send(count)` (no coalescing);
- /ws/broadcast sends every text frame it receives to every /ws/broadcast socket, sender
  included, by THE bare loop: one message object, `await send(message)` for each socket in
  turn (the fan-out floor: its time and frames per CPU-second);
- GET /health answers {"status":"ok"}; anything else is 404 (a refused handshake: 403).

    uvicorn bench.references.bare_asgi_ws:app
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

OK: Message = {"type": "websocket.send", "text": "OK!"}
HEALTH = b'{"status":"ok"}'
NOT_FOUND = b'{"detail":"not found"}'

counter_sockets: list[Send] = []
broadcast_sockets: list[Send] = []


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "http":
        await _http(scope, send)
    elif kind == "websocket":
        handler = WEBSOCKETS.get(scope["path"])
        if (await receive())["type"] != "websocket.connect":
            return
        if handler is None:
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        await handler(receive, send)
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _http(scope: Scope, send: Send) -> None:
    found = scope["path"] == "/health" and scope["method"] == "GET"
    body = HEALTH if found else NOT_FOUND
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200 if found else 404, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _echo(receive: Receive, send: Send) -> None:
    while (message := await receive())["type"] != "websocket.disconnect":
        if message.get("text") is not None:
            await send(OK)


async def _counter(receive: Receive, send: Send) -> None:
    counter_sockets.append(send)
    try:
        await _send_count()
        while (await receive())["type"] != "websocket.disconnect":
            pass
    finally:
        counter_sockets.remove(send)
        await _send_count()


async def _send_count() -> None:
    message = {"type": "websocket.send", "text": str(len(counter_sockets))}
    for send in tuple(counter_sockets):
        try:
            await send(message)
        except Exception:  # that client is gone: its own handler removes it
            pass


async def _broadcast(receive: Receive, send: Send) -> None:
    broadcast_sockets.append(send)
    try:
        while (message := await receive())["type"] != "websocket.disconnect":
            text = message.get("text")
            if text is None:
                continue
            out = {"type": "websocket.send", "text": text}  # one message for every socket
            for peer in tuple(broadcast_sockets):
                try:
                    await peer(out)
                except Exception:  # that client is gone: its own handler removes it
                    pass
    finally:
        broadcast_sockets.remove(send)


WEBSOCKETS: dict[str, Callable[[Receive, Send], Awaitable[None]]] = {
    "/ws/echo": _echo,
    "/counter": _counter,
    "/ws/broadcast": _broadcast,
}
