"""`python -m scripts.token`: a token the service accepts, or a clear refusal."""

import os
import subprocess
import sys
from pathlib import Path

from src.auth import verify
from tests.helpers import TEST_JWT_SECRET


def token(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.token", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_mints_a_token_the_service_accepts(tmp_path: Path) -> None:
    run = token({"JWT_SECRET": TEST_JWT_SECRET, "DATA_DIR": str(tmp_path)}, "--sub", "ann")
    assert run.returncode == 0, run.stderr
    claims = verify(f"Bearer {run.stdout.strip()}", TEST_JWT_SECRET, audience="catalog")
    assert claims["sub"] == "ann" and claims["aud"] == "catalog"


def test_without_any_secret_it_says_where_it_looked(tmp_path: Path) -> None:
    run = token({"JWT_SECRET": "", "DATA_DIR": str(tmp_path)})
    assert run.returncode == 2
    assert f"no development secret at {tmp_path / 'jwt-secret'}" in run.stderr
