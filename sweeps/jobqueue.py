"""One launch's jobs, taken in order by any number of worker processes on this host, each job exactly once.

    <launch dir>/queue.json   {"jobs": [run or trunk ids, in launch order], ...the launch's settings}
    <launch dir>/queue.next   the index of the next job to hand out (read and advanced under an flock)

Taking a job from the queue is not the run's lock: the worker then locks the run (sweeps.lock.RunLock) and
re-checks its status exactly as a per-run job does, so a second launch of the same sweep (its own queue)
still never trains a run twice. The queue only guarantees that within a launch each job is tried once,
as the per-run launch gives each run one job.
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from harness.rundir import atomic_write_bytes


class JobQueue:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.counter = self.path.with_suffix(".next")
        self.meta = json.loads(self.path.read_text())
        self.jobs: list[str] = list(self.meta["jobs"])

    @classmethod
    def write(cls, path: str | os.PathLike, jobs: list[str], **meta) -> JobQueue:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # the counter first: a worker started ahead (sweeps.pool.start_standby) begins as soon as queue.json exists
        atomic_write_bytes(path.with_suffix(".next"), b"0")
        atomic_write_bytes(path, (json.dumps({**meta, "jobs": list(jobs)}, indent=1) + "\n").encode())
        return cls(path)

    def _advance(self, by: int) -> int:
        """The index before advancing it by `by` (capped at the end), under an exclusive flock."""
        fd = os.open(self.counter, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            i = int(os.read(fd, 32).decode() or 0)
            if by:
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.write(fd, str(min(len(self.jobs), i + by)).encode())
            return i
        finally:
            os.close(fd)   # drops the flock

    def take(self) -> str | None:
        """The next job, or None when every job has been handed out."""
        i = self._advance(1)
        return self.jobs[i] if i < len(self.jobs) else None

    def left(self) -> int:
        """Jobs not handed out yet."""
        return max(0, len(self.jobs) - self._advance(0))
