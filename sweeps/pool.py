"""The launcher's side of sweep.worker=true: one long-lived worker process per slot (sweeps.worker).

    write <launch dir>/queue.json (the jobs, longest first) ─► start P = slots workers ─► each takes a slot
    and trains jobs from the queue back to back ─► wait; a worker that died mid-run (segfault, SIGKILL,
    out of memory) gets its run recorded as failed, as a dead child process would be, and is replaced by a
    fresh one while jobs are left ─► preemption signals are passed on to every worker

Each worker's own output goes to <launch dir>/worker<k>.log, each run's to <launch dir>/<job id>.log.

Workers can be started ahead (`start_standby`, by sweeps.launch right after planning): each imports torch and the
trainer while the sweep checks the machine (which imports torch too) and prepares its run directories, then waits
for queue.json. run_pool adopts them as workers 0..n-1; ones it does not need are stopped before the queue exists;
`Standby.cancel` stops them all (a refused sweep).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.signals import REQUEUE_EXIT_CODE
from sweeps.job import child_env, die_with_parent, forward_signals, record_exit
from sweeps.jobqueue import JobQueue
from sweeps.lock import RunLock
from sweeps.status import run_status
from sweeps.timeline import FILE as TIMELINE_FILE
from sweeps.timeline import Timeline
from sweeps.worker import RESTART_EXIT_CODE, current_file

log = logging.getLogger("scalemix.sweep")
REPO = Path(__file__).resolve().parents[1]


QUEUE = "queue.json"   # the launch's queue file in its launch dir (sweeps.jobqueue)


def worker_env(inductor_cache: str | None, threads: int) -> dict[str, str]:
    env = child_env(None, inductor_cache, threads)   # each worker pins its slot's GPU itself (sweeps.worker)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])   # this checkout's code
    return env


def start(launch_dir: Path, env: dict[str, str], module: str, *args: str, log_name: str) -> subprocess.Popen:
    """`python -m module <launch dir>/queue.json args...`, its output appended to <launch dir>/<log_name>."""
    with open(launch_dir / log_name, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", module, str(launch_dir / QUEUE), *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=die_with_parent)


def kill_all(procs) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


class Standby:
    """Workers started before their launch's queue exists (`python -m sweeps.worker ... --standby`)."""

    def __init__(self, procs: list[subprocess.Popen], created: list[Path]):
        self.procs, self.created = procs, created   # created: the files and folders starting them made

    def take(self, n: int) -> list[subprocess.Popen]:
        """The first n (or fewer) for run_pool; the rest are stopped now, before the queue is written."""
        taken, rest, self.procs = self.procs[:n], self.procs[n:], []
        kill_all(rest)
        return taken

    def stop(self) -> None:
        """Stop the ones not taken (the launch ended without using them)."""
        kill_all(self.procs)
        self.procs = []

    def cancel(self) -> None:
        """Stop them all (nothing is launched) and remove the folders starting them created, when empty of all else."""
        self.stop()
        for path in self.created:   # files first, then folders deepest first; a folder holding anything else stays
            with contextlib.suppress(OSError):
                if path.is_dir():
                    path.rmdir()
                else:
                    path.unlink()


def start_standby(launch_dir: Path, n: int, *, inductor_cache: str | None, threads: int,
                  compiles: bool = False) -> Standby:
    """n workers that import torch and the trainer now and start on the queue once run_pool writes it (compiles:
    the runs compile, so the workers also import the compiler ahead)."""
    launch_dir = Path(launch_dir).absolute()
    files = [launch_dir / f"worker{k}.log" for k in range(n)] + [launch_dir / TIMELINE_FILE]
    folders = {launch_dir, *launch_dir.parents}
    if inductor_cache:   # worker_env makes it
        folders |= {Path(inductor_cache).absolute(), *Path(inductor_cache).absolute().parents}
    deepest_first = sorted(folders, key=lambda d: len(d.parts), reverse=True)
    standby = Standby([], [x for x in (*files, *deepest_first) if not x.exists()])
    try:
        launch_dir.mkdir(parents=True, exist_ok=True)
        env, timeline = worker_env(inductor_cache, threads), Timeline(launch_dir)
        for k in range(n):
            timeline.mark("worker_spawn", worker=k, standby=True)
            standby.procs.append(start(launch_dir, env, "sweeps.worker", str(k), "--standby",
                                       *(["--compiles"] if compiles else []), log_name=f"worker{k}.log"))
    except BaseException:   # a full or read-only disk: none left running, nothing left behind
        standby.cancel()
        raise
    return standby


def run_pool(jobs: list[str], launch_dir: Path, *, sweep_dir: Path, sweep: str, retries: int, slots: int,
             slot_gpus: list[str] | None, inductor_cache: str | None, threads: int, compile_ahead: bool = False,
             poll_s: float = 0.2, standby: Standby | None = None) -> None:
    """Train `jobs` (run or trunk ids, in order) on min(slots, len(jobs)) workers; returns when all have ended.
    compile_ahead: beside them, compile the shapes of the jobs they take next (sweeps.ahead). standby: workers
    started ahead (start_standby), used first (with the same inductor_cache and threads)."""
    launch_dir = Path(launch_dir)
    n = min(slots, len(jobs))
    ready = standby.take(n) if standby is not None else []   # the spares stop before the queue exists
    queue = JobQueue.write(launch_dir / QUEUE, jobs, sweep_dir=str(sweep_dir), sweep=sweep,
                           retries=retries, slots=slots, slot_gpus=slot_gpus)
    env = worker_env(inductor_cache, threads)
    timeline = Timeline(launch_dir)

    def worker(k: int) -> subprocess.Popen:
        timeline.mark("worker_spawn", worker=k)
        return start(launch_dir, env, "sweeps.worker", str(k), log_name=f"worker{k}.log")

    procs = {k: ready[k] if k < len(ready) else worker(k) for k in range(n)}
    ahead = start(launch_dir, env, "sweeps.ahead", log_name="ahead.log") if compile_ahead and len(jobs) > slots else None
    # every worker alive at the signal, and the compile-ahead process: it stops too
    received, previous = forward_signals(lambda: [*procs.values(), *([ahead] if ahead is not None else [])])
    try:
        while procs:
            for k, proc in list(procs.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                del procs[k]
                timeline.mark("worker_exited", worker=k, rc=rc)
                marker = current_file(launch_dir, k)
                if rc == RESTART_EXIT_CODE:   # a run crashed in it (and was recorded): the rest on a fresh process
                    if not received and queue.left():
                        procs[k] = worker(k)
                    continue
                if rc in (0, REQUEUE_EXIT_CODE) or not marker.exists():
                    if rc not in (0, REQUEUE_EXIT_CODE):
                        log.error("worker %d exited %d between runs; see %s", k, rc, launch_dir / f"worker{k}.log")
                    continue
                try:
                    record_crash(marker, rc, retries)
                except OSError as e:   # a full or read-only disk: the run stays pending, the status says so
                    log.error("worker %d exited %d in run %s; cannot record it: %s", k, rc, marker, e)
                if not received and queue.left():
                    procs[k] = worker(k)   # the rest of the queue on a fresh process
            time.sleep(poll_s)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if ahead is not None and ahead.poll() is None:   # nothing left to compile for
            ahead.kill()
            ahead.wait()


def record_crash(marker: Path, rc: int, retries: int) -> None:
    """The run a dead worker was training failed with the worker's exit code (as a dead child would)."""
    current = json.loads(marker.read_text())
    marker.unlink(missing_ok=True)
    run_dir = Path(current["run_dir"])
    lock = RunLock(run_dir)
    if not lock.acquire():   # another launch has taken it over since
        return
    with lock:
        if run_status(run_dir, run_dir.name, retries, check_lock=False).state != "done":
            rec = record_exit(run_dir, rc, Path(current["log"]))
            log.error("run %s: failed: %s", run_dir.name, rec["reason"])
