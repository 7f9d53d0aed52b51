"""WSD cooldown branches (Hägele et al. 2024; OLMo-core's WSD-S ladder): one stable-lr trunk, many lengths.

A WSD run of T tokens holds its peak lr from the end of warmup until its cooldown starts, at step
start(T) = steps(T) - cooldown_steps(T). Up to that step it computes exactly what a constant-lr run
computes: the same lr at every step (given a warmup fixed in steps, optim.warmup_steps, not a fraction
of T) and the same batches (MixtureStream's batch at step s is a function of s alone). So one
constant-lr *trunk* serves every length: the *branch* of T tokens is the trunk's state at start(T),
then T's own cooldown.

    trunk    runs/<sweep>/.trunks/<trunk_id>/   spec.yaml: the WSD spec with schedule constant, no cooldown,
             tokens = the longest branch's; advanced to each branch point in turn (run(stop_at=...)),
             it never writes a result (it is not a result row). branches.json lists its branches.
    branch   runs/<sweep>/<run_id>/             spec.yaml: the WSD run itself, so its run id IS the
             independent run's: forking is how the run is computed, not what it computes

A fork seeds the branch's ckpt/ with the trunk's checkpoint at start(T) (relabelled with the branch's run
id, its provenance under "branch", its clocks reset: a branch's wall_s is its own) and its metrics.jsonl
with the trunk's lines up to there; harness.train.run then resumes the branch like any interrupted run.
A branch whose trunk has already passed its start (its directory was deleted, say) trains from step 0
instead: the same run at full cost, without branch fields.

A branch's result.json: `tokens`, `flops` are the whole run's (what the independent run reports), plus
`trunk_run_id`, `branch_start_step`, `branch_start_tokens`, `flops_trunk_share` (the trunk's FLOPs up to
the fork) and `flops_spent` (the cooldown's), so flops_trunk_share + flops_spent = flops.

    python -m harness.branches runs/<sweep>/.trunks/<trunk_id> runs/<sweep>/<run_id>
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from harness.cli import train_and_exit_code
from harness.rundir import RunDir, atomic_write_bytes, load_runtime, load_spec, read_metrics
from harness.schedule import cooldown_steps
from harness.signals import Preempted
from harness.spec import RunSpec, Runtime, SpecError

TRUNKS = ".trunks"          # runs/<sweep>/.trunks/<trunk_id>/: hidden, so analysis does not take a trunk for a run
GROUP_FILE = "branches.json"


@dataclass(frozen=True)
class Branch:
    """How a planned run is computed: fork `trunk` at `start_step`, then the run's own cooldown."""
    trunk: RunSpec
    start_step: int

    @property
    def start_tokens(self) -> int:
        return self.start_step * self.trunk.batch_tokens


def start_step(spec: RunSpec) -> int:
    """The first step of the WSD cooldown: where a branch leaves the trunk."""
    return spec.steps - cooldown_steps(spec.optim, spec.steps)


def trunk_of(spec: RunSpec, tokens: int) -> RunSpec:
    """The constant-lr trunk that `spec` branches from, run to `tokens` (the longest branch's length:
    it is part of the trunk's id, and keeps the trunk's own last step past every branch point)."""
    optim = dataclasses.replace(spec.optim, schedule="constant", cooldown_frac=0.0, cooldown_shape="linear",
                                warmup_frac=0.0)
    return dataclasses.replace(spec, tokens=tokens, optim=optim)


def branch_errors(spec: RunSpec) -> list[str]:
    """Why `spec` cannot be computed as a branch of a shared trunk (empty: it can)."""
    o, e = spec.optim, []
    if o.schedule != "wsd":
        e.append(f"optim.schedule={o.schedule!r}: cooldown branches need schedule=wsd (the stable phase is what "
                 "the trunk shares); set train.optim.schedule=wsd")
    if o.warmup_frac > 0 and not o.warmup_steps:
        e.append(f"optim.warmup_frac={o.warmup_frac}: a warmup that is a fraction of the run differs between "
                 "lengths, so no trunk fits them all; set optim.warmup_steps instead (the planner does)")
    if spec.steps >= 1 and o.schedule == "wsd" and cooldown_steps(o, spec.steps) < 1:
        e.append(f"optim.cooldown_frac={o.cooldown_frac}: no cooldown step in a run of {spec.steps} steps "
                 "(nothing to branch); raise it or the run's tokens")
    for i, s in enumerate(spec.data.stages):
        if s.start_tokens == 0:
            e.append(f"data.stages[{i}].start_frac={s.start_frac}: a stage placed by fraction moves with the run "
                     f"length, so branches of one trunk would differ; give data.stages[{i}].start_tokens")
    return e


def membership_errors(trunk: RunSpec, spec: RunSpec) -> list[str]:
    if trunk_of(spec, trunk.tokens).run_id != trunk.run_id:
        return [f"run {spec.run_id} is not a branch of trunk {trunk.run_id}: they differ in more than the "
                "schedule and length (re-plan the sweep)"]
    if not start_step(spec) < trunk.steps:
        return [f"run {spec.run_id} branches at step {start_step(spec)}, not before trunk {trunk.run_id}'s last "
                f"step ({trunk.steps}): the trunk must be planned to the longest branch's length"]
    return []


# ------------------------------------------------------------------------------ the trunk's directory

def trunk_dir(sweep_dir: str | Path, trunk_id: str) -> Path:
    return Path(sweep_dir) / TRUNKS / trunk_id


def write_group(path: str | Path, trunk: RunSpec, branches: list[tuple[str, int]]) -> None:
    """branches.json: the trunk's branches as (run id, start step), in the order they fork (rewritten only
    when it changed)."""
    group = {"trunk_run_id": trunk.run_id,
             "branches": [{"run_id": r, "start_step": s} for r, s in sorted(branches, key=lambda b: (b[1], b[0]))]}
    f = Path(path) / GROUP_FILE
    data = (json.dumps(group, indent=1) + "\n").encode()
    if not f.exists() or f.read_bytes() != data:
        atomic_write_bytes(f, data)


def read_group(path: str | Path) -> list[str]:
    """The run ids of the trunk's branches, in fork order."""
    return [b["run_id"] for b in json.loads((Path(path) / GROUP_FILE).read_text())["branches"]]


def intact_step(ckpt_dir: Path) -> int | None:
    """Step of the newest intact checkpoint in ckpt_dir, None when there is none."""
    from harness.checkpoint import Checkpoints  # imports torch: the planner, which imports this module, must not
    ckpts = Checkpoints(ckpt_dir)
    return next((s for s in reversed(ckpts.steps()) if ckpts.verify(s) is None), None)


# ------------------------------------------------------------------------------------------ running

def run_branch(trunk: RunSpec, trunk_path: str | Path, spec: RunSpec, branch_path: str | Path,
               runtime: Runtime | None = None, sweep: str = "") -> dict:
    """Train `spec` in branch_path as a branch of `trunk` (in trunk_path): advance the trunk to the
    branch point if it is behind, fork, then run the cooldown. Resumable at every point: a branch with a
    checkpoint of its own resumes from it; a trunk resumes from its newest checkpoint."""
    from harness.train import run  # harness.train builds models: import it only to train
    runtime = runtime or Runtime()
    if errors := branch_errors(spec) + membership_errors(trunk, spec):
        raise SpecError(errors)
    rd = RunDir(branch_path)
    if rd.finished(spec) is None and intact_step(rd.ckpt_dir) is None:   # nothing of its own yet: fork it
        start, at = start_step(spec), intact_step(Path(trunk_path) / "ckpt") or 0
        if at < start:
            try:
                run(trunk, runtime, trunk_path, sweep, stop_at=start)
            except Exception as e:  # a failing trunk fails every branch after it: say which trunk
                if isinstance(e, (SpecError, Preempted)):
                    raise
                raise RuntimeError(f"trunk {trunk_path} (advancing to step {start}): {type(e).__name__}: {e}") from e
        if at <= start:
            fork(trunk, trunk_path, spec, rd, start, runtime)
        else:
            warnings.warn(f"trunk {trunk.run_id} is at step {at}, past run {spec.run_id}'s branch point {start}: "
                          f"training it from step 0 instead (the same run, at full cost)", stacklevel=2)
    return run(spec, runtime, rd.path, sweep)


def fork(trunk: RunSpec, trunk_path: str | Path, spec: RunSpec, rd: RunDir, start: int, runtime: Runtime) -> None:
    """Seed the branch's run dir with the trunk's state at `start`: metrics first, the checkpoint last
    (its presence means the fork is complete; a fork killed half way is simply done again)."""
    from harness.checkpoint import Checkpoints
    trunk_rd = RunDir(trunk_path)
    state = Checkpoints(trunk_rd.ckpt_dir).load_latest()
    if state is None or state["step"] != start:
        raise RuntimeError(f"trunk {trunk_path}: no intact checkpoint at step {start} to fork run {spec.run_id} "
                           f"from (newest: {None if state is None else state['step']})")
    rd.prepare(spec, runtime)
    # the trunk's training and evals up to the fork are this run's too; its set-up lines are not
    lines = [json.dumps(row) + "\n" for row in read_metrics(trunk_rd.metrics_file)
             if row.get("kind") in ("train", "eval") and isinstance(row.get("step"), int) and row["step"] <= start]
    atomic_write_bytes(rd.metrics_file, "".join(lines).encode())
    state.update(run_id=spec.run_id, elapsed_s=0.0, steady_tokens=0, steady_s=0.0, timing={},
                 branch={"trunk_run_id": trunk.run_id, "branch_start_step": start,
                         "branch_start_tokens": start * spec.batch_tokens})
    Checkpoints(rd.ckpt_dir, runtime.keep_checkpoints).save(start, state)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.branches", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trunk_dir", help="the trunk's directory (spec.yaml: the constant-lr trunk)")
    p.add_argument("branch_dir", help="the branch's run directory (spec.yaml: the WSD run; runtime.yaml)")
    p.add_argument("--sweep", default="", help="sweep name recorded in result.json")
    a = p.parse_args(argv)
    trunk_path, branch_path = Path(a.trunk_dir), Path(a.branch_dir)
    for d in (trunk_path, branch_path):
        if not (d / "spec.yaml").is_file():
            print(f"error: {d}/spec.yaml not found: give directories written by the planner", file=sys.stderr)
            return 2
    def train() -> dict:
        runtime = load_runtime(branch_path / "runtime.yaml") if (branch_path / "runtime.yaml").exists() else Runtime()
        return run_branch(load_spec(trunk_path / "spec.yaml"), trunk_path, load_spec(branch_path / "spec.yaml"),
                          branch_path, runtime, sweep=a.sweep or branch_path.parent.name)

    return train_and_exit_code(train, ("run_id", "loss", "steps", "trunk_run_id", "flops_spent"))

if __name__ == "__main__":
    sys.exit(main())
