"""Helpers shared by test modules: real processes awaited on their output (never a sleep),
live servers, test settings and database names."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from src.auth import mint
from src.config import PROJECT_ROOT, Settings, load_settings

# Every test app and live server verifies writes with this secret; AUTH carries a token.
TEST_JWT_SECRET = "test-secret-" + "x" * 40
TOKEN = mint(TEST_JWT_SECRET, audience="catalog", subject="tests", ttl_s=24 * 3600)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The hosts test apps serve: the defaults, and starlette's TestClient's "testserver".
TEST_HOSTS = "localhost,127.0.0.1,::1,testserver"


class Process:
    """A child process whose output lines can be awaited with a timeout."""

    def __init__(self, args: list[str], env: Mapping[str, str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            args,
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:  # the pump owns the pipe and closes it at EOF
            for line in self.proc.stdout:
                self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _next_line(self, deadline: float, waiting_for: str) -> str | None:
        """The next output line (kept in `lines`), or None at the end of the output."""
        try:
            line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"{waiting_for}:\n" + "\n".join(self.lines)) from None
        if line is None:
            self._queue.put(None)  # the end stays the end for later calls
        else:
            self.lines.append(line)
        return line

    def wait_for(self, text: str, timeout: float = 60) -> str:
        """Block until a line containing `text` appears (within `timeout` seconds in all)."""
        deadline = time.monotonic() + timeout
        while (line := self._next_line(deadline, f"no {text!r} within {timeout}s")) is not None:
            if text in line:
                return line
        raise AssertionError(f"exited before {text!r}:\n" + "\n".join(self.lines))

    def rest(self, timeout: float = 60) -> list[str]:
        """Block until the output ends (the process closed it: it exited); every line."""
        deadline = time.monotonic() + timeout
        while self._next_line(deadline, f"output still open after {timeout}s") is not None:
            pass
        return self.lines

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        """Signal the process by its PID and wait for it to exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)
            raise


@contextmanager
def running(args: list[str], env: Mapping[str, str]) -> Iterator[Process]:
    process = Process([sys.executable, *args], env)
    try:
        yield process
    finally:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(timeout=10)


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


def make_settings(**overrides: object) -> Settings:
    """Settings for tests: never the developer's environment or .env file."""
    given = {"JWT_SECRET": TEST_JWT_SECRET, "ALLOWED_HOSTS": TEST_HOSTS, **overrides}
    return load_settings(environ={}, env_file=None, **given)


class LiveServer:
    """A real `uvicorn src.main:app` (as served: `src.server.HttpProtocol`) on 127.0.0.1,
    port 0, in a child process."""

    def __init__(self, process: Process, port: int) -> None:
        self.process = process
        self.port = port
        self.http = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}"


def start_live_server(
    database_url: str, extra_args: list[str] | None = None, port: int = 0, **env: str
) -> tuple[Process, int]:
    """`uvicorn src.main:app --http src.server:HttpProtocol` as users run it; returns once
    the port is bound."""
    process = launch_live_server(database_url, extra_args, port, **env)
    return process, bound_port(process)


def launch_live_server(
    database_url: str, extra_args: list[str] | None = None, port: int = 0, **env: str
) -> Process:
    """Start `uvicorn src.main:app`, without waiting (several can start at once)."""
    args = ["-m", "uvicorn", "src.main:app", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--http", "src.server:HttpProtocol"]  # the request-head timer, the cap
    return Process(
        [sys.executable, *args, *(extra_args or [])],
        {
            "DATABASE_URL": database_url,
            "COUNTER_WINDOW_MS": "50",
            "JWT_SECRET": TEST_JWT_SECRET,
            **env,
        },
    )


@contextmanager
def live_servers(database_url: str, count: int, **env: str) -> Iterator[list[LiveServer]]:
    """`count` servers on one database, launched at once (each as `launch_live_server`);
    stopped by pid afterwards."""
    processes = [launch_live_server(database_url, None, 0, **env) for _ in range(count)]
    try:
        yield [LiveServer(p, bound_port(p)) for p in processes]
    finally:
        for process in processes:
            process.stop(signal.SIGTERM)


def bound_port(process: Process) -> int:
    """The port a launched server listens on, once it is bound."""
    try:
        line = process.wait_for("Uvicorn running on")  # printed once the socket is bound
    except AssertionError:
        process.stop(signal.SIGKILL)  # it failed to start: never leave it behind
        raise
    return int(line.rsplit(":", 1)[1].split()[0])
