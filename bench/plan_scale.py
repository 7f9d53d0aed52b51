"""Planning and status at scale: a 1000-run plan, then its status over 1000 run directories.

    python bench/plan_scale.py [--runs-dir DIR]

The plan is the lr grid (4 depths x 10 learning rates x 25 seeds = 1000 runs) on a synthetic corpus
built here (so the corpus checks run too); the run directories are given a realistic mix of states:
done (result.json), failed (failed.json), interrupted (metrics and a checkpoint directory), a torn
result.json, and untouched. Prints the wall time of each phase; the issue's target is <= 5 s for
plan + status on a 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
LRS = [f"{x:.1e}" for x in (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 5e-2)]
OVERRIDES = ["+grid=lr", f"grid.lrs=[{','.join(LRS)}]", f"grid.seeds=[{','.join(map(str, range(25)))}]",
             "data.corpus=syn", "sweep.max_epochs=1000"]


def populate(p) -> None:
    """Give the planned run directories a mix of states, as a long sweep's directory has."""
    from harness.rundir import RunDir
    for i, r in enumerate(p.runs):
        rd = RunDir(p.run_dir(r))
        rd.prepare(r.spec, p.runtime)
        kind = i % 5
        if kind == 0:
            rd.write_result({"run_id": r.run_id, "loss": 3.0})
        elif kind == 1:
            (rd.path / "failed.json").write_text(json.dumps({"attempts": 1, "reason": "boom"}))
        elif kind == 2:
            rd.metrics_file.write_text("".join(json.dumps({"kind": "train", "step": s, "tokens": s * 512,
                                                           "tokens_per_s": 1e4}) + "\n" for s in range(0, 200, 10)))
        elif kind == 3:
            rd.result_file.write_text('{"run_id": "')


def main() -> None:
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--runs-dir", help="where to write the run directories (default: a temporary directory)")
    args = a.parse_args()
    tmp = Path(args.runs_dir or tempfile.mkdtemp(prefix="plan_scale_"))
    from harness.data.synthetic import make_synthetic_corpus
    make_synthetic_corpus(tmp / "data" / "syn", vocab_size=2048, train_tokens=100_000, heldout_tokens=10_000)
    os.environ["SCALEMIX_DATA"] = str(tmp / "data")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*OVERRIDES, f"sweep.root={tmp / 'runs'}"],
                      return_hydra_config=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    from sweeps.plan import plan, plan_table
    from sweeps.status import counts, status_table, sweep_status
    t_import = time.perf_counter()
    p = plan(cfg)
    t_plan = time.perf_counter()
    table = plan_table(p)
    t_table = time.perf_counter()
    cpu_plan = time.process_time() - cpu0
    populate(p)
    t_pop, cpu1 = time.perf_counter(), time.process_time()
    st = sweep_status(p, retries=2)
    status_table(p, st)
    t_status, cpu_status = time.perf_counter(), time.process_time() - cpu1
    print(f"runs: {len(p.runs)} ({len(table.splitlines())} table lines); states: {dict(counts(st))}")
    print(f"import sweeps.plan/status: {t_import - t0:.2f} s")
    print(f"plan (validate + corpus checks): {t_plan - t_import:.2f} s")
    print(f"plan table: {t_table - t_plan:.2f} s")
    print(f"status over {len(p.runs)} run dirs (+ table): {t_status - t_pop:.2f} s")
    print(f"plan + table + status: {t_plan - t_import + t_table - t_plan + t_status - t_pop:.2f} s "
          f"wall, {cpu_plan + cpu_status:.2f} s CPU (directories written in {t_pop - t_table:.1f} s, not counted)")
    for what in ("sweep.status=true", "sweep.dry_run=true"):   # the commands as a user runs them
        t, cpu0 = time.perf_counter(), children_cpu()
        r = subprocess.run([sys.executable, "sweep.py", *OVERRIDES, f"sweep.root={tmp / 'runs'}", what], cwd=ROOT,
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        print(f"python sweep.py ... {what}: {time.perf_counter() - t:.2f} s wall, {children_cpu() - cpu0:.2f} s CPU "
              f"(exit {r.returncode}, {len(r.stdout.splitlines())} lines)")


def children_cpu() -> float:
    import resource
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


if __name__ == "__main__":
    main()
