"""What every benchmark needs: processes stopped by their pid, a PostgreSQL with the demo
catalog, free ports, and per-process CPU and memory read from /proc.

Everything listens on 127.0.0.1; every wait is bounded; nothing sleeps to wait for an
event it could wait on instead (a port that accepts, a line that appears).
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from src.config import PROJECT_ROOT
from src.db.embedded import EmbeddedPostgres, free_port
from src.db.setup import prepare_database

__all__ = ["PROJECT_ROOT", "free_port"]

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class Proc:
    """A child process with its output in a log file; stopped by its pid."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log: Path,
        cwd: Path = PROJECT_ROOT,
    ) -> None:
        self.log = log
        self._out = log.open("wb")
        self.popen = subprocess.Popen(
            list(args),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM by pid, then SIGKILL if it does not exit within `timeout`."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)
        self._out.close()
        return self.popen.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_port(port: int, proc: Proc | None = None, timeout: float = 60) -> None:
    """Until something accepts on 127.0.0.1:port (or the process dies, or time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"process exited before listening:\n{proc.output()[-3000:]}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)  # polling a port: there is no event to wait on across processes
    raise TimeoutError(f"nothing listens on {port} after {timeout}s")


def uvicorn_args(app: str, port: int, *extra: str) -> list[str]:
    """One worker, uvloop, httptools, no access log: the same flags for every server."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        *extra,
    ]


@contextmanager
def serve(
    app: str, *, log_dir: Path, env: Mapping[str, str] | None = None, extra: Sequence[str] = ()
) -> Iterator[tuple[Proc, int]]:
    """uvicorn serving `app` (an import string) on a free port; stopped by pid after."""
    port = free_port()
    name = app.replace(":", "_").replace(".", "_")
    with Proc(uvicorn_args(app, port, *extra), env=env, log=log_dir / f"{name}.log") as proc:
        wait_port(port, proc)
        yield proc, port


@contextmanager
def database(work: Path) -> Iterator[tuple[str, EmbeddedPostgres]]:
    """A throwaway embedded PostgreSQL with the demo catalog (or BENCH_DATABASE_URL's)."""
    if url := os.environ.get("BENCH_DATABASE_URL"):
        yield url, EmbeddedPostgres(work / "unused")
        return
    server = EmbeddedPostgres(work / "pg" / "data", fast=True)
    dsn = server.start()
    try:
        asyncio.run(prepare_database(dsn, seed=True))
        yield dsn, server
    finally:
        server.destroy()


@contextmanager
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="catalog-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU time of a process and all its descendants (e.g. PostgreSQL and its backends),
    those that have exited included: their time moves to their parent's reaped-children
    fields (cutime, cstime), counted here too. (Without them a backend that exited during a
    window took its time out of the total: PostgreSQL once showed -173 % CPU.)"""
    total = 0.0
    for pid in [root_pid, *descendants(root_pid)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile: its time is its parent's now
        total += sum(int(f) for f in fields[11:15]) / CLK_TCK  # utime stime cutime cstime
    return total


def descendants(root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [root_pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def rss_kib(pid: int) -> int:
    """Resident memory of one process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def raise_file_limit(wanted: int = 65536) -> int:
    """Raise this process's open-file limit (children inherit it); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine() -> dict[str, str]:
    """What the report prints about where it ran."""

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "-"

    packages = ["lihil", "uvicorn", "uvloop", "httptools", "websockets", "asyncpg", "starlette"]
    packages += ["fastapi", "picows"]
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        **{name: version(name) for name in packages},
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "-"


class Target:
    """One target of issue 8: a measured ratio (or value) against its limit."""

    def __init__(self, name: str, value: float, limit: float, *, higher_is_better: bool) -> None:
        self.name = name
        self.value = value
        self.limit = limit
        self.higher_is_better = higher_is_better

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    def row(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        verdict = "met" if self.met else "**not met**"
        return f"| {self.name} | {self.value:.2f} | {sign} {self.limit:g} | {verdict} |"


class Section:
    """A part of docs/BENCHMARKS.md: its markdown and the targets it checked."""

    def __init__(self, title: str, markdown: str, targets: list[Target]) -> None:
        self.title = title
        self.markdown = markdown
        self.targets = targets
