"""Figures: pure functions of fits and tables, each returning a matplotlib Figure (Agg backend)."""
from __future__ import annotations

import io
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import matplotlib

if "ipykernel" not in sys.modules:   # scripts and reports render off-screen; notebooks keep their inline backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.laws.approach2 import profile  # noqa: E402
from analysis.laws.common import ComputeOptimal, FitConfig, ResampledLaws  # noqa: E402

COLORS = {"approach 1": "#1b9e77", "approach 2": "#d95f02", "approach 3": "#7570b3"}
plt.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
                     "axes.spines.right": False, "font.size": 10, "legend.frameon": False})


def png_bytes(figs: list, processes: int = 1) -> list[bytes]:
    """Each figure (a Figure, or a function making one) as PNG bytes (tight bounding box), closed afterwards. Making
    and drawing them is most of a report's time after the fits (text layout, mathtext tick labels): with processes > 1
    and the fork start method, forked workers make and draw them (they inherit the figures and functions; only the
    bytes come back). The bytes are the same either way."""
    processes = min(processes, len(figs), os.cpu_count() or 1)
    if processes > 1 and "fork" in multiprocessing.get_all_start_methods():
        global _TO_DRAW
        _TO_DRAW = figs
        try:
            with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
                out = list(pool.map(_png_of, range(len(figs))))
        finally:
            _TO_DRAW = []
    else:
        out = [_png(f) for f in figs]
    for f in figs:
        if not callable(f):
            plt.close(f)
    return out


_TO_DRAW: list = []     # the figures forked workers draw (png_bytes sets it before they fork)


def _png_of(i: int) -> bytes:
    return _png(_TO_DRAW[i])


def _png(fig) -> bytes:
    made = callable(fig)
    fig = fig() if made else fig
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    if made:
        plt.close(fig)
    return buf.getvalue()


def _budget_colors(n: int):
    return plt.cm.viridis(np.linspace(0.05, 0.9, max(n, 1)))


def isoflop(runs: pd.DataFrame, fit: ComputeOptimal, groups: pd.Series) -> plt.Figure:
    """Loss against N on each isoFLOP line, with the fitted profile (parabola, or the law-shaped curve) and its
    minimum: a filled star where sizes bracket it, a hollow one where it is poorly bracketed or extrapolated;
    for the window method the sizes outside the window are drawn faint."""
    cfg = fit.config
    fig, ax = plt.subplots(figsize=(7, 4.5))
    gids = sorted(groups.unique())
    colors = _budget_colors(len(gids))
    pts = fit.points
    for color, gid in zip(colors, gids):
        g = runs[groups == gid]
        C = float(np.exp(np.log(g[cfg.c_col]).mean()))
        row = pts.iloc[(np.log(pts["C"]) - np.log(C)).abs().argmin()] if len(pts) else None
        row = row if row is not None and abs(np.log(row["C"] / C)) < 0.2 else None
        faint = np.zeros(len(g), bool)
        if row is not None and "window_lo" in row and np.isfinite(row["window_lo"]):
            n = g[cfg.n_col].to_numpy(float)
            faint = (n < row["window_lo"] * (1 - 1e-9)) | (n > row["window_hi"] * (1 + 1e-9))
        ax.scatter(g[cfg.n_col][~faint], g[cfg.loss_col][~faint], color=color, s=14 if len(g) > 50 else 22,
                   zorder=3, label=f"C = {C:.2g}")
        if faint.any():
            ax.scatter(g[cfg.n_col][faint], g[cfg.loss_col][faint], color=color, s=14, alpha=0.25, zorder=2)
        if row is not None:
            x = np.linspace(np.log(g[cfg.n_col].min()) - 0.2, np.log(g[cfg.n_col].max()) + 0.2, 100)
            ax.plot(np.exp(x), profile(row, x), color=color, lw=1.2, alpha=0.8)
            good = bool(row.get("bracketed", True))
            ax.scatter([row["N_opt"]], [row["loss_opt"]], color=color if good else "white", marker="*", s=140,
                       edgecolor=color if not good else "k", linewidth=1.2, zorder=4)
            if not bool(row.get("in_fit", True)):      # approach2.mark_in_fit left this budget out of the exponents
                ax.annotate("not used", (row["N_opt"], row["loss_opt"]), textcoords="offset points", xytext=(6, -10),
                            fontsize=7, color=color)
    method = getattr(fit, "method", "parabola")
    what = {"shape": "law-shaped profiles", "window": "parabolas near the minimum", "parabola": "parabolas in log N"}
    what = what.get(method, method)
    by = pts["vertex_by"] if "vertex_by" in pts else None
    if by is not None and (by != "profile").any():     # approach 2 refused the law-shaped vertex of these budgets
        local = int((by != "profile").sum())
        what = ("local parabolas (no law-shaped profile fits the runs)" if local == len(by)
                else f"{what}, {local} of {len(by)} minima from local parabolas")
    ax.set(xscale="log", xlabel=f"N ({cfg.n_col})", ylabel="final held-out loss",
           title=f"IsoFLOP profiles: {what}, minima starred (hollow: poorly bracketed)")
    if "in_fit" in pts and not pts["in_fit"].all():
        ax.set_title(ax.get_title() + "\n'not used': minimum outside the sizes run, left out of the exponents' fit",
                     fontsize=9)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def optimal_vs_compute(fits: list, c_range: tuple[float, float]) -> plt.Figure:
    """N_opt(C) and D_opt(C) of each approach, with bootstrap bands and the points they were fitted to."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    C = np.geomspace(c_range[0] / 3, c_range[1] * 100, 100)
    for fit in fits:
        color = COLORS.get(fit.approach, "k")
        for ax, which in zip(axes, ("n_opt", "d_opt")):
            if isinstance(fit, ComputeOptimal):
                law = getattr(fit, which)
                y, (lo, hi) = law(C), law.interval(C)
                label = f"{fit.approach}: exponent {law.a:.3f}"
                col = {"n_opt": "N_opt", "d_opt": "D_opt"}[which]
                pts = fit.points
                if fit.approach == "approach 1" and len(pts) > 60:
                    pts = pts.iloc[:: max(1, len(pts) // 60)]
                used = pts["in_fit"].to_numpy(bool) if "in_fit" in pts else np.ones(len(pts), bool)
                ax.scatter(pts["C"][used], pts[col][used], color=color, s=10, alpha=0.6)
                if not used.all():         # budgets left out of the exponents' fit (approach2.mark_in_fit): hollow
                    ax.scatter(pts["C"][~used], pts[col][~used], facecolors="none", edgecolors=color, s=14,
                               alpha=0.8, label=f"{fit.approach}: not used (minimum outside the sizes run)")
            else:
                y, (lo, hi) = getattr(fit, which)(C), fit.interval(which, C)
                label = f"{fit.approach}: exponent {fit.a if which == 'n_opt' else fit.b:.3f}"
            ax.plot(C, y, color=color, lw=1.8, label=label)
            if np.isfinite(lo).any():
                ax.fill_between(C, lo, hi, color=color, alpha=0.15, lw=0)
    for ax, name in zip(axes, ("N_opt (parameters)", "D_opt (tokens)")):
        ax.axvspan(*c_range, color="grey", alpha=0.08, lw=0)
        ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel=name)
        ax.legend(fontsize=8)
    axes[0].set_title("Compute-optimal model size (shaded: swept range)")
    axes[1].set_title("Compute-optimal training tokens")
    fig.tight_layout()
    return fig


def loss_surface(law, runs: pd.DataFrame) -> plt.Figure:
    """Contours of the fitted L(N, D), the runs coloured by measured loss, the compute-optimal frontier."""
    cfg: FitConfig = law.config
    N, D, L = (runs[c].to_numpy(float) for c in (cfg.n_col, "tokens", cfg.loss_col))
    n = np.geomspace(N.min() / 2, N.max() * 2, 120)
    d = np.geomspace(D.min() / 2, D.max() * 2, 120)
    NN, DD = np.meshgrid(n, d)
    Z = law.predict(NN, DD)
    fig, ax = plt.subplots(figsize=(7, 5))
    levels = np.unique(np.round(np.quantile(L, np.linspace(0.02, 0.98, 9)), 3))
    cs = ax.contour(NN, DD, Z, levels=levels, cmap="magma_r", vmin=levels.min(), vmax=levels.max(), linewidths=1.0)
    ax.clabel(cs, fontsize=7, fmt="%.3g", inline_spacing=2)
    sc = ax.scatter(N, D, c=L, cmap="magma_r", vmin=levels.min(), vmax=levels.max(), edgecolor="k", s=30, zorder=3)
    C = np.geomspace(law.k * n.min() * d.min(), law.k * n.max() * d.max(), 100)
    ok = (law.n_opt(C) >= n.min()) & (law.n_opt(C) <= n.max()) & (law.d_opt(C) >= d.min()) & (law.d_opt(C) <= d.max())
    ax.plot(law.n_opt(C[ok]), law.d_opt(C[ok]), color="#7570b3", lw=2, label="compute-optimal frontier")
    fig.colorbar(sc, ax=ax, label="measured loss")
    ax.set(xscale="log", yscale="log", xlabel=f"N ({cfg.n_col})", ylabel="D (tokens)",
           title="Fitted loss surface L(N, D) (contours) and the runs")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def residuals(law) -> plt.Figure:
    r = law.residuals
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    for ax, col, name in zip(axes, ("C", "N"), ("compute C (FLOPs)", "N (parameters)")):
        ax.scatter(r[col], 100 * r["residual"], s=18, color="#7570b3", edgecolor="k", lw=0.4)
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xscale="log", xlabel=name)
    axes[0].set_ylabel("log(measured / fitted) (%)")
    axes[0].set_title("Approach 3 residuals against compute")
    axes[1].set_title("... and against model size")
    fig.tight_layout()
    return fig


def tokens_per_param(fits: list, c_range: tuple[float, float]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 4))
    C = np.geomspace(c_range[0] / 3, c_range[1] * 100, 100)
    for fit in fits:
        color = COLORS.get(fit.approach, "k")
        if isinstance(fit, ComputeOptimal):
            y = fit.d_opt(C) / fit.n_opt(C)
        else:
            y = fit.d_opt(C) / fit.n_opt(C)
            if len(fit.samples):     # every resample at once ([resamples, C]), not a law object per resample
                laws = ResampledLaws(*(fit.samples.T[:, :, None]), k=fit.k)
                lvl = fit.config.ci_level
                lo, hi = np.nanquantile(laws.d_opt(C) / laws.n_opt(C), [(1 - lvl) / 2, (1 + lvl) / 2], axis=0)
                ax.fill_between(C, lo, hi, color=color, alpha=0.15, lw=0)
        ax.plot(C, y, color=color, lw=1.8, label=fit.approach)
    ax.axhline(20, color="grey", ls="--", lw=1, label="20 tokens/parameter (Chinchilla rule of thumb)")
    ax.axvspan(*c_range, color="grey", alpha=0.08, lw=0)
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel="D_opt / N_opt",
           title="Compute-optimal tokens per parameter")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def domain_losses(runs: pd.DataFrame, cfg: FitConfig, domains: list[str]) -> plt.Figure:
    fig, axes = plt.subplots(1, len(domains), figsize=(4.2 * len(domains) + 1, 3.8), squeeze=False,
                             layout="constrained")
    norm = plt.Normalize(np.log10(runs[cfg.n_col].min()), np.log10(runs[cfg.n_col].max()))
    for ax, dom in zip(axes[0], domains):
        sc = ax.scatter(runs[cfg.c_col], runs[f"loss_{dom}"], c=np.log10(runs[cfg.n_col]), cmap="viridis", norm=norm,
                        s=20, edgecolor="k", lw=0.3)
        ax.set(xscale="log", xlabel="compute C (FLOPs)", ylabel=f"held-out loss on {dom}", title=dom)
    fig.colorbar(sc, ax=axes[0].tolist(), label="log10 N")
    fig.suptitle("Per-domain held-out losses")
    return fig


def lr_sweep(curves: pd.DataFrame, optima: pd.DataFrame, law=None, n_label: str = "N") -> plt.Figure:
    """Left: loss against lr per size (analysis.laws.lr.curves), the chosen lr starred, an optimum at the lr
    grid's edge as a red triangle pointing past the edge. Right: lr_opt against N with the fitted lr law."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    sizes = list(optima[["N", "D"]].itertuples(index=False, name=None))
    colors = _budget_colors(len(sizes))
    several_d = optima["N"].duplicated().any()
    for color, (n, d) in zip(colors, sizes):
        g = curves[(curves["N"] == n) & (curves["D"] == d) & np.isfinite(curves["loss"])]
        label = f"N = {n:.3g}" + (f", D = {d:.3g}" if several_d else "")
        ax.plot(g["lr"], g["loss"], "o-", color=color, ms=4, lw=1.2, label=label)
        o = optima[(optima["N"] == n) & (optima["D"] == d)].iloc[0]
        if o["edge"] in ("high", "low"):
            ax.scatter([o["lr_best"]], [o["loss_best"]], marker=">" if o["edge"] == "high" else "<", s=150,
                       color="#d62728", edgecolor="k", zorder=4)
        elif np.isfinite(o["lr_opt"]):
            ax.scatter([o["lr_opt"]], [o["loss_opt"]], marker="*", s=160, color=color, edgecolor="k", zorder=4)
    ax.set(xscale="log", xlabel="learning rate", ylabel="final held-out loss",
           title="Loss against lr per size (star: chosen lr; red: best at the grid's edge)")
    ax.legend(fontsize=8)
    inside = optima[optima["edge"] == ""]
    edge = optima[optima["edge"].isin(["high", "low"])]
    ax2.scatter(inside["N"], inside["lr_opt"], color="#7570b3", edgecolor="k", s=36, zorder=3,
                label="optimum inside the lr grid")
    for side, marker in (("high", "^"), ("low", "v")):   # pointing to where the true optimum lies
        e = edge[edge["edge"] == side]
        if len(e):
            ax2.scatter(e["N"], e["lr_best"], marker=marker, s=80, color="#d62728", edgecolor="k", zorder=3,
                        label=f"best lr at the grid's {'top' if side == 'high' else 'bottom'} (left out)")
    if law is not None:
        n = np.geomspace(optima["N"].min() / 2, optima["N"].max() * 2, 100)
        lo, hi = law.interval(n)
        ax2.plot(n, law(n), color="#7570b3", lw=1.8, label=f"lr law: {law.k:.3g} N^{law.p:.3f}")
        if np.isfinite(lo).any():
            ax2.fill_between(n, lo, hi, color="#7570b3", alpha=0.15, lw=0)
    ax2.set(xscale="log", yscale="log", xlabel=n_label, ylabel="optimal learning rate",
            title="Optimal lr against model size")
    for axis in (ax2.xaxis, ax2.yaxis):   # a range under a decade labels every minor tick, overlapping
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig
