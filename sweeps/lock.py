"""One lock per run: the process running a run holds an exclusive flock on runs/<sweep>/<run_id>/.lock.

Two launches of the same sweep at once never run the same run twice: the second finds the lock
held and leaves the run alone. The OS drops the lock when its holder dies, so a crash leaves no
stale lock. (flock is per host; on a shared file system across nodes it depends on the file system.)
"""
from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path


class RunLock:
    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def holder(run_dir: str | os.PathLike) -> str | None:
    """'host pid' of the process holding the run's lock, or None when nobody holds it."""
    path = Path(run_dir) / ".lock"
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return path.read_text().strip() or "?"
    finally:
        os.close(fd)  # closing drops the shared lock if we got it
    return None
