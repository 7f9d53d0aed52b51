"""Launch a planned sweep through any Hydra launcher, idempotently.

    plan ─► (status / dry run: print, stop) ─► write each run's spec.yaml + runtime.yaml
         ─► skip done, running (locked elsewhere) and given-up runs
         ─► launcher.launch(jobs) with one override set per run: run_id=<id> [slots=<P> slot_gpus=<ids>]
         ─► live summary while it runs; at the end the sweep dir and the next command

Runs over several GPUs (sweeps.placement: sweep.gpus_per_run, or a run too large for one GPU) are launched
first, as their own phase: locally each slot owns that many GPUs and the job starts torchrun; on Slurm
`configure` gives the jobs of that phase their nodes, tasks per node (one per GPU) and GPUs per node.

On a local launcher (submitit's local mode starts every job it is given at once) P = sweep.max_parallel
runs train at a time: each job first takes one of P slots (sweeps.lock.RunSlots, waiting for a free
one), and slot k trains on GPU slot_gpus[k]. So a run starts as soon as any other ends. Jobs are
handed over QUEUE_DEPTH * P at a time, which bounds how many waiting processes exist at once.
With sweep.worker=true a local launch bypasses the Hydra launcher: P long-lived worker processes (one per
slot, sweeps.pool / sweeps.worker) take the same jobs from a queue and train them back to back, each run
as its job would (locks, skip-finished, resume, failure records), without a process start between runs.

Called by the Sweeper plugin (hydra_plugins/scalemix_sweeper); each job runs sweep.py's task
function, which calls sweeps.job.run_job. `run_sweep` returns the sweep's exit code (EXIT_*), which
the sweeper hands to sys.exit, so that scripts and CI see a failed sweep.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.branches import trunk_dir, write_group
from harness.rundir import RunDir, read_json_object
from harness.spec import SpecError
from sweeps import bytecode, grids, placement
from sweeps.branching import trunks
from sweeps.plan import Plan, plain_cfg, plan, plan_table
from sweeps.progress import Progress
from sweeps.status import counts, status_table, sweep_status
from sweeps.timeline import Timeline, process_start

log = logging.getLogger("scalemix.sweep")

EXIT_DONE = 0         # every run of the plan is done (a dry run / status that could be shown)
EXIT_FAILED = 1       # some run failed: given up, or failed and left for a retry by the next launch
EXIT_REFUSED = 2      # the config was refused before anything launched (every problem printed)
EXIT_INCOMPLETE = 3   # nothing failed, but some runs are not done (running elsewhere, preempted, pending)


def refuse(message: str) -> SystemExit:
    print(message, file=sys.stderr)
    return SystemExit(EXIT_REFUSED)


def start_ahead(config, p: Plan, folder: Path):
    """Workers started before the machine check (sweeps.pool.Standby), as many as the launch will likely use; None
    where it will use none (a status, a cluster, sweep.worker=false, no single-GPU run left) or only torch could tell
    how many GPUs there are. A wrong guess costs little: run_pool stops spares and starts what is missing."""
    if config.sweep.status or not is_local(config) or not config.sweep.worker:
        return None
    gpus = gpus_without_torch(config.sweep.gpus)
    jobs = {r.branch.trunk.run_id if r.branch else r.run_id for r in p.runs
            if r.gpus == 1 and not (p.run_dir(r) / "result.json").exists()}
    n = min(parallelism(config, gpus) or 0, len(jobs)) if gpus is not None else 0
    if not n:
        return None
    from harness.device import compile_mode, device_type
    from sweeps.pool import start_standby
    try:
        return start_standby(folder, n, inductor_cache=config.sweep.inductor_cache,
                             threads=int(config.train.runtime.threads or 0),
                             compiles=compile_mode(p.runtime, device_type(p.runtime, gpus)) != "off")
    except OSError:   # a full or read-only disk: the preparation below says so, with the fix; no workers ahead
        return None


def gpus_without_torch(setting) -> int | None:
    """visible_gpus without importing torch: sweep.gpus, else CUDA_VISIBLE_DEVICES, else the /dev/nvidia<N> devices;
    None where none of these can tell."""
    if setting not in (None, "auto"):
        return int(setting)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([x for x in visible.split(",") if x.strip()])
    dev = Path("/dev")
    if not dev.is_dir():
        return None
    return len([x for x in dev.iterdir() if x.name.startswith("nvidia") and x.name[6:].isdigit()])


def machine_errors(runtime) -> list[str]:
    """What the runs' train.runtime asks of this machine that it cannot do (a CUDA device that is not there,
    torch.compile without its toolchain, bf16 on a CPU without it): a local launcher's jobs run here, so each would
    fail in its preflight. A cluster's jobs run on its nodes, which check it there."""
    from harness.device import machine_errors as errors  # torch loads only where the check needs it
    return errors(runtime, key="train.runtime")


def is_local(config) -> bool:
    target = str(config.hydra.launcher.get("_target_", ""))
    return "Slurm" not in target


def visible_gpus(setting) -> int:
    if setting not in (None, "auto"):
        return int(setting)
    from harness.device import cuda_devices  # imports torch only where its build can see a GPU
    return cuda_devices()


def device_ids(n: int) -> list[str]:
    """The n GPUs runs are pinned to, as CUDA_VISIBLE_DEVICES names them here (submitit's local
    executor clears that variable for its jobs, so each job is given the physical id)."""
    visible = [x for x in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if x.strip()]
    return (visible or [str(i) for i in range(n)])[:n]


def parallelism(config, gpus: int) -> int | None:
    """Runs at once: None (no cap from us) on a cluster launcher; else sweep.max_parallel or auto."""
    sw = config.sweep
    if sw.max_parallel not in (None, "auto"):
        return max(1, int(sw.max_parallel))
    if not is_local(config):
        return None  # Slurm: the array's parallelism cap applies
    if gpus:
        return gpus * max(1, int(sw.jobs_per_gpu))
    threads = int(config.train.runtime.threads or 0)
    return max(1, (os.cpu_count() or 1) // max(1, threads)) if threads else 1


KEEP_LAUNCHES = 10   # per sweep: .hydra/<launch> folders (job logs) and, per run, wandb folders kept; older are pruned
QUEUE_DEPTH = 4   # jobs handed to a local launcher per slot at once (a waiting job is an idle Python process)


def chunks(items: list, n: int | None) -> list[list]:
    n = n or len(items) or 1
    return [items[i:i + n] for i in range(0, len(items), n)]


def slot_gpu_ids(slots: int, gpus: int, per_gpu: int) -> list[str] | None:
    """The GPU of each slot: per_gpu consecutive slots share a GPU; None on CPU."""
    if not gpus:
        return None
    ids = device_ids(gpus)
    return [ids[(k // per_gpu) % gpus] for k in range(slots)]


def job_overrides(arguments: Sequence[str], run_id: str, slots: int | None = None,
                  slot_gpus: list[str] | None = None, procs: int | None = None) -> list[str]:
    """The sweep's own overrides plus this run's id (quoted: 525411e98221 would parse as a float) and, on a
    local launcher, the slots it waits for, their GPUs and the processes of a run over several GPUs."""
    out = [*arguments, f"run_id='{run_id}'"]
    if slots:
        out.append(f"slots={slots}")
    if slot_gpus:
        out.append(f"slot_gpus='{','.join(slot_gpus)}'")
    if procs and procs > 1:
        out.append(f"procs={procs}")
    return out


def gpu_groups(todo: list, gpus_of: dict[str, int]) -> list[tuple[int, list]]:
    """The runs to launch by the GPUs each trains over, most GPUs first (each group is one launch phase)."""
    groups: dict[int, list] = {}
    for r in todo:
        groups.setdefault(gpus_of[r.run_id], []).append(r)
    return sorted(groups.items(), key=lambda kv: -kv[0])


def local_slots(config, k: int, gpus: int) -> tuple[int | None, list[str] | None]:
    """(slots, the GPUs of each slot) for runs over k GPUs on a local launcher: 1-GPU runs as before
    (sweep.jobs_per_gpu share a GPU); a k-GPU run owns k GPUs ('0+1'); on CPU k processes per run."""
    per_gpu = max(1, int(config.sweep.jobs_per_gpu))
    if k == 1:
        slots = parallelism(config, gpus)
        return slots, (slot_gpu_ids(slots, gpus, per_gpu) if slots else None)
    if gpus:
        ids = placement.slot_devices(device_ids(gpus), k)
        return len(ids), ids
    return max(1, (parallelism(config, 0) or 1) // k), None


def run_sweep(config, arguments: Sequence[str], launch: Callable, validate: Callable | None = None,
              configure: Callable[[dict], None] | None = None) -> int:
    """Status, dry run or launch; returns the exit code (EXIT_*). Raises SystemExit(EXIT_REFUSED) for
    a config refused before launch. configure(params): set the cluster launcher's job shape (nodes,
    tasks_per_node, gpus_per_node) before the runs over that many GPUs are launched."""
    retries = int(config.sweep.retries)
    started = time.monotonic()
    timeline = Timeline()   # where the launch's time went (sweeps.timeline): written once its folder is known
    timeline.mark("sweep_start", process_start=process_start())
    if config.sweep.dry_run:  # the table even when some runs are invalid: it shows what to change
        try:
            p = plan(config, strict=False)
        except SpecError as e:
            raise refuse(f"sweep: {e}") from None
        print(plan_table(p, sweep_status(p, retries) if not p.errors else None))
        if p.errors:
            raise refuse(f"dry run: nothing launched; {len(p.errors)} error(s) above must be fixed before a launch")
        print("dry run: nothing launched")
        return EXIT_DONE
    standby = cache = None
    try:
        try:
            p = plan(config)
            timeline.mark("planned", runs=len(p.runs))
            folder = launch_dir(config, p)
            if is_local(config) and not config.sweep.status:   # before this process and its workers import torch
                cache = bytecode.keep(config.sweep.bytecode_cache)
            # the workers' start (a process, torch, the trainer) overlaps the machine check (torch too, where it needs it)
            standby = None if p.blockers else start_ahead(config, p, folder)
            if blockers := p.blockers + (machine_errors(p.runtime) if is_local(config) else []):
                raise SpecError(blockers)
        except SpecError as e:
            if standby is not None:
                standby.cancel()
            if cache is not None:
                cache.discard()
            raise refuse(f"sweep {config.sweep.get('name', '?')}: nothing launched, {e}") from None
        return launch_planned(config, arguments, launch, validate, configure, p, folder, timeline, standby,
                              started)
    finally:   # whatever the launch did not use (a refusal, an error, no single-GPU runs left) stops here
        if standby is not None:
            standby.stop()


def launch_planned(config, arguments: Sequence[str], launch: Callable, validate: Callable | None,
                   configure: Callable[[dict], None] | None, p: Plan, folder: Path, timeline: Timeline,
                   standby, started: float) -> int:
    """run_sweep after planning and the machine check: status, or prepare the run directories and launch
    (started: time.monotonic() at the launch's start, for sweep.deadline_s)."""
    retries = int(config.sweep.retries)
    if config.sweep.status:
        print(status_table(p, sweep_status(p, retries)))
        return EXIT_DONE
    timeline.mark("checked")
    print(plan_table(p, sweep_status(p, retries)))
    designed = grids.conventions(plain_cfg(config)["grid"]["shapes"])
    launched = launched_with(config)
    try:
        for r in p.runs:  # every spec.yaml exists before any job starts: the job only needs its run_id
            run_dir = RunDir(p.run_dir(r))
            row, _ = read_json_object(run_dir.result_file)
            if not (row and row.get("run_id") == r.run_id):   # also rewrites a spec.yaml that a crash cut short
                run_dir.prepare(r.spec, p.runtime)
                run_dir.prune_wandb(KEEP_LAUNCHES)
            run_dir.write_grid({"sweep": p.name, "label": r.label, "budget": r.budget, **designed, **launched})
        for trunk, branches in trunks(p.runs).values():   # a trunk's job runs its branches in fork order (sweeps.job)
            RunDir(trunk_dir(p.sweep_dir, trunk.run_id)).prepare(trunk, p.runtime)
            write_group(trunk_dir(p.sweep_dir, trunk.run_id), trunk,
                        [(r.run_id, r.branch.start_step) for r in branches])
        prune_launches(p.sweep_dir / ".hydra", KEEP_LAUNCHES)
    except OSError as e:   # a full disk, a read-only file system: say so, not a traceback
        print(f"sweep {p.name}: nothing launched: cannot write the run directories under {p.sweep_dir} "
              f"({e.strerror or e}: {e.filename}); free space or make it writable, then relaunch", file=sys.stderr)
        raise SystemExit(EXIT_FAILED) from None
    timeline.mark("prepared")
    statuses = sweep_status(p, retries)
    todo = [r for r in p.runs if statuses[r.run_id].state == "pending"]
    skipped = {s: n for s, n in counts(statuses).items() if s != "pending"}
    if skipped:
        log.info("skipping %s", ", ".join(f"{n} {s}" for s, n in skipped.items()))
    # longest first (measured speed if the throughput table has it): the first slots take the longest runs
    # and the short ones fill in at the end
    todo.sort(key=lambda r: -(p.throughput.hours(r.counts.flops_per_token, r.spec.tokens, r.spec.batch_size)
                              or r.flops))
    gpus = visible_gpus(config.sweep.gpus) if is_local(config) else 0
    todo = hold_back(config, p, todo, gpus, started)
    groups = gpu_groups(todo, {r.run_id: r.gpus for r in p.runs})
    if gpus and groups and groups[0][0] > gpus:
        raise refuse(f"sweep {p.name}: nothing launched: {len(groups[0][1])} run(s) need {groups[0][0]} GPUs each "
                     f"(sweep.gpus_per_run={config.sweep.get('gpus_per_run', 'auto')}) but {gpus} GPU(s) are visible "
                     f"here; lower sweep.gpus_per_run, or launch on Slurm (hydra/launcher=slurm)")
    shapes = {}
    if not is_local(config):   # every phase's Slurm job shape, checked before anything is launched
        try:
            shapes = {k: placement.slurm_shape(k, int(config.sweep.get("node_gpus", 8)),
                                               config.hydra.launcher.get("gpus_per_node")) for k, _ in groups}
        except ValueError as e:
            raise refuse(f"sweep {p.name}: nothing launched: {e}; set sweep.gpus_per_run to a multiple of "
                         "sweep.node_gpus or at most it") from None
    job_idx = 0
    timeline.attach(folder)
    timeline.mark("launch", runs=len(todo))
    with Progress(p, todo, float(config.sweep.progress_every_s)):
        for k, group in groups:   # the runs over the most GPUs first: they are the longest, the rest fills in
            slots, slot_gpus = local_slots(config, k, gpus) if is_local(config) else (None, None)
            if configure and shapes:
                configure(shapes[k])
            # one job per run, but one per trunk for cooldown branches: it forks them one after the other
            jobs = list(dict.fromkeys(r.branch.trunk.run_id if r.branch else r.run_id for r in group))
            if slots and k == 1 and is_local(config) and config.sweep.worker and jobs:
                # local runs of one GPU (or CPU): a long-lived worker per slot instead of a process per run
                from sweeps.pool import run_pool
                run_pool(jobs, folder, sweep_dir=p.sweep_dir, sweep=p.name, retries=retries,
                         slots=slots, slot_gpus=slot_gpus, inductor_cache=config.sweep.inductor_cache,
                         threads=int(config.train.runtime.threads or 0),
                         compile_ahead=config.sweep.compile_ahead and (bool(slot_gpus) or p.runtime.compile in ("on", "regional")),
                         standby=standby)
                standby = None
                continue
            for batch in chunks(jobs, slots and QUEUE_DEPTH * slots):
                overrides = [job_overrides(arguments, job, slots, slot_gpus, k) for job in batch]
                if validate and job_idx == 0:
                    validate(overrides[:1])
                try:
                    results = launch(overrides, initial_job_idx=job_idx)
                except Exception as e:  # a launcher error (a cancelled Slurm job): the files still say what finished
                    log.error("batch starting at job %d: %s: %s", job_idx, type(e).__name__, e)
                    results = []
                for o, res in zip(overrides, results):
                    try:
                        res.return_value  # noqa: B018  (raises the job's exception, if it had one)
                    except Exception as e:  # a crash of the job wrapper itself (a run's own failure is in failed.json)
                        log.error("job %s: %s: %s", o[len(arguments)], type(e).__name__, e)
                job_idx += len(batch)
    timeline.mark("runs_ended")
    code = finish(p, retries, arguments)
    timeline.mark("finished")
    return code


def hold_back(config, p: Plan, todo: list, gpus: int, started: float) -> list:
    """The runs to start now: with sweep.deadline_s (a local launch given a fixed time: a device call, a Slurm
    allocation) only those expected to end within it (sweeps.placement.within_deadline, measured throughput);
    the rest stay pending for the next launch instead of being cut off mid-run, where a run on a machine that
    does not outlive the launch would lose its progress."""
    deadline = config.sweep.get("deadline_s")
    if deadline in (None, 0) or not todo:
        return todo
    if not is_local(config):
        raise refuse(f"sweep.deadline_s={deadline}: only local launches hold runs back; on Slurm the "
                     "scheduler's time limit applies (hydra.launcher.timeout_min): unset sweep.deadline_s")
    if any(r.gpus > 1 for r in todo):
        log.warning("sweep.deadline_s: runs over several GPUs are not held back (their slots are planned apart)")
        return todo
    slots = parallelism(config, gpus) or 1
    # runs share a GPU only when there are more runs than GPUs: a lone run has its GPU to itself
    share = min(max(1, int(config.sweep.jobs_per_gpu)), -(-len(todo) // gpus)) if gpus else 1
    left = float(deadline) - (time.monotonic() - started)
    hours = [p.hours(r) for r in todo]
    keep = placement.within_deadline(hours, slots, share, left, whole_s=float(deadline))
    held = [r for r, k in zip(todo, keep) if not k]
    if held:
        log.info("sweep.deadline_s=%s: %d of %d runs would end past it (%.0f s left): held for the next launch: %s",
                 deadline, len(held), len(todo), left, ", ".join(r.label for r in held))
    for r, h, k in zip(todo, hours, keep):
        if k and h is not None and h * 3600.0 > float(deadline):
            log.warning("sweep.deadline_s=%s: %s is expected to take %.0f s alone, longer than a whole launch: "
                        "started; it stops at the launch's end with a checkpoint and the next launch resumes it "
                        "(on the same machine or with its run directory carried)", deadline, r.label, h * 3600.0)
    if any(h is None for h in hours):
        log.warning("sweep.deadline_s: %d runs have no measured throughput (sweep.throughput_table): started "
                    "regardless", sum(h is None for h in hours))
    return [r for r, k in zip(todo, keep) if k]


def launched_with(config) -> dict:
    """{"grid", "scale"}: the config names this sweep was composed from (`+grid=<grid> scale=<scale>`, Hydra's
    choices), for grid.json: a sweep's name need not be its grid's (sweep.name=...), and analysis prints command
    lines that extend this sweep. {} where Hydra recorded no choices (a config composed without its hydra node)."""
    try:
        choices = config.hydra.runtime.choices
    except Exception:   # omegaconf raises its own error types for a missing node
        return {}
    return {k: str(choices[k]) for k in ("grid", "scale") if choices.get(k)}


def launch_dir(config, p: Plan) -> Path:
    """This launch's folder for logs: Hydra's sweep dir (.hydra/<time>), where its launcher would put them."""
    try:
        return Path(str(config.hydra.sweep.dir))
    except Exception:   # a config composed without its hydra node (tests): the same layout
        return p.sweep_dir / ".hydra" / time.strftime("%Y-%m-%d_%H-%M-%S")


def prune_launches(hydra_dir: Path, keep: int) -> list[Path]:
    """Each launch writes a .hydra/<timestamp>/ folder (config and every job's log, 100s of KB): keep the
    newest `keep` (this launch's included) so relaunching a sweep does not grow its directory without bound."""
    from harness.rundir import prune_oldest
    if not hydra_dir.is_dir():
        return []
    return prune_oldest([d for d in hydra_dir.iterdir() if d.is_dir()], keep)


def exit_code(statuses: dict) -> int:
    """EXIT_DONE when every run is done; EXIT_FAILED when any failed (also one left to retry); else EXIT_INCOMPLETE."""
    if all(s.state == "done" for s in statuses.values()):
        return EXIT_DONE
    if any(s.state == "failed" or s.attempts for s in statuses.values()):
        return EXIT_FAILED
    return EXIT_INCOMPLETE


def finish(p: Plan, retries: int, arguments: Sequence[str]) -> int:
    """Print each run that is not done, the summary line and the next commands; return the exit code."""
    statuses = sweep_status(p, retries)
    c = counts(statuses)
    bad = [(r, statuses[r.run_id]) for r in p.runs if statuses[r.run_id].state != "done"]
    for r, s in bad:
        print(f"  {r.run_id} {r.label}: {s.state}: {s.reason}")
    print(f"\nsweep {p.name}: {c.get('done', 0)}/{len(p.runs)} done"
          + "".join(f", {c[s]} {s}" for s in ("running", "failed", "pending") if c.get(s)))
    print(f"sweep dir: {Path(p.sweep_dir).resolve()}")
    if bad:
        args = " ".join(arguments)
        print(f"status:    python sweep.py {args} sweep.status=true   (the same command again resumes and retries)")
    print(f"next:      python -m analysis.report {p.sweep_dir}")
    code = exit_code(statuses)
    if code:
        print(f"exit {code}: " + ("some runs failed" if code == EXIT_FAILED else "some runs are not done yet"))
    return code
