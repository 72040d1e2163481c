"""Which process owns a data folder: an exclusive `flock` on a lock file, held while the
owner runs. The kernel releases it when the owner exits, however it dies (kill -9
included), so a folder is never refused forever; and a lock that can be taken proves that
no live owner is left. The owner's pid is written in the file, for the refusal message.
"""

import fcntl
import os
from pathlib import Path


class FolderInUse(RuntimeError):
    """Another live process owns the folder."""


class FolderLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, refusal: str) -> None:
        """Take the lock, or raise FolderInUse with `refusal`, where "{owner}" becomes the
        owning process's pid."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise FolderInUse(refusal.replace("{owner}", owner)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let go (the file stays: removing it would let two processes lock two files)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
