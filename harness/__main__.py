"""`python -m harness <run_dir>`: run the spec.yaml in run_dir (with its runtime.yaml, if any).

    python -m harness runs/chinchilla/3f2a9c0d1e4b
    python -m harness --spec-json '{"model": {...}, "tokens": ...}' --out runs/x [--runtime-json '{...}']
    torchrun --nproc_per_node 2 -m harness runs/chinchilla/3f2a9c0d1e4b     # one run over 2 GPUs (harness.distributed)

Exit codes: harness/cli.py (0 done, 2 invalid spec, 16 run directory busy, 75 preempted: requeue).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from harness import finish
from harness.cli import train_and_exit_code
from harness.rundir import RunDir, load_runtime, load_spec
from harness.spec import RunSpec, Runtime, from_plain


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", nargs="?", help="a run directory holding spec.yaml (and optionally runtime.yaml)")
    p.add_argument("--spec-json", help="the RunSpec as JSON instead of run_dir/spec.yaml")
    p.add_argument("--runtime-json", help="Runtime overrides as JSON (over run_dir/runtime.yaml)")
    p.add_argument("--out", help="run directory for --spec-json")
    p.add_argument("--sweep", default="", help="sweep name recorded in result.json")
    a = p.parse_args(argv)
    run_dir = Path(a.out or a.run_dir or "")
    if not (a.out or a.run_dir):
        p.error("give a run directory (or --spec-json with --out)")
    if not a.spec_json and not (run_dir / "spec.yaml").is_file():
        print(f"error: {run_dir}/spec.yaml not found: give a run directory written by the planner, "
              "or --spec-json with --out", file=sys.stderr)
        return 2

    def train() -> dict:
        spec = RunSpec.from_dict(json.loads(a.spec_json)) if a.spec_json else load_spec(run_dir / "spec.yaml")
        runtime = load_runtime(run_dir / "runtime.yaml") if (run_dir / "runtime.yaml").exists() else Runtime()
        if a.runtime_json:
            runtime = from_plain(Runtime, {**vars(runtime), **json.loads(a.runtime_json)})
        from harness.distributed import rendezvous_env
        from harness.train import run
        sweep = a.sweep or ("" if a.out else run_dir.parent.name)
        if int(rendezvous_env().get("RANK", "0")) > 0:   # one of G processes: rank 0 holds the directory's lock
            return run(spec, runtime, run_dir, sweep=sweep)
        with contextlib.ExitStack() as locks:
            locks.enter_context(RunDir(run_dir).exclusive())
            result = run(spec, runtime, run_dir, sweep=sweep)
            if (later := finish.pending(run_dir)) is not None:   # a sweep worker's run: result.json still on its way
                later.hold(locks.pop_all())   # the directory stays ours until it is written (Finish.wait)
            return result

    return train_and_exit_code(train, ("run_id", "loss", "steps", "tokens_per_s", "wall_s"))

if __name__ == "__main__":
    sys.exit(main())
