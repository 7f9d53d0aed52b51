"""A long-lived worker: one process per slot that trains a launch's runs back to back (sweep.worker=true).

    python -m sweeps.worker <launch dir>/queue.json <k>

It takes one of the sweep's slots (sweeps.lock.RunSlots, as a per-run job does; the slot names its GPU,
pinned before CUDA starts), then takes jobs from the launch's queue (sweeps.jobqueue) until it is empty,
and runs each one through sweeps.job.run_job exactly as a per-run job would (the run's lock, the re-check
of done / given up, failed.json, trunks and their branches in fork order), except that the training
command (`python -m harness <run_dir> ...`, `python -m harness.branches ...`) runs in this process:
`in_process` calls the same `main(argv)` with the same arguments and maps how it ended to the same exit
code, with its output appended to the run's own log. So the second and later runs pay no process start,
imports, CUDA initialisation or data-module set-up, and a compiled shape is not compiled again: dynamo
keeps each shape's graph in memory (the run's own torch.compile of a fresh module of the same shape finds
it), with automatic dynamic shapes off so that a new shape compiles the static graph a run alone compiles.

A plain run returns before its final checkpoint and result.json are on disk (harness.finish): the worker starts
the next run while a thread (`Tail`) waits for that write and then records the run's status as sweeps.job would
(done, or failed if the write failed), holding the run's locks until then; the worker ends only after the last
one. (A cooldown branch ends in turn, as before: `python -m harness.branches` advances the trunk between branches.)
A worker killed during that write leaves the run without result.json and unlocked: the next launch resumes it,
from its final checkpoint when that was complete.

A run's exception fails that run (failed.json, exit 1 and the traceback's last line as the reason, as
for a child process) and the worker goes on. A crash of the process itself (a segfault, SIGKILL) is
recorded by the launcher (sweeps.pool) from <launch dir>/worker<k>.current.json, which names the run in
progress, and it starts a fresh worker for the rest of the queue. SIGTERM / SIGUSR1 / SIGUSR2: the run in
progress checkpoints and stops (the trainer's handler chains to ours), and the worker takes no more jobs
and exits 75 (preempted; the next launch resumes).

    python -m sweeps.worker <launch dir>/queue.json <k> --standby

is a worker started ahead (sweeps.pool.start_standby): it imports torch and the trainer first, then waits for the
queue file, so that its start overlaps the sweep's machine check and run-directory preparation.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path

from harness import finish
from harness.finish import Finish
from harness.rundir import atomic_write_bytes
from harness.signals import REQUEUE_EXIT_CODE, SIGNALS
from sweeps.job import run_job
from sweeps.jobqueue import JobQueue
from sweeps.lock import RunSlots
from sweeps.timeline import Timeline, process_start

# the module `python -m <name>` runs for each training command the job wrapper issues
ENTRY = {"harness": "harness.__main__", "harness.branches": "harness.branches"}
RESTART_EXIT_CODE = 70   # a run crashed in this process: the pool replaces it with a fresh one for the rest
CLEAN_EXITS = (0, 2, 16, REQUEUE_EXIT_CODE)   # done, refused before training, busy, preempted (harness/cli.py)
RECOMPILE_LIMIT = 1024   # graphs kept per compiled function: one per model shape the worker has trained


def current_file(launch_dir: Path, k: int) -> Path:
    return Path(launch_dir) / f"worker{k}.current.json"


class Stop:
    """Set by a preemption signal (ours while no run trains; the trainer's own handler chains to it);
    `with Stop() as stop:` installs the handlers and puts the previous ones back."""

    def __init__(self):
        self.signum: int | None = None
        self.previous: dict = {}

    def __enter__(self) -> Stop:
        for s in SIGNALS:
            self.previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self.previous.items():
            signal.signal(s, h)

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def __bool__(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def output_to(log_path: Path):
    """stdout and stderr appended to log_path, as a child process' would be: Python's streams (prints, warnings,
    tracebacks) and file descriptors 1 and 2 (what C code writes)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a", buffering=1, errors="backslashreplace") as log:
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for x in saved:
                os.close(x)


class InProcess:
    """sweeps.job's `execute` for a worker: the training command runs in this process."""

    def __init__(self, launch_dir: Path, k: int, stop: Stop, finish_later: bool = False):
        """finish_later: a plain run returns before its final checkpoint and result.json are written, and the caller
        waits for them (take_finish; serve's Tail) while it starts the next run."""
        self.marker, self.stop = current_file(launch_dir, k), stop
        self.crashed = False   # a run raised in this process: what it left behind (a CUDA error) may not be clean
        self.finish_later = finish_later
        self.finish: Finish | None = None   # the last run's result.json, still being written (harness.finish)

    def __call__(self, command: list[str], run_dir: Path, log_path: Path, gpu, inductor_cache, threads):
        if self.stop:   # preempted between jobs: leave the run for the next launch
            return REQUEUE_EXIT_CODE, [], {}
        assert command[0] == "-m" and command[1] in ENTRY, command
        main = importlib.import_module(ENTRY[command[1]]).main
        atomic_write_bytes(self.marker, json.dumps({"run_dir": str(run_dir), "log": str(log_path),
                                                    "pid": os.getpid()}).encode())
        t = time.perf_counter()
        # a fresh registry per run: a warning a child process would print is printed in every run's log; a plain
        # run (not a cooldown branch, whose command also advances its trunk) returns before its final checkpoint and
        # result.json are written, and the worker's next run starts beside that write (sweeps.job._conclude)
        later = finish.deferred() if self.finish_later and command[1] == "harness" else contextlib.nullcontext([])
        with output_to(log_path), warnings.catch_warnings(), later as pending:
            rc = exit_code(main, command[2:])
        if rc == 0 and len(pending) == 1:
            self.finish = pending[0]
        else:   # an exit after its end was queued (none expected): wait here, as a run alone would have
            for f in pending:
                with contextlib.suppress(Exception):
                    f.wait()
        self.marker.unlink(missing_ok=True)
        self.crashed |= rc not in CLEAN_EXITS
        gc.collect()   # the run's model and optimizer: freed before the next one is built
        release_device_memory()
        freeze_survivors()
        print(json.dumps({"run_dir": str(run_dir), "rc": rc, "seconds": round(time.perf_counter() - t, 3)}),
              flush=True)
        return rc, [], {}

    def take_finish(self) -> Finish | None:
        """The run just trained if its result.json is still being written (sweeps.job hands it to the worker)."""
        f, self.finish = self.finish, None
        return f


class Tail:
    """The end of the worker's previous run (sweeps.job._conclude: wait for its result.json, then its status and
    lock), on a thread while the next run trains. It prints nothing itself: a run's output goes to that run's log,
    and the worker's own lines are printed by the worker (`join`)."""

    def __init__(self):
        self.thread: threading.Thread | None = None
        self.res: dict | None = None

    def start(self, job: str, conclude, timeline: Timeline, k: int) -> None:
        self.join_and_report()

        def work():
            try:
                self.res = conclude()
            except Exception as e:   # around the run's end (its log, its lock), not in it
                self.res = {"run_id": job, "status": "error", "reason": f"{type(e).__name__}: {e}"}
            timeline.mark("job_end", worker=k, job=job, status=self.res["status"])
        self.res = None
        self.thread = threading.Thread(target=work, name=f"finish-{job}")
        self.thread.start()

    def join_and_report(self) -> None:
        """Wait for the previous run's end and print its line, as for a run that ended in turn."""
        if self.thread is None:
            return
        self.thread.join()
        print(json.dumps(self.res), flush=True)
        self.thread = None


def exit_code(main, argv: list[str]) -> int:
    """main(argv)'s exit code as `python -m` would give it: an uncaught exception prints its traceback, exit 1."""
    try:
        return main(argv)
    except SystemExit as e:   # argparse
        if isinstance(e.code, int) or e.code is None:
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        return 1


def freeze_survivors() -> None:
    """Move every object alive now (modules, torch's and dynamo's state, the compiled graphs kept for later runs)
    out of the cyclic collector's reach (gc.freeze), so that the next run's gc.collect() and Python's own full
    collections during its training walk only what that run created. With torch, dynamo and the trainer imported, a
    full collection walked ~376k objects: 0.22-0.24 s a run on this 2-core VM, 0.0 s after the freeze (bench/README.md,
    helper eff12 of session 11); garbage is still freed by reference counts, and a cycle made only of objects created
    after the freeze is still collected. What it gives up: a cycle through a frozen object is never collected (a
    worker lives for one launch)."""
    gc.freeze()


def release_device_memory() -> None:
    """Return the finished run's cached GPU memory: another worker may share this GPU (sweep.jobs_per_gpu)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def configure_compiler() -> None:
    """Keep every shape's compiled graph (a sweep trains many) and compile each new shape statically, as a run
    alone does: with automatic dynamic shapes, the second shape of LossStep.forward would be recompiled with
    symbolic sizes (other kernels, other numerics)."""
    import torch._dynamo.config as dynamo
    dynamo.recompile_limit = max(dynamo.recompile_limit, RECOMPILE_LIMIT)
    dynamo.accumulated_recompile_limit = max(dynamo.accumulated_recompile_limit, 4 * RECOMPILE_LIMIT)
    dynamo.automatic_dynamic_shapes = False


def serve(queue_path: Path, k: int, started_ahead: bool = False) -> int:
    """Train jobs from the queue until it is empty (0), a preemption signal stops it (75) or a run crashed in it
    (70: the pool starts a fresh worker for the rest)."""
    queue = JobQueue(queue_path)
    m = queue.meta
    launch_dir, sweep_dir = queue.path.parent, Path(m["sweep_dir"])
    with Stop() as stop, RunSlots(sweep_dir / ".slots", int(m["slots"])) as slot:
        if m.get("slot_gpus"):   # before anything starts CUDA: this process sees exactly its slot's GPU
            os.environ["CUDA_VISIBLE_DEVICES"] = str(m["slot_gpus"][slot])
            if started_ahead and not sees_one_gpu():
                restart(queue_path, k)
        print(json.dumps({"worker": k, "slot": slot, "pid": os.getpid(),
                          "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")}), flush=True)
        configure_compiler()
        freeze_survivors()   # the imports' objects: never walked by a run's collections
        timeline = Timeline(launch_dir)
        timeline.mark("worker_ready", worker=k, process_start=process_start())
        execute, tail = InProcess(launch_dir, k, stop, finish_later=True), Tail()
        try:
            while not stop and (job := queue.take()) is not None:
                log_path = launch_dir / f"{job}.log"
                timeline.mark("job_start", worker=k, job=job)
                try:
                    res = run_job(sweep_dir / job, sweep=m["sweep"], log_path=log_path, retries=int(m["retries"]),
                                  execute=execute)
                except Exception as e:   # around the run (its log, its lock: a full or read-only disk), not in it
                    traceback.print_exc()
                    res = {"run_id": job, "status": "error", "reason": f"{type(e).__name__}: {e}"}
                if res["status"] == "finishing":   # trained; its result.json is written while the next run starts
                    timeline.mark("job_trained", worker=k, job=job)
                    tail.start(job, res["conclude"], timeline, k)
                    continue
                tail.join_and_report()
                timeline.mark("job_end", worker=k, job=job, status=res["status"])
                print(json.dumps({key: v for key, v in res.items() if key != "branches"}), flush=True)
                if res["status"] == "preempted":
                    break
                if execute.crashed:   # recorded as failed like any run; the next ones start in a fresh process
                    return RESTART_EXIT_CODE
        finally:   # every run this worker trained has its result.json (or its failure) before the worker ends
            tail.join_and_report()
        timeline.mark("worker_done", worker=k)
    return REQUEUE_EXIT_CODE if stop else 0


def sees_one_gpu() -> bool:
    """Whether this process sees at most the one GPU CUDA_VISIBLE_DEVICES names: the driver reads that variable once,
    when CUDA starts, so a worker started ahead whose imports had started CUDA would see every GPU of the host."""
    import torch
    return torch.cuda.device_count() <= 1


def restart(queue_path: Path, k: int) -> None:
    """This worker afresh, as one started at launch (its slot's lock is released: Python's files close on exec)."""
    print(json.dumps({"worker": k, "restart": "CUDA had started before the slot's GPU was pinned"}), flush=True)
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "sweeps.worker", str(queue_path), str(k)])


# what a worker started ahead imports while it waits for its queue: torch, dynamo and the trainer (the first run
# would import them), none of which starts CUDA, so the slot's GPU is still pinned before CUDA starts
WARM_IMPORTS = ("torch._dynamo", "harness.train", *ENTRY.values())
# ... and where the runs compile, what their first compile would import itself (1-3 s; bench/README.md "Imports on
# the H200"), which starts no CUDA either
COMPILE_IMPORTS = ("torch._inductor.compile_fx",)


def stand_by(queue_path: Path, k: int, compiles: bool = False, poll_s: float = 0.02) -> None:
    """Import what the runs need, then wait for the queue file (sweeps.pool writes it once the sweep is checked and
    its run directories prepared; a refused sweep kills this process instead)."""
    for name in WARM_IMPORTS + (COMPILE_IMPORTS if compiles else ()):
        importlib.import_module(name)
    Timeline(queue_path.parent).mark("worker_imported", worker=k, process_start=process_start(),
                                     compiler=all(name in sys.modules for name in COMPILE_IMPORTS))
    while not queue_path.exists():
        time.sleep(poll_s)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sweeps.worker", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("queue", help="the launch's queue.json (sweeps.jobqueue)")
    p.add_argument("k", type=int, help="this worker's index in the launch")
    p.add_argument("--standby", action="store_true",
                   help="started before the queue exists: import the trainer, then wait for the queue file")
    p.add_argument("--compiles", action="store_true",
                   help="with --standby: the runs compile, so import what their first compile needs too")
    a = p.parse_args(argv)
    if a.standby:
        stand_by(Path(a.queue), a.k, compiles=a.compiles)
    return serve(Path(a.queue), a.k, started_ahead=a.standby)


if __name__ == "__main__":
    code = main()
    # every run's files are closed and synced by now (each run waits for its checkpoints and result); tearing the
    # interpreter down (torch's modules, inductor's compile workers, CUDA) took seconds that the pool waited on
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
