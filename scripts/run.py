"""`make run`: serve the catalog, starting an embedded PostgreSQL when DATABASE_URL is unset.

The embedded server's data lives in PGDATA_DIR (default `.data/pg` in the checkout), so the
next run starts in seconds and keeps the data. Ctrl-C (or SIGTERM) stops uvicorn, then the
embedded server.
"""

import os
import signal
import sys
from types import FrameType

import uvicorn

from src.config import ConfigError, load_settings
from src.db.embedded import EmbeddedPostgres


def _graceful_exit(signum: int, frame: FrameType | None) -> None:
    # uvicorn re-raises the signal that stopped it once it has shut down; with the default
    # SIGTERM action the process would die there, before the embedded server is stopped.
    raise SystemExit(0)


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    embedded = None
    if not settings.DATABASE_URL:
        embedded = EmbeddedPostgres(settings.PGDATA_DIR)
        print(f"starting the embedded PostgreSQL in {embedded.data_dir} ...", flush=True)
        os.environ["DATABASE_URL"] = embedded.start()  # read by src.main when uvicorn imports it
        print(f"PostgreSQL: {os.environ['DATABASE_URL']}", flush=True)
    base = f"http://{settings.HOST}:{settings.PORT}"
    print(f"API: {base}/brands   docs: {base}/docs   page: {base}/", flush=True)
    signal.signal(signal.SIGINT, _graceful_exit)
    signal.signal(signal.SIGTERM, _graceful_exit)
    try:
        uvicorn.run(
            "src.main:app",
            host=settings.HOST,
            port=settings.PORT,
            workers=settings.WORKERS,
            log_level=settings.LOG_LEVEL,
            http="src.server:HttpProtocol",  # a timer on request heads, a connection cap
            ws_max_size=settings.WS_MAX_MESSAGE_BYTES,
            ws_ping_interval=settings.WS_PING_INTERVAL,
            ws_ping_timeout=settings.WS_PING_INTERVAL,
            # Frames here are tiny (counts, short lines): compression saves a few bytes each
            # and costs ~33 KiB per connection and a compression per socket per frame
            # (docs/BENCHMARKS.md, "permessage-deflate").
            ws_per_message_deflate=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        if embedded is not None:
            print("stopping the embedded PostgreSQL ...", flush=True)
            embedded.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
