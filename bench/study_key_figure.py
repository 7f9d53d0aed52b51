"""The GPU study of record in one figure (examples/study/figures/key.png, shown in the README).

    python bench/study_key_figure.py runs/study runs/study-big [--check runs/study-check] --out key.png

Left: every grid run's loss against its compute (faded), each budget's lowest run, approach 3's compute-optimal loss
L_opt(C) fitted to the grid with its 90% bootstrap band, extrapolated past the grid, and the run at 4x the largest
budget: measured (star) and predicted at its own (N, D) with the law's interval. Right (with --check): the residual
check's runs, each beside the grid run it varies (same N and tokens: lr halved or doubled, batch divided by 4), and
the law's prediction for that (N, D).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # bench.residual_check_eval, run as a script

from analysis import results  # noqa: E402
from analysis.laws import approach3  # noqa: E402
from bench.residual_check_eval import grid_twin  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("study")
    ap.add_argument("big")
    ap.add_argument("--check")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    res = results.load(a.study)
    cfg = res.fit_config(n_bootstrap=a.bootstrap)
    grid = approach3.usable(res.runs, cfg).reset_index(drop=True)
    law = approach3.fit(grid, cfg)
    big = results.load(a.big).runs.iloc[0]
    fig, axes = plt.subplots(1, 2 if a.check else 1, figsize=(13 if a.check else 7, 4.8), squeeze=False)
    ax = axes[0, 0]
    budgets = sorted(grid["budget"].unique())
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(budgets)))
    for b, col in zip(budgets, colors):
        g = grid[grid["budget"] == b]
        ax.scatter(g[cfg.c_col], g["loss"], s=14, color=col, alpha=0.35)
        best = g.loc[g["loss"].idxmin()]
        ax.scatter(best[cfg.c_col], best["loss"], s=40, color=col, edgecolor="k", zorder=3,
                   label=f"C = {b:.2g}: lowest run")
    C = np.geomspace(min(budgets) * 0.8, big[cfg.c_col] * 1.5, 80)
    lo, hi = law.interval("loss_opt", C)
    ax.plot(C, law.loss_opt(C), color="C0", label=f"approach 3 L_opt(C), {law.n_runs} grid runs")
    ax.fill_between(C, lo, hi, color="C0", alpha=0.15, label="90% bootstrap interval")
    p = float(law.predict(big[cfg.n_col], big["tokens"]))
    plo, phi = law.interval("predict", np.array([big[cfg.n_col]]), np.array([big["tokens"]]))
    ax.errorbar(big[cfg.c_col] * 1.04, p, yerr=[[p - plo[0]], [phi[0] - p]], fmt="o", color="C0", capsize=4,
                label=f"predicted for the 4x run {p:.4f} [{plo[0]:.3f}, {phi[0]:.3f}]")
    ax.scatter(big[cfg.c_col], big["loss"], marker="*", s=220, color="C3", edgecolor="k", zorder=4,
               label=f"measured {big['loss']:.4f} ({big['loss'] / p - 1:+.2%})")
    ax.axvspan(min(budgets) * 0.8, max(budgets) * 1.25, color="0.9", zorder=0)
    ax.set(xscale="log", xlabel="training compute C (FLOPs)", ylabel="held-out loss (natural mixture)",
           title=f"GPU study: {len(grid)} grid runs and the 4x run (one H200)")
    ax.set_ylim(1.3, min(5.0, grid["loss"].max() * 1.05))
    ax.legend(fontsize=7, loc="upper right")
    if a.check:
        ax = axes[0, 1]
        check = results.load(a.check).runs
        for i, depth in enumerate(sorted(check["n_layers"].astype(int).unique())):
            mine = check[check["n_layers"] == depth]
            tokens = float(mine["tokens"].median())
            t = grid_twin(grid, depth, tokens)
            if t is None:
                continue
            pts = [("grid run", t["loss"], "0.3")]
            for r in mine.itertuples():
                if not np.isclose(r.lr, t["lr"]):
                    pts.append((f"lr x{r.lr / t['lr']:.2g}", r.loss, "C1"))
                elif r.batch_tokens != t["batch_tokens"]:
                    pts.append((f"batch /{t['batch_tokens'] / r.batch_tokens:.0f} ({r.steps} steps)", r.loss, "C2"))
            x0 = i * (len(pts) + 1.5)
            for j, (lab, y, col) in enumerate(pts):
                ax.bar(x0 + j, y, color=col, alpha=0.7)
                ax.text(x0 + j, y + 0.03, f"{y:.2f}", ha="center", fontsize=7)
                ax.text(x0 + j, 0.1, lab, rotation=90, ha="center", va="bottom", fontsize=7, color="w")
            pred = float(law.predict(t[cfg.n_col], tokens))
            ax.hlines(pred, x0 - 0.5, x0 + len(pts) - 0.5, color="C0", ls="--")
            ax.text(x0 + (len(pts) - 1) / 2, -0.35, f"L{depth}-d{int(t['d_model'])}, {tokens / 1e6:.0f}M tokens,\n"
                    f"{int(t['steps'])} steps at batch {int(t['batch_tokens'])}", ha="center", fontsize=8)
        ax.plot([], [], color="C0", ls="--", label=f"the law's prediction ({len(grid)} grid runs)")
        ax.set(ylabel="held-out loss", xticks=[], title="Residual check: the short runs are step-limited")
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
