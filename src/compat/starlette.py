"""starlette (and the uvicorn WebSocket protocol under it): a send stepped by hand.

The fan-out writes a frame in the publisher's own step, without a task: it starts
`WebSocket.send` as a bare coroutine and steps it once (`send_now`). That relies on code we
do not own: starlette's `WebSocket.send` (1.10.0) awaits nothing but the ASGI `send`, and
uvicorn's WebSocket protocols (0.54.0: websockets, websockets-sansio, wsproto) suspend that
only on `writable.wait()`, while the client's transport is paused (it stopped reading). So
a send to a client that reads completes in that one step; should either start awaiting
something else first, every frame would get a task again (slower, still correct).

Importing this module changes nothing.
"""

from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

from starlette.websockets import WebSocket

PACKAGE = "starlette"
WRITTEN_FOR = "1.10.0"


class _Resumed:
    """Awaits the rest of a coroutine that was already stepped up to its first suspension,
    where it yielded `first` (what `yield from` does). This is how a send starts without a
    task: it runs synchronously until it would block, and only then does a task finish it."""

    def __init__(self, coro: Coroutine[Any, Any, None], first: Any) -> None:
        self.coro, self.first = coro, first

    def __await__(self) -> Generator[Any, Any, None]:
        value = self.first
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # cancelled while waiting: pass it in
                try:
                    value = self.coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = self.coro.send(sent)
                except StopIteration:
                    return


def send_now(ws: WebSocket, message: dict[str, Any]) -> Awaitable[None] | None:
    """Run `ws.send(message)` in the caller's step: None once it is written; else (the
    client stopped reading) an awaitable that finishes the send, for a task to await.

    Whatever the send raises before it suspends is raised here.
    """
    coro = ws.send(message)
    try:
        blocked_on = coro.send(None)
    except StopIteration:
        return None  # written: no task, no switch
    return _Resumed(coro, blocked_on)
