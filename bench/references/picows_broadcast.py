"""The ceiling: a picows server (its own process, uvloop, no ASGI, no uvicorn).

- /ws/broadcast: every text frame received is framed once (header + payload, bytes) and
  that one bytes object is written straight to every /ws/broadcast socket's transport;
- /ws/echo: answers "OK!" to every text frame (handshakes; idle connections for RSS);
- GET /health: 200 {"status":"ok"}.

It offers no permessage-deflate (picows does not implement it), and its per-connection
read buffer starts at 1 KiB (picows' default is 16 KiB), like the load client's.

    python -m bench.references.picows_broadcast --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import struct

import uvloop
from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

READ_BUFFER = 1024
peers: set[asyncio.Transport] = set()


def text_frame(payload: bytes) -> bytes:
    """One unmasked server-to-client text frame (FIN set), header and payload."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


class _Closing(WSListener):
    def closing(self, transport: WSTransport, frame: WSFrame) -> bool:
        """Answer a close frame and hang up; True if `frame` was one."""
        if frame.msg_type is not WSMsgType.CLOSE:
            return False
        transport.send_close(frame.get_close_code())
        transport.disconnect()
        return True


class Broadcast(_Closing):
    def __init__(self) -> None:
        super().__init__()
        self.raw: asyncio.Transport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.raw = transport.underlying_transport
        peers.add(self.raw)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            data = text_frame(frame.get_payload_as_bytes())  # encoded once
            for peer in peers:
                peer.write(data)
        else:
            self.closing(transport, frame)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.raw is not None:
            peers.discard(self.raw)


class Echo(_Closing):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            transport.send(WSMsgType.TEXT, b"OK!")
        else:
            self.closing(transport, frame)


def route(request: WSUpgradeRequest) -> WSListener | WSUpgradeResponseWithListener | None:
    if request.path == b"/ws/broadcast":
        return Broadcast()
    if request.path == b"/ws/echo":
        return Echo()
    if request.path == b"/health":
        ok = WSUpgradeResponse.create_ok_response(
            b'{"status":"ok"}', {"Content-Type": "application/json"}
        )
        return WSUpgradeResponseWithListener(ok, None)
    return None  # 404


async def serve(port: int) -> None:
    server = await ws_create_server(
        route, "127.0.0.1", port, read_buffer_init_size=READ_BUFFER, backlog=2048
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()  # open connections die with the process (no wait for them to close)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
