"""A sweep's wall time against the sum of its runs' steady-state training times (issue 12: target <= 1.15).

    python bench/worker_ratio.py runs/<sweep> --wall 212.4 [--slots 2] [--csv out.csv] [--label worker]

Reads each run's result.json (time_train_s: steady-state training, every launch's first log window excluded;
time_setup_s, time_warmup_s, time_eval_s, time_checkpoint_s; wall_s) and prints one line per run, the sums,
and slots x wall / sum(time_train_s): the device time the sweep held against the time its runs trained (slots:
the runs that trained at once, sweep.max_parallel). With one run per GPU at a time (sweep.jobs_per_gpu=1) a
run's time_train_s is its steady-state training time alone on the device.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.rundir import read_json_object  # noqa: E402

COLUMNS = ("time_train_s", "time_warmup_s", "time_setup_s", "time_eval_s", "time_checkpoint_s", "wall_s")


def rows(sweep_dir: Path) -> list[dict]:
    out = []
    for f in sorted(Path(sweep_dir).glob("*/result.json")):
        row, _ = read_json_object(f)
        if row and row.get("run_id") == f.parent.name:
            grid, _ = read_json_object(f.parent / "grid.json")
            out.append({"run_id": row["run_id"], "label": (grid or {}).get("label", ""), "flops": row.get("flops"),
                        "tokens_per_s": row.get("tokens_per_s"), **{k: float(row.get(k) or 0.0) for k in COLUMNS}})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep_dir")
    p.add_argument("--wall", type=float, required=True, help="the sweep command's wall time, seconds")
    p.add_argument("--csv", help="also write the per-run table here")
    p.add_argument("--label", default="", help="a name for this measurement in the summary line")
    p.add_argument("--slots", type=int, default=1, help="runs that trained at once (sweep.max_parallel)")
    a = p.parse_args(argv)
    rs = rows(Path(a.sweep_dir))
    if not rs:
        print(f"no finished runs under {a.sweep_dir}", file=sys.stderr)
        return 1
    print(f"{'run':<16} {'train s':>8} {'warmup':>7} {'setup':>6} {'eval':>6} {'ckpt':>6} {'wall':>7}  tokens/s")
    for r in rs:
        print(f"{r['label'] or r['run_id']:<16} {r['time_train_s']:8.1f} {r['time_warmup_s']:7.1f} {r['time_setup_s']:6.1f} "
              f"{r['time_eval_s']:6.1f} {r['time_checkpoint_s']:6.2f} {r['wall_s']:7.1f}  {r['tokens_per_s'] or 0:.4g}")
    total = {k: sum(r[k] for r in rs) for k in COLUMNS}
    print("sum              " + " ".join(f"{k.removeprefix('time_')}={v:.1f}" for k, v in total.items()))
    ratio = a.slots * a.wall / total["time_train_s"] if total["time_train_s"] > 0 else float("inf")
    print(f"{a.label + ': ' if a.label else ''}{len(rs)} runs, sweep wall {a.wall:.1f} s x {a.slots} slot(s), sum of "
          f"steady-state training {total['time_train_s']:.1f} s, ratio {ratio:.3f} (target <= 1.15), "
          f"training share {1 / ratio:.1%}")
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rs[0]))
            w.writeheader()
            w.writerows(rs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
