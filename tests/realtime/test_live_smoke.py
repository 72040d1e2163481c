"""A first end-to-end check: real uvicorn, real websockets client."""

import asyncio

import websockets

from tests.conftest import LiveServer


async def test_echo_over_a_real_server(live_server: LiveServer) -> None:
    """/ws/echo answers OK! through uvicorn."""
    async with websockets.connect(f"{live_server.ws}/ws/echo") as ws:
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), 5) == "OK!"
