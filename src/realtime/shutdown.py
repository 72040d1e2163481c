"""Graceful stop: every WebSocket client is told 1001 before the server goes away; a second
signal hurries the stop without skipping the app's shutdown."""

import asyncio
import signal
import threading
from typing import Any

from src.compat.uvicorn import drop_connections, server_of
from src.realtime.protocol import Close
from src.realtime.topics import Registry

_shutdown_tasks: set[asyncio.Task[None]] = set()


def close_peers_on_signals(registry: Registry) -> None:
    """Send 1001 to every client as soon as SIGINT/SIGTERM arrives.

    UVICORN TRAP: on a graceful stop uvicorn closes open WebSockets itself with 1012, before
    the lifespan's shutdown runs. We chain onto its signal handlers (installed before the
    lifespan starts): our 1001 close frames go out first, and only then (or after one
    second) is uvicorn's own handler called; it then finds those sockets closing.

    UVICORN TRAP: a second SIGINT (Ctrl-C twice) sets uvicorn's `force_exit`, which ends
    its wait for open connections and also skips the lifespan's shutdown: the pool, the
    feed and the broker are never closed, the lifespan's generator is left suspended at its
    `yield`, and asyncio's `shutdown_asyncgens` then closes lihil's wrapper and our
    generator at once ("aclose(): asynchronous generator is already running"). So uvicorn
    is told of one signal per stop, never two: a repeated signal hurries the stop here by
    dropping the open connections (their handlers see the disconnect and return; a request
    still running finishes or is cancelled by uvicorn's `timeout_graceful_shutdown`), and
    uvicorn then runs the lifespan's shutdown as usual. A third signal is passed on:
    uvicorn's force quit, for a stop that hangs in the app's own shutdown.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # TestClient runs the app in a thread; the lifespan's close_all covers it
    loop = asyncio.get_running_loop()
    told_uvicorn = asyncio.Event()
    received: list[int] = []  # the signals of this stop, in order

    async def close_then_stop(signum: int, frame: Any, previous: Any) -> None:
        closers = registry.close_all(Close.GOING_AWAY, "server shutting down")
        if closers:
            await asyncio.wait(closers, timeout=1.0)
        if callable(previous):
            previous(signum, frame)
        told_uvicorn.set()

    async def hurry(signum: int, frame: Any, previous: Any) -> None:
        await told_uvicorn.wait()  # the first signal's stop is under way
        server = server_of(previous)
        if server is not None:
            drop_connections(server)  # their clients were told 1001 already
        elif callable(previous):
            previous(signum, frame)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            def begin() -> None:
                received.append(signum)
                if len(received) == 1:
                    task = loop.create_task(close_then_stop(signum, frame, previous))
                elif len(received) == 2:
                    task = loop.create_task(hurry(signum, frame, previous))
                elif callable(previous):
                    previous(signum, frame)  # uvicorn's force quit
                    return
                else:
                    return
                _shutdown_tasks.add(task)
                task.add_done_callback(_shutdown_tasks.discard)

            loop.call_soon_threadsafe(begin)

        signal.signal(sig, handler)
