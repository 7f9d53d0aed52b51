"""The launcher's side of sweep.worker=true: one long-lived worker process per slot (sweeps.worker).

    write <launch dir>/queue.json (the jobs, longest first) ─► start P = slots workers ─► each takes a slot
    and trains jobs from the queue back to back ─► wait; a worker that died mid-run (segfault, SIGKILL,
    out of memory) gets its run recorded as failed, as a dead child process would be, and is replaced by a
    fresh one while jobs are left ─► preemption signals are passed on to every worker

Each worker's own output goes to <launch dir>/worker<k>.log, each run's to <launch dir>/<job id>.log.
"""
from __future__ import annotations

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
from sweeps.timeline import Timeline
from sweeps.worker import RESTART_EXIT_CODE, current_file

log = logging.getLogger("scalemix.sweep")
REPO = Path(__file__).resolve().parents[1]


def run_pool(jobs: list[str], launch_dir: Path, *, sweep_dir: Path, sweep: str, retries: int, slots: int,
             slot_gpus: list[str] | None, inductor_cache: str | None, threads: int, compile_ahead: bool = False,
             poll_s: float = 0.2) -> None:
    """Train `jobs` (run or trunk ids, in order) on min(slots, len(jobs)) workers; returns when all have ended.
    compile_ahead: beside them, compile the shapes of the jobs they take next (sweeps.ahead)."""
    launch_dir = Path(launch_dir)
    queue = JobQueue.write(launch_dir / "queue.json", jobs, sweep_dir=str(sweep_dir), sweep=sweep,
                           retries=retries, slots=slots, slot_gpus=slot_gpus)
    env = child_env(None, inductor_cache, threads)   # each worker pins its slot's GPU itself (sweeps.worker)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])   # this checkout's code

    def start(module: str, *args: str, log_name: str) -> subprocess.Popen:
        with open(launch_dir / log_name, "ab") as out:
            return subprocess.Popen([sys.executable, "-m", module, str(queue.path), *args], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, preexec_fn=die_with_parent)

    timeline = Timeline(launch_dir)

    def worker(k: int) -> subprocess.Popen:
        timeline.mark("worker_spawn", worker=k)
        return start("sweeps.worker", str(k), log_name=f"worker{k}.log")

    procs = {k: worker(k) for k in range(min(slots, len(jobs)))}
    ahead = start("sweeps.ahead", log_name="ahead.log") if compile_ahead and len(jobs) > slots else None
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
