"""Issue 17 on the GPU study: the downstream laws fitted to a sweep's runs predict the accuracies of a larger run
trained beyond it (the study's 4x run), per task, with intervals; and the sweep's own held-out-budget check.

    python bench/study_downstream_check.py runs/study2 runs/study2-big/<run_id> [--out examples/study2/downstream_4x.md]
    python bench/study_downstream_check.py examples/study2/runs.csv examples/study2/big_run.csv [--out ...]

From run directories, or from the committed CSVs (the sweep's runs table and a one-row table of the larger run, as
analysis.results writes them): then N and C are the columns of the laws.json beside the runs CSV ("conventions"), or
--n-col / --c-col. The runs' scores come from eval=downstream or from `python -m harness.downstream --write` afterwards
(bench/gpu_study.sh posthoc): runs without scores are left out of the fit (stated). A task whose runs show no signal
above chance gets no accuracy (analysis.laws.downstream.no_signal): "not predicted", counted apart. Per task the
table also splits the error: step 1's task loss against the larger run's measured one, and step 2 alone (the sigmoid
at the measured task loss).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository's packages, run as a script
from analysis.laws import downstream  # noqa: E402
from analysis.laws.common import FitConfig, FitError  # noqa: E402
from analysis.results import load  # noqa: E402


def from_csv(runs_csv: Path, big_csv: Path, n_col: str | None, c_col: str | None
             ) -> tuple[pd.DataFrame, pd.Series, FitConfig]:
    """The runs table, the larger run's row and the conventions, from CSVs; a clear error naming what is missing."""
    for path in (runs_csv, big_csv):
        if not path.is_file():
            raise SystemExit(f"{path}: no such file (give a sweep directory and a run directory, or two CSVs)")
    big = pd.read_csv(big_csv)
    if len(big) != 1:
        raise SystemExit(f"{big_csv}: {len(big)} rows; the larger run's table must have exactly one")
    laws = runs_csv.parent / "laws.json"
    if n_col is None or c_col is None:
        if not laws.is_file():
            raise SystemExit(f"{runs_csv}: no laws.json beside it to take N and C from: pass --n-col and --c-col "
                             "(e.g. --n-col params_compute --c-col flops)")
        conv = json.loads(laws.read_text())["conventions"]
        n_col, c_col = n_col or conv["n_col"], c_col or conv["c_col"]
    return pd.read_csv(runs_csv), big.iloc[0], FitConfig(n_col=n_col, c_col=c_col)


def table(sweep: Path, big: Path, n_bootstrap: int, n_col: str | None = None,
          c_col: str | None = None) -> tuple[pd.DataFrame, str]:
    if sweep.suffix == ".csv":
        runs, big_row, cfg = from_csv(sweep, big, n_col, c_col)
        big_name = big_row.get("run_id", big.name)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = load(sweep)
            big_row = load(big.parent).runs.set_index("run_id").loc[big.name]
        cfg = res.fit_config(n_col, c_col)
        runs, big_name = res.runs, big.name
    tasks = downstream.tasks_in(runs)
    scored = runs[f"acc_{tasks[0]}"].notna().sum() if tasks else 0
    budgets = sorted(runs.loc[runs[f"acc_{tasks[0]}"].notna(), "budget"].unique()) if tasks else []
    note = (f"{scored} of {len(runs)} runs of {sweep} carry downstream scores (budgets "
            f"{', '.join(f'{b:.2g}' for b in budgets)}); the larger run {big_name}: N ({cfg.n_col}) "
            f"{big_row[cfg.n_col]:.3g}, D {big_row['tokens']:.3g}, C ({cfg.c_col}) {big_row[cfg.c_col]:.3g}")
    rows = []
    for t in tasks:
        row = {"task": t, "chance": downstream.chance_of(runs, t), "measured": big_row.get(f"acc_{t}", np.nan),
               "se": big_row.get(f"se_{t}", np.nan), "bpb": big_row.get(f"bpb_{t}", np.nan)}
        try:
            law = downstream.fit(runs, t, cfg, n_bootstrap=n_bootstrap)
        except FitError as e:
            rows.append({**row, "note": str(e)})
            continue
        N, D, C = (np.array([float(big_row[c])]) for c in (cfg.n_col, "tokens", cfg.c_col))
        L, acc = law.predict(N, D, C)
        row.update({"form": law.loss.form, "runs": law.n_runs, "bpb predicted": L[0],
                    "bpb error %": 100 * (L[0] / row["bpb"] - 1), "note": "; ".join(law.warnings)})
        if not law.predicts_accuracy:
            rows.append({**row, "status": downstream.NOT_PREDICTED})
            continue
        lo, hi = law.interval(N, D, C)
        err = 100 * (acc[0] - row["measured"])
        within = abs(err) <= downstream.WITHIN_POINTS
        rows.append({**row, "predicted": acc[0], "lo": lo[0], "hi": hi[0], "error (points)": err,
                     "step 2 alone (points)": 100 * (float(law.acc(row["bpb"])) - row["measured"]),
                     "status": f"within {downstream.WITHIN_POINTS:g}" if within else "miss",
                     "inside interval": bool(lo[0] <= row["measured"] <= hi[0])})
    return pd.DataFrame(rows), note


def made_by(n_bootstrap: int) -> str:
    """Which code and which defaults made the table (the file says so)."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        sha += " with uncommitted changes" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        sha = "unknown (not a git checkout)"
    return (f"Made by bench/study_downstream_check.py at commit {sha}: step 1 form auto (held-out check), step 2 "
            f"{downstream.DEFAULT_ACC_FIT}, no-signal rule at family-wise {downstream.SIGNAL_ALPHA:g}, "
            f"{n_bootstrap} bootstrap resamples")


def _num(r: dict, key: str, fmt: str) -> str:
    v = r.get(key, np.nan)
    return format(v, fmt) if isinstance(v, (int, float)) and np.isfinite(v) else "–"


def count_line(df: pd.DataFrame) -> str:
    status = df.get("status", pd.Series(dtype=object))
    within = int(status.astype(str).str.startswith("within").sum())
    predicted = within + int(status.eq("miss").sum())
    line = f"{within} of {predicted} predicted tasks within {downstream.WITHIN_POINTS:g} accuracy points"
    if (n := int(status.eq(downstream.NOT_PREDICTED).sum())):
        line += f"; {n} not predicted (no signal above chance in the fitted runs: only the task loss)"
    if (n := len(df) - int(status.notna().sum())):
        line += f"; {n} not fitted"
    return line + f" ({len(df)} tasks)."


def markdown(df: pd.DataFrame, note: str, made: str = "") -> str:
    lines = ["# Downstream accuracy of the 4x run, predicted by the sweep's two-step laws", "", note + ".", ""]
    lines += [made + ".", ""] if made else []
    lines += ["| task | chance | measured ± se | predicted | 90% interval | error (points) | within 3 | inside | form "
              "| task loss: measured, predicted (error) | step 2 alone (points) | note |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in df.to_dict("records"):
        iv = f"[{r['lo']:.3f}, {r['hi']:.3f}]" if np.isfinite(r.get("lo", np.nan)) else "–"
        status = r.get("status") if isinstance(r.get("status"), str) else "not fitted"
        within = {"miss": "no", downstream.NOT_PREDICTED: downstream.NOT_PREDICTED}.get(
            status, "yes" if status.startswith("within") else status)
        inside = {True: "yes", False: "no"}.get(r.get("inside interval"), "–")
        bpb = f"{_num(r, 'bpb', '.3f')}, {_num(r, 'bpb predicted', '.3f')} ({_num(r, 'bpb error %', '+.1f')}%)"
        lines.append(f"| {r['task']} | {r['chance']:.2f} | {r['measured']:.3f} ± {r['se']:.3f} | "
                     f"{_num(r, 'predicted', '.3f')} | {iv} | {_num(r, 'error (points)', '+.1f')} | {within} | {inside} "
                     f"| {r.get('form', '–')} | {bpb} | {_num(r, 'step 2 alone (points)', '+.1f')} "
                     f"| {r.get('note') or ''} |")
    lines += ["", count_line(df)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", type=Path, help="runs/<sweep> or its runs table (.csv)")
    p.add_argument("big_run", type=Path, help="runs/<sweep>-big/<run_id> or its one-row table (.csv)")
    p.add_argument("--out", type=Path)
    p.add_argument("--bootstrap", type=int, default=downstream.DEFAULT_BOOTSTRAP)
    p.add_argument("--n-col", help="N's column (default: the sweep's conventions, or the laws.json beside the CSV)")
    p.add_argument("--c-col", help="C's column (default: as --n-col)")
    a = p.parse_args(argv)
    df, note = table(a.sweep, a.big_run, a.bootstrap, a.n_col, a.c_col)
    text = markdown(df, note, made_by(a.bootstrap))
    print(text)
    if a.out:
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
