"""Issue 17 on the GPU study: the downstream laws fitted to a sweep's runs predict the accuracies of a larger run
trained beyond it (the study's 4x run), per task, with intervals; and the sweep's own held-out-budget check.

    python bench/study_downstream_check.py runs/study2 runs/study2-big/<run_id> [--out examples/study2/downstream_4x.md]

The runs' scores come from eval=downstream or from `python -m harness.downstream --write` afterwards (bench/gpu_study.sh
posthoc): runs without scores are left out of the fit (stated).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository's packages, run as a script
from analysis.laws import downstream  # noqa: E402
from analysis.laws.common import FitError  # noqa: E402
from analysis.results import load  # noqa: E402


def table(sweep: Path, big: Path, n_bootstrap: int) -> tuple[pd.DataFrame, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = load(sweep)
        big_row = load(big.parent).runs.set_index("run_id").loc[big.name]
    cfg = res.fit_config()
    runs = res.runs
    tasks = downstream.tasks_in(runs)
    scored = runs[f"acc_{tasks[0]}"].notna().sum() if tasks else 0
    budgets = sorted(runs.loc[runs[f"acc_{tasks[0]}"].notna(), "budget"].unique()) if tasks else []
    note = (f"{scored} of {len(runs)} runs of {sweep} carry downstream scores (budgets "
            f"{', '.join(f'{b:.2g}' for b in budgets)}); the larger run {big.name}: N {big_row[cfg.n_col]:.3g}, "
            f"D {big_row['tokens']:.3g}, C {big_row[cfg.c_col]:.3g}")
    rows = []
    for t in tasks:
        row = {"task": t, "chance": downstream.chance_of(runs, t), "measured": big_row.get(f"acc_{t}", np.nan),
               "se": big_row.get(f"se_{t}", np.nan)}
        try:
            law = downstream.fit(runs, t, cfg, n_bootstrap=n_bootstrap)
        except FitError as e:
            rows.append({**row, "note": str(e)})
            continue
        N, D, C = (np.array([float(big_row[c])]) for c in (cfg.n_col, "tokens", cfg.c_col))
        _, acc = law.predict(N, D, C)
        lo, hi = law.interval(N, D, C)
        err = 100 * (acc[0] - row["measured"])
        rows.append({**row, "form": law.loss.form, "runs": law.n_runs, "predicted": acc[0], "lo": lo[0], "hi": hi[0],
                     "error (points)": err, "within 3": abs(err) <= downstream.WITHIN_POINTS,
                     "inside interval": bool(lo[0] <= row["measured"] <= hi[0]),
                     "note": "; ".join(law.warnings)})
    return pd.DataFrame(rows), note


def markdown(df: pd.DataFrame, note: str) -> str:
    lines = ["# Downstream accuracy of the 4x run, predicted by the sweep's two-step laws", "", note + ".", "",
             "| task | chance | measured ± se | predicted | 90% interval | error (points) | within 3 | inside | form | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in df.to_dict("records"):
        pred = f"{r['predicted']:.3f}" if np.isfinite(r.get("predicted", np.nan)) else "–"
        iv = f"[{r['lo']:.3f}, {r['hi']:.3f}]" if np.isfinite(r.get("lo", np.nan)) else "–"
        err = f"{r['error (points)']:+.1f}" if np.isfinite(r.get("error (points)", np.nan)) else "–"
        within = {True: "yes", False: "no"}.get(r.get("within 3"), "–")
        inside = {True: "yes", False: "no"}.get(r.get("inside interval"), "–")
        lines.append(f"| {r['task']} | {r['chance']:.2f} | {r['measured']:.3f} ± {r['se']:.3f} | {pred} | {iv} | {err} "
                     f"| {within} | {inside} | {r.get('form', '–')} | {r.get('note') or ''} |")
    ok = df.get("within 3", pd.Series(dtype=object)).eq(True).sum()
    lines += ["", f"{ok} of {len(df)} tasks within 3 accuracy points."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", type=Path)
    p.add_argument("big_run", type=Path)
    p.add_argument("--out", type=Path)
    p.add_argument("--bootstrap", type=int, default=downstream.DEFAULT_BOOTSTRAP)
    a = p.parse_args(argv)
    df, note = table(a.sweep, a.big_run, a.bootstrap)
    text = markdown(df, note)
    print(text)
    if a.out:
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
