"""One job = one run: lock it, start `python -m harness <run_dir>`, record how it ended. (Or one trunk of
cooldown branches, runs/<sweep>/.trunks/<id>/: each of its branches in fork order, as one run each, started
as `python -m harness.branches <trunk_dir> <run_dir>`; the job holds the trunk's lock throughout. One job
for the whole trunk keeps the order trunk -> fork -> cooldown inside one process tree, with no waiting on
other jobs: on Slurm a requeued job resumes the trunk or the branch it was in.)

The run trains in a child process so that this wrapper stays responsive to signals while it
trains. Preemption (Slurm or submitit) works like this:

    Slurm/submitit signal (USR2 by default, or USR1/TERM) ─► the run checkpoints at the next step
    boundary and exits 75 (harness.signals.REQUEUE_EXIT_CODE) ─► for submitit's signal, this
    wrapper then hands over to submitit's own handler, which pickles the job (the launcher's
    `checkpoint()`) and requeues it; for SIGTERM (`scontrol requeue`, preemption) Slurm requeues
    the job itself and the wrapper leaves without a result. The requeued job finds the
    checkpoint and resumes.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness.branches import read_group, trunk_dir
from harness.rundir import BUSY_EXIT_CODE
from harness.signals import REQUEUE_EXIT_CODE
from sweeps.lock import RunLock, RunSlots
from sweeps.status import clear_failure, record_failure, run_status

FORWARDED = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


def child_env(gpu: str | int | None, inductor_cache: str | None, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    if gpu is not None:  # pinned: the run sees exactly its GPU ('0+1': its GPUs, a run over several)
        env["CUDA_VISIBLE_DEVICES"] = str(gpu).replace("+", ",")
    if inductor_cache:  # one cache for every run of the sweep: compiles after the first are warm
        Path(inductor_cache).mkdir(parents=True, exist_ok=True)
        env["TORCHINDUCTOR_CACHE_DIR"] = str(Path(inductor_cache).resolve())
    if threads > 0:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


ERROR_LINE = re.compile(r"^(error: |preempted: |[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b)")


def failure_reason(path: Path, limit: int = 500) -> str:
    """What the run's log says went wrong: its last `error:` message with every line of it (the harness
    lists each invalid key on its own line), else the last exception line of a traceback, else the last line."""
    if not path.exists():
        return ""
    with open(path, "rb") as f:   # the tail only: a long run's log can be large
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 65536))
        lines = [x.strip() for x in f.read().decode(errors="replace").splitlines() if x.strip()]
    starts = [i for i, x in enumerate(lines) if ERROR_LINE.match(x)]
    if not starts:
        return lines[-1][:limit] if lines else ""
    i = starts[-1]
    block = [lines[i]] + [x for x in lines[i + 1:] if x.startswith("- ")] if lines[i].startswith("error: ") else [lines[i]]
    return " ".join(block)[:limit]


def run_job(run_dir: Path, sweep: str, log_path: Path, retries: int, inductor_cache: str | None = None,
            threads: int = 0, slots: int | None = None, slot_gpus: list[str] | None = None,
            procs: int | None = None, execute: Execute | None = None) -> dict:
    """Run one prepared run directory; returns {"run_id", "status", "reason"} (never raises for a failed run).

    slots: wait for one of the sweep's `slots` slots first (local launches); the run then trains on
    slot_gpus[slot] (None: CPU, or the devices this process sees). procs > 1: a run over that many GPUs
    (processes on CPU), started as `torchrun --standalone --nproc_per_node procs -m harness <run_dir>`.
    In a Slurm job of several tasks (one per GPU) every task runs this: each starts its rank of the run
    (harness.distributed takes the rendezvous from SLURM_*); task 0 holds the run's lock and records how it ended.
    execute: how the training command runs (default `spawn`: a child process; sweeps.worker runs it in-process);
    a run over several processes is always spawned (torchrun)."""
    run_dir = Path(run_dir)
    task, tasks = slurm_task()
    if tasks > 1:
        return _run_task(run_dir, sweep, log_path, retries, inductor_cache, threads, task)
    trunk = trunk_dir(run_dir.parent, run_dir.name)
    job, target = (_run_trunk, trunk) if not run_dir.is_dir() and trunk.is_dir() else (_run_job, run_dir)
    command = torchrun(run_dir, sweep, procs) if procs and procs > 1 and job is _run_job else None
    execute = spawn if command is not None else (execute or spawn)
    if not slots:
        return job(target, sweep, log_path, retries, None, inductor_cache, threads, execute, command)
    with RunSlots(run_dir.parent / f".slots{procs}" if procs and procs > 1 else run_dir.parent / ".slots",
                  int(slots)) as slot:
        gpu = slot_gpus[slot] if slot_gpus else None
        return job(target, sweep, log_path, retries, gpu, inductor_cache, threads, execute, command)


def torchrun(run_dir: Path, sweep: str, procs: int) -> list[str]:
    """The arguments to Python that train run_dir over `procs` local processes (a free port each: --standalone)."""
    return ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
            "-m", "harness", str(run_dir), "--sweep", sweep]


def slurm_task() -> tuple[int, int]:
    """(this task's rank, the tasks of its srun step) under Slurm; (0, 1) elsewhere."""
    return int(os.environ.get("SLURM_PROCID", "0")), int(os.environ.get("SLURM_STEP_NUM_TASKS", "1") or 1)


def _run_task(run_dir: Path, sweep: str, log_path: Path, retries: int, inductor_cache: str | None,
              threads: int, task: int) -> dict:
    """One Slurm task's rank of a run over several GPUs. Task 0 is the run's job as usual (lock, status, failure
    record); the others train their rank unless the run is already done, logging to a log of their own."""
    from harness.distributed import rendezvous_env
    os.environ.update(rendezvous_env())   # RANK, WORLD_SIZE, MASTER_ADDR, ...: the child inherits them
    if task == 0:
        return _run_job(run_dir, sweep, log_path, retries, None, inductor_cache, threads, spawn)
    st = run_status(run_dir, run_dir.name, retries, check_lock=False)
    if st.state in ("done", "failed"):
        return {"run_id": run_dir.name, "status": st.state, "reason": st.reason}
    log_path = log_path.with_name(f"{log_path.stem}.task{task}{log_path.suffix}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "harness", str(run_dir), "--sweep", sweep], stdout=log,
                                stderr=subprocess.STDOUT, env=child_env(None, inductor_cache, threads),
                                preexec_fn=die_with_parent)
        received, previous = forward_signals(proc)
        try:
            rc = proc.wait()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
    return {"run_id": run_dir.name, "status": "done" if rc == 0 else f"rank {task} exit {rc}", "reason": ""}


def _run_trunk(trunk: Path, sweep: str, log_path: Path, retries: int, gpu: str | None,
               inductor_cache: str | None, threads: int, execute: Execute, command: list[str] | None = None) -> dict:
    """Each branch of the trunk in fork order (one run each: its own lock, status and failure record)."""
    lock = RunLock(trunk)
    if not lock.acquire():
        return {"run_id": trunk.name, "status": "locked", "reason": "another launch is running this trunk"}
    with lock:
        ran = []
        for run_id in read_group(trunk):
            run_dir = trunk.parent.parent / run_id
            command = ["-m", "harness.branches", str(trunk), str(run_dir), "--sweep", sweep]
            ran.append(_run_job(run_dir, sweep, log_path, retries, gpu, inductor_cache, threads, execute, command))
            if ran[-1]["status"] == "preempted":
                break
    bad = [r for r in ran if r["status"] != "done"]
    return {"run_id": trunk.name, "status": bad[0]["status"] if bad else "done",
            "reason": "; ".join(f"{r['run_id']}: {r['status']} {r['reason']}" for r in bad), "branches": ran}


def _run_job(run_dir: Path, sweep: str, log_path: Path, retries: int, gpu: str | None,
             inductor_cache: str | None, threads: int, execute: Execute, command: list[str] | None = None) -> dict:
    """command: the arguments to Python (default: -m harness <run_dir>)."""
    run_id = run_dir.name
    lock = RunLock(run_dir)
    if not lock.acquire():
        return {"run_id": run_id, "status": "locked", "reason": "another launch is running it"}
    handed_over = False
    try:
        # re-check under the lock: a concurrent launch may have finished it meanwhile
        st = run_status(run_dir, run_id, retries, check_lock=False)
        if st.state in ("done", "failed"):
            return {"run_id": run_id, "status": st.state, "reason": st.reason}
        log_path.parent.mkdir(parents=True, exist_ok=True)
        command = command or ["-m", "harness", str(run_dir), "--sweep", sweep]
        rc, received, previous = execute(command, run_dir, log_path, gpu, inductor_cache, threads)
        later = execute.take_finish() if hasattr(execute, "take_finish") else None
        if later is not None:   # an in-process run whose result.json is still being written (harness.finish)
            handed_over = True
            return {"run_id": run_id, "status": "finishing", "reason": "",
                    "conclude": lambda: _conclude(later, lock, run_dir, log_path)}
        return _ended(run_dir, rc, received, previous, lock, log_path)
    finally:
        if not handed_over:
            lock.release()


def _conclude(later, lock: RunLock, run_dir: Path, log_path: Path) -> dict:
    """The end of a run that returned before its result.json was written (sweeps.worker runs it beside the next
    run): wait for the write, then the run's status as for any run; its lock is released last."""
    try:
        rc = 0
        try:
            later.wait()
        except Exception as e:   # a full or read-only disk: no result.json, the run is recorded failed
            rc = 1
            with open(log_path, "a") as log:
                log.write(f"{type(e).__name__}: the final checkpoint or result.json was not written: {e}\n")
        return _ended(run_dir, rc, [], {}, lock, log_path)
    finally:
        lock.release()


def _ended(run_dir: Path, rc: int, received: list[int], previous: dict, lock: RunLock, log_path: Path) -> dict:
    """How the run's training command ended, as the run's status (done, preempted, locked or failed)."""
    run_id = run_dir.name
    if rc == 0 and (run_dir / "result.json").exists():
        clear_failure(run_dir)
        return {"run_id": run_id, "status": "done", "reason": ""}
    if rc == REQUEUE_EXIT_CODE or received:
        signum = received[-1] if received else None
        lock.release()
        prev = previous.get(signum)
        if signum == signal.SIGTERM:
            os._exit(REQUEUE_EXIT_CODE)  # Slurm requeues (or cancels) the job itself: no result to report
        if callable(prev):
            prev(signum, None)  # submitit: checkpoint the job and requeue it (exits)
        return {"run_id": run_id, "status": "preempted", "reason": "checkpointed; relaunch resumes it"}
    if rc == BUSY_EXIT_CODE:  # another process (a bare `python -m harness`) trains this run dir: not a failure
        return {"run_id": run_id, "status": "locked", "reason": failure_reason(log_path)}
    rec = record_exit(run_dir, rc, log_path)
    return {"run_id": run_id, "status": "failed", "reason": rec["reason"], "attempts": rec["attempts"]}


def record_exit(run_dir: Path, rc: int, log_path: Path) -> dict:
    """failed.json for a run whose training ended with exit code rc (negative: killed by that signal)."""
    reason = f"exit {rc}" + (f" (killed by {signal.Signals(-rc).name})" if rc < 0 else "")
    return record_failure(run_dir, rc, f"{failure_reason(log_path)} [{reason}]".strip(), str(log_path))


# execute(command, run_dir, log_path, gpu, inductor_cache, threads) -> (exit code, signals received while it
# ran, the signal handlers that were in place before): runs `python <command>` and appends its output to log_path
Execute = Callable[[list[str], Path, Path, "str | None", "str | None", int], tuple[int, list[int], dict]]


def spawn(command: list[str], run_dir: Path, log_path: Path, gpu: str | None, inductor_cache: str | None,
          threads: int) -> tuple[int, list[int], dict]:
    """The training command in a child process (pinned to `gpu`), preemption signals forwarded to it."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, *command], stdout=log, stderr=subprocess.STDOUT,
                                env=child_env(gpu, inductor_cache, threads), preexec_fn=die_with_parent)
        # torchrun stops its workers on SIGTERM (each checkpoints, harness.signals) but dies of USR1/USR2
        received, previous = forward_signals(proc, as_term=command[:2] == ["-m", "torch.distributed.run"])
        try:
            rc = proc.wait()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
    return rc, received, previous


def die_with_parent() -> None:
    """In the child: SIGKILL it when this wrapper dies (Linux). A run whose wrapper was killed would
    otherwise train on unsupervised, holding its run directory, while the next launch retries it."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def forward_signals(proc: subprocess.Popen | Callable[[], list[subprocess.Popen]],
                    as_term: bool = False) -> tuple[list[int], dict]:
    """Pass preemption signals on to the run (which may also get them straight from Slurm: the
    harness only sets a flag, so twice is harmless); remember them for after it exits. proc: the child, or a
    function giving the children alive at the time of the signal (sweeps.pool's workers come and go).
    as_term: pass each on as SIGTERM (to torchrun, which hands SIGTERM to its workers)."""
    received: list[int] = []
    children = proc if callable(proc) else (lambda: [proc])

    def handler(signum, frame):
        received.append(signum)
        for child in children():
            if child.poll() is None:
                try:
                    child.send_signal(signal.SIGTERM if as_term else signum)
                except ProcessLookupError:
                    pass
    previous = {}
    for s in FORWARDED:
        try:
            previous[s] = signal.signal(s, handler)
        except ValueError:  # not the main thread
            pass
    return received, previous
