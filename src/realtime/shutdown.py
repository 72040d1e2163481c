"""Graceful stop: every WebSocket client is told 1001 before the server goes away."""

import asyncio
import signal
import threading
from typing import Any

from src.realtime.fanout import Registry
from src.realtime.protocol import Close

_shutdown_tasks: set[asyncio.Task[None]] = set()


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
