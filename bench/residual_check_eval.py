"""The residual check's runs (bench/residual_check.sh) against the study's laws: which change brings the GPU study's
low tokens-per-parameter runs down to the law of the other runs (bench/README.md, "GPU study, session 7").

    python bench/residual_check_eval.py runs/study runs/study-check [--study-big runs/study-big]

For each check run: the grid run it varies (same depth and tokens), what was changed (lr x0.5 / x2, batch / 4), its
measured loss, and approach 3's predictions from (a) all grid runs and (b) the grid runs with at least
--min-tpp tokens per compute parameter (the residual diagnosis's kept runs). Fits without bootstrap.
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

from analysis import results
from analysis.laws import approach3


def grid_twin(grid: pd.DataFrame, depth: int, tokens: float) -> pd.Series | None:
    """The grid's seed-0 run a check run varies: the same depth, its tokens within 1% (a smaller batch rounds the
    tokens to its own whole steps); None when the grid has none."""
    rows = grid[(grid["n_layers"] == depth) & (np.abs(grid["tokens"] / tokens - 1) < 0.01) & (grid["seed"] == 0)]
    return rows.iloc[0] if len(rows) else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("study")
    ap.add_argument("check")
    ap.add_argument("--study-big", help="the 4x run's sweep: its loss against both laws too")
    ap.add_argument("--min-tpp", type=float, default=4.5, help="tokens per compute parameter kept in law (b)")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    res = results.load(a.study)
    cfg = res.fit_config(n_bootstrap=0)
    grid = approach3.usable(res.runs, cfg).reset_index(drop=True)
    tpp = grid["tokens"] / grid[cfg.n_col]
    laws = {"all": approach3.fit(grid, cfg), f"tpp>={a.min_tpp:g}": approach3.fit(grid[tpp >= a.min_tpp], cfg)}
    for name, law in laws.items():
        print(f"law ({name}): {law.n_runs} runs, E {law.E:.3f} alpha {law.alpha:.3f} beta {law.beta:.3f} a {law.a:.3f}")
    check = results.load(a.check).runs
    extra = [check]
    if a.study_big:
        extra.append(results.load(a.study_big).runs)
    rows = []
    for df in extra:
        for _, r in df.iterrows():
            b = grid_twin(grid, r["n_layers"], r["tokens"])
            changed = []
            if b is not None:
                if not np.isclose(r["lr"], b["lr"]):
                    changed.append(f"lr x{r['lr'] / b['lr']:.2g}")
                if r["batch_tokens"] != b["batch_tokens"]:
                    changed.append(f"batch x{r['batch_tokens'] / b['batch_tokens']:.2g}")
            row = {"run": r["run_id"], "sweep": r["sweep"], "depth": int(r["n_layers"]), "tokens": int(r["tokens"]),
                   "steps": int(r["steps"]), "tpp": r["tokens"] / r[cfg.n_col],
                   "change": ", ".join(changed) or ("-" if b is not None else "no grid twin"),
                   "grid loss": b["loss"] if b is not None else np.nan, "loss": r["loss"]}
            for name, law in laws.items():
                p = float(law.predict(r[cfg.n_col], r["tokens"]))
                row[f"law {name}"] = p
                row[f"err {name}"] = r["loss"] / p - 1
            rows.append(row)
    out = pd.DataFrame(rows).sort_values(["depth", "tokens", "change"])
    fmt = {"tpp": "{:.2f}".format, "grid loss": "{:.4f}".format, "loss": "{:.4f}".format}
    fmt |= {c: "{:.4f}".format for c in out if c.startswith("law ")}
    fmt |= {c: "{:+.2%}".format for c in out if c.startswith("err ")}
    print(out.to_string(index=False, formatters=fmt))


if __name__ == "__main__":
    main()
