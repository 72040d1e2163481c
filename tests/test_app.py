"""The app factory: importing it builds nothing, so only `src.main` reads the environment."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import asyncpg

from src.config import PROJECT_ROOT
from tests.helpers import start_live_server, with_database


def python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_importing_the_factory_ignores_a_broken_environment() -> None:
    """With PORT=eighty, the schema export and the test fixtures still import (they pass
    their own settings); only the served app refuses, naming the variable."""
    ok = python("import scripts.export_schema, src.app, tests.conftest", PORT="eighty")
    assert ok.returncode == 0, ok.stderr
    served = python("import src.main", PORT="eighty")
    assert served.returncode != 0 and "invalid setting PORT" in served.stderr


def test_first_start_on_an_empty_database_says_it_loaded_the_demo_catalog(
    admin_dsn: str,
) -> None:
    """The served app's own log lines reach the console in uvicorn's format."""
    name = f"empty_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin(admin_dsn, f"CREATE DATABASE {name}"))
    try:
        process, _ = start_live_server(with_database(admin_dsn, name))
        try:
            # start_live_server has read the output up to "Uvicorn running on".
            loaded = [line for line in process.lines if "loaded the demo catalog" in line]
            assert loaded and loaded[0].startswith("INFO:"), process.lines
        finally:
            process.stop(signal.SIGTERM)
    finally:
        asyncio.run(admin(admin_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
