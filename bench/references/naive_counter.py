"""The tutorial's users-online counter on Starlette, as the tutorial writes it.

Every connect and every disconnect sends the new count to every socket, one task per
socket, and waits for all of them: N connections cost N²/2 frames and N²/2 tasks. Only the
`in` check before the removal in `on_disconnect` is ours (a socket whose send failed was
already removed; the tutorial's `remove` would raise there). GET /health is added so the
storm's /health probe has something to ask.

    uvicorn bench.references.naive_counter:app
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.endpoints import WebSocketEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


class UserCounter(WebSocketEndpoint):
    encoding = "text"
    sockets: ClassVar[list[WebSocket]] = []

    async def on_connect(self, websocket: WebSocket) -> None:
        await websocket.accept()
        UserCounter.sockets.append(websocket)
        await self._send_count()

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        if websocket in UserCounter.sockets:
            UserCounter.sockets.remove(websocket)
        await self._send_count()

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        pass

    async def _send_count(self) -> None:
        if len(UserCounter.sockets) > 0:
            count_str = str(len(UserCounter.sockets))
            task_to_socket = {
                asyncio.create_task(websocket.send_text(count_str)): websocket
                for websocket in UserCounter.sockets
            }
            done, _pending = await asyncio.wait(task_to_socket)
            for task in done:
                if task.exception() is not None and task_to_socket[task] in UserCounter.sockets:
                    UserCounter.sockets.remove(task_to_socket[task])


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[WebSocketRoute("/counter", UserCounter), Route("/health", health)])
