"""Print every message a WebSocket endpoint sends, one timestamped line each.

    python -m scripts.ws_consumer ws://127.0.0.1:8000/ws/broadcast [--max-messages N]

When the connection drops or is refused, the consumer logs why and connects again after
0.5 s, doubling the wait up to 10 s; a connection that opens resets the wait. Ctrl-C or
SIGTERM stops it with exit code 0. A close with 4400 (bad parameter) or 4403 (origin not
allowed) would only happen again, so it stops there with exit code 1.
"""

import argparse
import asyncio
import contextlib
import signal
import sys
from datetime import datetime

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import Close
from websockets.uri import parse_uri

BACKOFF_START = 0.5
BACKOFF_MAX = 10.0
FINAL_CODES = {4400, 4403}  # retrying cannot help
RETRY_STATUSES = {408, 425, 429}  # the 4xx answers that do mean "try again later"


def log(text: str) -> None:
    print(f"{datetime.now().isoformat(timespec='seconds')} {text}", flush=True)


def one_line(message: str | bytes) -> str:
    if isinstance(message, bytes):
        return f"<{len(message)} bytes of binary data>"
    return message.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def describe(close: Close | None) -> str:
    if close is None:
        return "connection lost without a close frame"
    return f"{close.code} {close.reason}".rstrip()


async def consume(url: str, max_messages: int | None) -> int:
    """Receive until max_messages have arrived (exit code 0) or a final close (exit code 1)."""
    received = 0
    delay = BACKOFF_START
    while True:
        close: Close | None = None
        try:
            async with connect(url) as ws:
                log(f"connected: {url}")
                delay = BACKOFF_START
                async for message in ws:  # ends quietly on a 1000/1001 close
                    log(f"message: {one_line(message)}")
                    received += 1
                    if max_messages is not None and received >= max_messages:
                        log(f"received {received} messages, exiting")
                        return 0
                close = ws.protocol.close_rcvd
            log(f"disconnected: {describe(close)}")
        except ConnectionClosed as exc:
            close = exc.rcvd
            log(f"disconnected: {describe(close)}")
        except InvalidStatus as exc:
            status = exc.response.status_code
            if 400 <= status < 500 and status not in RETRY_STATUSES:  # wrong URL: final
                log(f"giving up: the server answered HTTP {status} to {url}")
                return 1
            log(f"cannot connect to {url}: {exc}")
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            log(f"cannot connect to {url}: {exc or type(exc).__name__}")
        if close is not None and close.code in FINAL_CODES:
            log(f"giving up: the server refused this connection ({describe(close)})")
            return 1
        log(f"retrying in {delay:.1f} s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, BACKOFF_MAX)


async def run(url: str, max_messages: int | None) -> int:
    """consume(), stopped cleanly by SIGINT or SIGTERM."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows: Ctrl-C still works
            loop.add_signal_handler(sig, task.cancel)
    try:
        return await consume(url, max_messages)
    except asyncio.CancelledError:
        log("stopped")
        return 0


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Print every message a WebSocket endpoint sends; reconnect with backoff."
    )
    parser.add_argument("url", help="e.g. ws://127.0.0.1:8000/ws/broadcast")
    parser.add_argument(
        "--max-messages", type=positive_int, metavar="N", help="exit after N messages"
    )
    args = parser.parse_args(argv)
    try:
        parse_uri(args.url)
    except InvalidURI as exc:
        parser.error(str(exc))
    try:
        return asyncio.run(run(args.url, args.max_messages))
    except KeyboardInterrupt:
        log("stopped")
        return 0


if __name__ == "__main__":
    sys.exit(main())
