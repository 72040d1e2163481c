"""Send one message to /ws/broadcast and wait until the server delivers it back to us.

    python -m scripts.ws_producer ws://127.0.0.1:8000/ws/broadcast "hello" [--timeout 5]

The broadcast endpoint delivers every message to every client, the sender included, so its
own copy coming back confirms that the server took it. Exit code 0 then; 1 with the reason
on stderr when it cannot connect, the server closes the connection, or no copy comes back
within the timeout (which covers connecting too).
"""

import argparse
import asyncio
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.frames import Close
from websockets.uri import parse_uri


class Failed(Exception):
    """Why the message was not confirmed; the text goes to stderr."""


def describe(close: Close | None) -> str:
    if close is None:
        return "connection lost without a close frame"
    return f"code {close.code}, reason {close.reason!r}"


async def produce(url: str, message: str, within: float) -> None:
    """Send the message and return once its copy has come back; raise Failed otherwise."""
    deadline = asyncio.get_running_loop().time() + within
    try:
        async with asyncio.timeout_at(deadline):
            ws = await connect(url, open_timeout=None, close_timeout=2)
    except TimeoutError as exc:
        raise Failed(f"cannot connect to {url}: no answer within {within:g} s") from exc
    except (OSError, InvalidHandshake) as exc:
        raise Failed(f"cannot connect to {url}: {exc or type(exc).__name__}") from exc
    async with ws:
        try:
            async with asyncio.timeout_at(deadline):
                await ws.send(message)
                async for received in ws:  # messages from other clients may come first
                    if received == message:
                        return
        except TimeoutError as exc:
            raise Failed(f"no copy of the message came back within {within:g} s") from exc
        except ConnectionClosed as exc:
            raise Failed(
                f"connection closed before the copy came back: {describe(exc.rcvd)}"
            ) from exc
        close = ws.protocol.close_rcvd
        raise Failed(f"connection closed before the copy came back: {describe(close)}")


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Send one message to /ws/broadcast and wait for its copy to come back."
    )
    parser.add_argument("url", help="e.g. ws://127.0.0.1:8000/ws/broadcast")
    parser.add_argument("message", help="the text to send")
    parser.add_argument(
        "--timeout", type=positive_float, default=5.0, metavar="SECONDS", help="default: 5"
    )
    args = parser.parse_args(argv)
    try:
        parse_uri(args.url)
    except InvalidURI as exc:
        parser.error(str(exc))
    try:
        asyncio.run(produce(args.url, args.message, args.timeout))
    except Failed as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return 130
    print(f"sent and confirmed: {args.message!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
