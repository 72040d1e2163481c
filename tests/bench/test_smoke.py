"""`python -m bench --smoke --only http`: every server starts, answers like ours, is loaded
by wrk, and the report has a row for each HTTP target and the machine line."""

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
]


def smoke(only: str, tmp_path: Path) -> str:
    """Run `python -m bench --smoke --only <only>`; returns the report it wrote."""
    out = tmp_path / "BENCHMARKS.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", only, "--out", str(out)],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out.read_text()


@pytest.mark.skipif(
    not WRK.exists(), reason="wrk is not installed (/usr/bin/wrk: apt-get install wrk)"
)
@pytest.mark.timeout(330)
def test_http_smoke_writes_a_report(tmp_path: Path) -> None:
    report = smoke("http", tmp_path)
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


@pytest.mark.timeout(330)
def test_websocket_smoke_writes_a_report(tmp_path: Path) -> None:
    """`python -m bench --smoke --only ws`: every server and the load client run, a storm of
    50 converges on ours, and the report has the WebSocket targets."""
    report = smoke("ws", tmp_path)
    for target in WS_TARGETS:
        assert target in report, target
    assert "| ours /counter |" in report and "did not converge" not in report
