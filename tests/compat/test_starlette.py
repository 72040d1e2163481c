"""The hand-stepped send holds for the installed starlette: written in one step while the
client reads, finished by an awaitable once the send has to wait."""

import asyncio
from collections.abc import MutableMapping
from typing import Any

from starlette.websockets import WebSocket

from src.compat.starlette import send_now


class Transport:
    """An ASGI server side whose send waits, like uvicorn's, only while `writable` is clear."""

    def __init__(self) -> None:
        self.sent: list[MutableMapping[str, Any]] = []
        self.writable = asyncio.Event()
        self.writable.set()

    async def receive(self) -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        await self.writable.wait()
        self.sent.append(message)


async def accepted(transport: Transport) -> WebSocket:
    ws = WebSocket({"type": "websocket", "path": "/"}, transport.receive, transport.send)
    await ws.accept()
    return ws


async def test_send_to_a_reading_client_is_written_in_the_callers_step() -> None:
    """Nothing to wait for: the frame is written before send_now returns, no awaitable."""
    transport = Transport()
    ws = await accepted(transport)
    assert send_now(ws, {"type": "websocket.send", "text": "hi"}) is None
    assert transport.sent[-1] == {"type": "websocket.send", "text": "hi"}


async def test_send_that_must_wait_is_finished_by_the_returned_awaitable() -> None:
    """A paused transport: send_now returns at once; awaiting the rest writes the frame."""
    transport = Transport()
    ws = await accepted(transport)
    transport.writable.clear()
    rest = send_now(ws, {"type": "websocket.send", "text": "later"})
    assert rest is not None and len(transport.sent) == 1  # only the accept
    asyncio.get_running_loop().call_soon(transport.writable.set)
    await rest
    assert transport.sent[-1] == {"type": "websocket.send", "text": "later"}


async def test_cancelling_a_waiting_send_cancels_the_send() -> None:
    """A writer task cancelled while the send waits leaves nothing written."""
    transport = Transport()
    ws = await accepted(transport)
    transport.writable.clear()
    rest = send_now(ws, {"type": "websocket.send", "text": "never"})
    assert rest is not None

    async def finish() -> None:
        await rest

    task = asyncio.create_task(finish())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and len(transport.sent) == 1
