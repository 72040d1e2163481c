"""`uvicorn src.main:app` without `make run` (which starts no PostgreSQL and provides no
secret): a missing or bad setting stops it with one line naming the variable, never a
traceback; a server with no JWT_SECRET says at start that it refuses every write."""

import signal
import sys

import pytest

from tests.helpers import TEST_JWT_SECRET, Process


def plain_uvicorn(**env: str) -> Process:
    args = [sys.executable, "-m", "uvicorn", "src.main:app", "--port", "0"]
    return Process(args, {"JWT_SECRET": TEST_JWT_SECRET, "ENV": "development", **env})


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"DATABASE_URL": ""}, ["DATABASE_URL is not set", "make run", "embedded PostgreSQL"]),
        ({"PORT": "abc"}, ["invalid setting PORT"]),
        ({"DB_POOL_MAX": "0"}, ["invalid setting DB_POOL_MAX"]),
    ],
    ids=["no-DATABASE_URL", "PORT=abc", "DB_POOL_MAX=0"],
)
def test_plain_uvicorn_with_a_missing_or_bad_setting_exits_with_one_line_naming_it(
    env: dict[str, str], says: list[str]
) -> None:
    """One line saying what is wrong and what to do, and a non-zero status."""
    process = plain_uvicorn(**{"DATABASE_URL": "postgresql://127.0.0.1:1/unused", **env})
    try:
        lines = process.rest()
    finally:
        status = process.stop(signal.SIGTERM)
    assert status != 0
    assert len(lines) == 1, "\n".join(lines)
    assert all(part in lines[0] for part in says), lines[0]


def test_plain_uvicorn_without_jwt_secret_says_it_refuses_every_write(database_url: str) -> None:
    """One warning line at start names JWT_SECRET; the server serves all the same."""
    process = plain_uvicorn(DATABASE_URL=database_url, JWT_SECRET="")
    try:
        process.wait_for("Uvicorn running on")
    finally:
        process.stop(signal.SIGTERM)
    said = [line for line in process.lines if "JWT_SECRET" in line]
    assert len(said) == 1, "\n".join(process.lines)
    assert said[0].startswith("WARNING:") and "refuses every catalog write" in said[0], said
