"""flock-based coordination of the jobs of a sweep on one host.

RunLock: the process running a run holds an exclusive flock on runs/<sweep>/<run_id>/.lock. Two
launches of the same sweep at once never run the same run twice: the second finds the lock held
and leaves the run alone.

RunSlots: a local launch starts more jobs than may train at once; each job first takes one of the
sweep's slots (runs/<sweep>/.slots/<k>.lock), waiting until one is free, so a run starts the moment
any other finishes (no batch waits for its slowest run). Slot k also names the GPU the run trains on.

The OS drops a lock when its holder dies, so a crash leaves none behind. (flock is per host; on a
shared file system across nodes it depends on the file system.)
"""
from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path


def try_exclusive(path: Path) -> int | None:
    """An exclusive flock on `path` (created if missing) without waiting: its fd, or None if held elsewhere."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


class RunLock:
    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = try_exclusive(self.path)
        if fd is None:
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            unlock(self._fd)
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


class RunSlots:
    """Take one of `count` slots in `directory`, waiting for a free one: `with RunSlots(d, 2) as k: ...`."""

    def __init__(self, directory: str | os.PathLike, count: int, poll_s: float = 0.2):
        if count < 1:
            raise ValueError(f"slots={count}: need at least 1")
        self.dir, self.count, self.poll_s = Path(directory), count, poll_s
        self._fd: int | None = None
        self.slot: int | None = None

    def acquire(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        while True:
            for k in range(self.count):
                if (fd := try_exclusive(self.dir / f"{k}.lock")) is not None:
                    self._fd, self.slot = fd, k
                    return k
            time.sleep(self.poll_s)

    def release(self) -> None:
        if self._fd is not None:
            unlock(self._fd)
            self._fd = self.slot = None

    def __enter__(self) -> int:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
