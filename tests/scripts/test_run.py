"""`make run`: embedded PostgreSQL, demo data, serving; Ctrl-C stops both; data is kept."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from src.db.embedded import EmbeddedPostgres, free_port
from tests.helpers import running


def test_run_serves_the_catalog_then_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    """Two runs on one data folder: the second finds what the first wrote."""
    pgdata = tmp_path / "pg"
    port = free_port()
    env = {"PGDATA_DIR": str(pgdata), "PORT": str(port), "DATABASE_URL": "", "JWT_SECRET": ""}
    base = f"http://127.0.0.1:{port}"

    with running(["-m", "scripts.run"], env) as server:
        auth = {"Authorization": server.wait_for("Authorization: Bearer ").split(": ", 1)[1]}
        server.wait_for("Application startup complete")
        assert len(httpx.get(f"{base}/brands").json()) == 100
        new = {"product_name": "kept", "brand_id": 1}
        assert httpx.post(f"{base}/product", json=new).status_code == 401
        created = httpx.post(f"{base}/product", json=new, headers=auth)
        assert created.status_code == 201
        assert server.stop(signal.SIGINT) == 0
        server.wait_for("stopping the embedded PostgreSQL")
    assert EmbeddedPostgres(pgdata).pid is None  # no postmaster.pid: the server stopped

    with running(["-m", "scripts.run"], env) as server:
        server.wait_for("Application startup complete")
        # The same development secret: a token from the first run still works, and so
        # does one minted by scripts.token.
        minted = subprocess.run(
            [sys.executable, "-m", "scripts.token", "--ttl", "60"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for headers in (auth, {"Authorization": f"Bearer {minted}"}):
            renamed = httpx.put(f"{base}{created.headers['location']}", json=new, headers=headers)
            assert renamed.status_code == 200, renamed.text
        location = created.headers["location"]
        assert httpx.get(f"{base}{location}").json()["product_name"] == "kept"
        assert server.stop(signal.SIGTERM) == 0
    server.wait_for("stopping the embedded PostgreSQL")
    assert EmbeddedPostgres(pgdata).pid is None


def test_run_refuses_a_malformed_setting(tmp_path: Path) -> None:
    """A bad value stops `make run` at once with the variable's name."""
    with running(["-m", "scripts.run"], {"PORT": "eighty"}) as server:
        server.wait_for("invalid setting PORT")
        assert server.proc.wait(timeout=30) == 2
