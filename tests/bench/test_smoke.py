"""`python -m bench --smoke`, run once for the module (one PostgreSQL for both sections):
every server starts, answers like ours and is loaded; the report has a row for each target
and the machine line."""

import subprocess
import sys
from pathlib import Path

import pytest

from src.config import PROJECT_ROOT

WRK = Path("/usr/bin/wrk")
TARGETS = [
    f"HTTP {endpoint}: {what}"
    for endpoint in ("/brands", "/products/{id}")
    for what in ("req/s ours / bare ASGI floor", "req/s ours / Starlette", "p99 ours / Starlette")
] + ["HTTP /health: req/s ours / bare ASGI floor's /ping"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The report of one `python -m bench --smoke` (`--only ws` where wrk is missing)."""
    out = tmp_path_factory.mktemp("bench") / "BENCHMARKS.md"
    only = [] if WRK.exists() else ["--only", "ws"]
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", *only, "--out", str(out)],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out.read_text()


@pytest.mark.skipif(
    not WRK.exists(), reason="wrk is not installed (/usr/bin/wrk: apt-get install wrk)"
)
@pytest.mark.timeout(630)
def test_http_smoke_writes_a_report(report: str) -> None:
    for target in TARGETS:
        assert f"| {target} | " in report, target
    assert "\nMachine: " in report
    assert "| target | measured | limit | verdict |" in report
    assert "wrk command: `wrk -t1 -c10 -d1s --latency" in report


WS_TARGETS = [
    "connect time ours /counter ÷ ours /ws/echo",
    "frames received ÷ N",
    "frames per CPU-s ours ÷ bare loop",
    "RSS per connection ours ÷ bare uvicorn",
]


@pytest.mark.timeout(630)
def test_websocket_smoke_writes_a_report(report: str) -> None:
    """Every server and the load client run, a storm of 50 converges on ours, and the report
    has the WebSocket targets."""
    for target in WS_TARGETS:
        assert target in report, target
    assert "| ours /counter |" in report and "did not converge" not in report
