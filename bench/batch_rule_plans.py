"""grid.batch: what the planner makes of the GPU grids at one batch and with a batch per run (dry runs only, no
training; bench/README.md, "Per-run batch: grid.batch").

    SCALEMIX_DATA=/work/main/data PYTHONPATH=$PWD python bench/batch_rule_plans.py [--root runs]

Per grid: runs, the batches (sequences: runs), the fewest and median optimizer steps, runs under 1000 steps, the
planner's device-hours (all runs, and the runs whose batch the rule lowered) and its warnings about the batch.
"""
from __future__ import annotations

import argparse
import collections
import statistics
from pathlib import Path

from hydra import compose, initialize_config_dir

from sweeps.batching import FEW_STEPS
from sweeps.plan import plan

CONF = Path(__file__).resolve().parents[1] / "conf"
NATURAL = "{code:0.331562,docs:0.151278,math:0.153194,multilingual:0.210013,prose:0.153953}"
CONFIRM = ["+grid=mixture", "scale=study", "grid.shapes.depth=4", "grid.mixtures.kind=list",
           f"grid.mixtures.list=[{{code:0.4,docs:0.1,math:0.2,multilingual:0.2,prose:0.1}},"
           f"{{code:0.2,docs:0.2,math:0.2,multilingual:0.2,prose:0.2}},{NATURAL}]",
           "grid.shapes.tokens=40000000", "grid.seeds=[0,1]", "train.optim.lr=2.0e-3",
           "sweep.throughput_table=bench/results/throughput_h200.json"]
GRIDS = {
    "study (one batch)": ["+grid=study"],
    "study2 (rule=steps)": ["+grid=study2"],
    "study_mixture fit (one batch)": ["+grid=study_mixture", "grid.batch.rule=fixed"],
    "study_mixture fit (rule=steps)": ["+grid=study_mixture"],
    "mixing confirmation (one batch)": CONFIRM,
    "mixing confirmation (rule=steps)": [*CONFIRM, "grid.batch.rule=steps"],
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="runs", help="sweep.root (where the study's lr sweep runs/study-lr lies)")
    args = ap.parse_args(argv)
    for name, overrides in GRIDS.items():
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[*overrides, f"sweep.root={args.root}"])
        p = plan(cfg, strict=False)
        steps = [r.spec.steps for r in p.runs]
        hours = [p.hours(r) or 0.0 for r in p.runs]
        lowered = [h for r, h in zip(p.runs, hours) if r.spec.batch_tokens != p.base_batch_tokens]
        batches = sorted(collections.Counter(r.spec.batch_size for r in p.runs).items())
        print(f"{name}: {len(p.runs)} runs, batches {dict(batches)} (sequences: runs), steps {min(steps)} fewest, "
              f"{statistics.median(steps):.0f} median, {sum(s < FEW_STEPS for s in steps)} under {FEW_STEPS}; "
              f"{sum(hours):.4f} device-h ({sum(hours) * 60:.1f} min), lowered runs {len(lowered)}: "
              f"{sum(lowered) * 60:.1f} min")
        for w in p.warnings + p.errors:
            if "grid.batch" in w or "batch" in w.split(":")[0]:
                print(f"  {w[:200]}{'...' if len(w) > 200 else ''}")


if __name__ == "__main__":
    main()
