"""When a launch's phases happened: one JSON line per event in <launch dir>/timeline.jsonl, from every process
of the launch (the sweep, the pool, each worker), so that a sweep's wall time outside its runs can be broken down
(bench/sweep_breakdown.py): start-up before the first run, gaps between runs, the end after the last.

    {"t": <unix seconds>, "event": "planned", "pid": 1234, ...fields}

Appends are single small writes (O_APPEND), so lines from several processes do not interleave. Marks before the
launch directory is known (planning) are held and written when it is (Timeline.attach).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

FILE = "timeline.jsonl"


class Timeline:
    def __init__(self, launch_dir: str | os.PathLike | None = None):
        self.path: Path | None = None
        self.held: list[dict] = []
        if launch_dir is not None:
            self.attach(launch_dir)

    def mark(self, event: str, **fields) -> None:
        row = {"t": round(time.time(), 3), "event": event, "pid": os.getpid(), **fields}
        if self.path is None:
            self.held.append(row)
        else:
            self._write(row)

    def attach(self, launch_dir: str | os.PathLike) -> None:
        """Write marks to <launch_dir>/timeline.jsonl from now on, the held ones first."""
        self.path = Path(launch_dir) / FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for row in self.held:
            self._write(row)
        self.held = []

    def _write(self, row: dict) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (json.dumps(row) + "\n").encode())
            finally:
                os.close(fd)
        except OSError:   # a full or read-only disk: timing is not worth failing a run for
            pass


def read(launch_dir: str | os.PathLike) -> list[dict]:
    """The launch's events in time order ([] when it wrote none)."""
    path = Path(launch_dir) / FILE
    if not path.exists():
        return []
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return sorted(rows, key=lambda r: r["t"])


def process_start() -> float | None:
    """This process' start as unix seconds (Linux: /proc), so that a timeline also covers the interpreter's start
    and the imports before the first mark; None elsewhere."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])   # field 22: starttime
        boot = next(int(x.split()[1]) for x in Path("/proc/stat").read_text().splitlines() if x.startswith("btime"))
        return round(boot + ticks / os.sysconf("SC_CLK_TCK"), 3)
    except (OSError, ValueError, IndexError, StopIteration):
        return None
