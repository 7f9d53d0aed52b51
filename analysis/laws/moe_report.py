"""The report's MoE section: dense and MoE at equal compute, observed and as the MoE law predicts.

    section(runs) -> markdown (str); with fig_dir also figures/moe_vs_dense.png

A pure function of the runs table (and of the law fitted to it, or one passed in): which configurations
won at each budget in the runs themselves, then the law's parameters, its dense-equivalent sizes, its
compute-optimal tokens per active parameter, and how much compute a dense model needs to match each MoE.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.laws.common import FitConfig, FitError
from analysis.laws.moe import PARAMS, MoELaw, default_config, experts_and_granularity, fit


def config_name(E: float, G: float) -> str:
    return "dense" if E == 1 else f"E{int(E)} G{G:g}"


def observed_best(runs: pd.DataFrame, cfg: FitConfig) -> pd.DataFrame:
    """Per compute budget (runs grouped by C to 2 significant digits) and configuration: the best loss."""
    t = runs.copy()
    t["E"], t["G"] = experts_and_granularity(t)
    t["C"] = t[cfg.c_col].astype(float).map(lambda c: float(f"{c:.2g}"))
    t["config"] = [config_name(e, g) for e, g in zip(t["E"], t["G"])]
    best = t.loc[t.groupby(["C", "config"])[cfg.loss_col].idxmin()]
    return best[["C", "config", "E", "G", cfg.n_col, "tokens", cfg.loss_col]].sort_values(["C", cfg.loss_col])


def _fmt_ci(v: float, lo: float, hi: float) -> str:
    return f"{v:.4g}" if not np.isfinite(lo) else f"{v:.4g} [{lo:.3g}, {hi:.3g}]"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def section(runs: pd.DataFrame, law: MoELaw | None = None, config: FitConfig | None = None,
            fig_dir: str | Path | None = None) -> str:
    """Markdown for the report (a heading level-2 section). Fits the law unless one is given."""
    cfg = law.config if law is not None else (config or default_config())
    out = ["## Mixture of experts against dense at equal compute", ""]
    if "n_experts" not in runs.columns or not (runs["n_experts"].fillna(0) > 0).any():
        return "\n".join(out + ["No MoE runs in this sweep (run `python sweep.py +grid=moe`)."])
    obs = observed_best(runs, cfg)
    out += ["### Observed: best run per budget and configuration", "",
            f"N = {cfg.n_col}; each cell is the lowest {cfg.loss_col} among the sizes tried at that budget.", ""]
    pivot = obs.pivot(index="config", columns="C", values=cfg.loss_col)
    order = [config_name(e, g) for e, g in sorted({(float(e), float(g)) for e, g in zip(obs["E"], obs["G"])})]
    pivot = pivot.reindex(order)
    out.append(_table(["config"] + [f"C={c:.2g}" for c in pivot.columns],
                      [[name] + [f"{v:.4f}" if np.isfinite(v) else "-" for v in row] for name, row in pivot.iterrows()]))
    if law is None:
        try:
            law = fit(runs, cfg)
        except FitError as e:
            return "\n".join(out + ["", f"The MoE law was not fitted: {e}"])
    out += ["", "### The MoE law", "",
            "L(N, D, E, G) = c + (a + g / G^gamma) E^-delta / N^alpha + b / D^beta: Krajewski et al. (2024)'s "
            "granularity law with Clark et al. (2022)'s expert-count factor (why this form: "
            "`analysis/laws/moe.py`). Dense runs are E = G = 1.", "", f"{cfg.describe()}.", ""]
    out.append(_table(["parameter", "value [CI]"],
                      [[p + (" (held)" if p in law.held else ""), _fmt_ci(getattr(law, p), *law.ci(p))]
                       for p in PARAMS]))
    rms = law.residuals.groupby("E")["residual"].apply(lambda r: float(np.sqrt(np.mean(r ** 2))))
    out += ["", "RMS log residual by E: " + ", ".join(f"E={int(e)}: {v:.4f}" for e, v in rms.items())
            + " (a trend in E or N here is the interaction term the law leaves out)."]
    configs = sorted({(float(e), float(g)) for e, g in zip(law.residuals["E"], law.residuals["G"])})
    budgets = sorted(obs["C"].unique())
    C = budgets[-1]
    out += ["", f"### Predicted compute-optimal models at C = {C:.2g} FLOPs", "",
            "Dense-equivalent N: the dense size with the same predicted loss at the same D (a fixed multiple "
            "of N per configuration). Compute multiplier: the compute a compute-optimal dense model needs to "
            "reach that configuration's optimal loss, over C.", ""]
    rows = []
    for E, G in configs:
        r = law.recommend(C, E, G)
        tpp = r["tokens_per_param"]
        tpp_s = _fmt_ci(tpp, *r["tokens_per_param_ci"]) if "tokens_per_param_ci" in r else f"{tpp:.3g}"
        ratio = r["dense_equivalent_N"] / r["N_opt"]
        ratio_s = _fmt_ci(ratio, *r["dense_equivalent_ratio_ci"]) if "dense_equivalent_ratio_ci" in r \
            else f"{ratio:.3g}"
        rows.append([config_name(E, G), f"{r['N_opt']:.3g}", f"{r['D_opt']:.3g}", tpp_s, f"{r['loss']:.4f}",
                     ratio_s, f"{r['compute_multiplier']:.3g}"])
    out.append(_table(["config", "N_opt (active)", "D_opt", "D/N", "loss", "dense-equivalent N / N",
                       "compute multiplier"], rows))
    best = min(configs, key=lambda eg: law.loss_opt(C, *eg))
    out += ["", f"At C = {C:.2g} the law prefers {config_name(*best)} "
            f"(loss {law.loss_opt(C, *best):.4f} against dense {law.loss_opt(C):.4f}; a dense model would need "
            f"{law.compute_multiplier(C, *best):.3g}x the compute)."]
    out += [f"- warning: {w}" for w in law.warnings]
    if fig_dir is not None:
        path = plot(law, obs, cfg, Path(fig_dir))
        out += ["", f"![MoE against dense]({path.parent.name}/{path.name})"]
    return "\n".join(out)


def plot(law: MoELaw, obs: pd.DataFrame, cfg: FitConfig, fig_dir: Path) -> Path:
    """Best observed loss per budget (points) and the law's compute-optimal loss (lines), per configuration."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    cs = np.geomspace(obs["C"].min() / 2, obs["C"].max() * 4, 60)
    configs = sorted({(float(e), float(g)) for e, g in zip(obs["E"], obs["G"])})
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(configs)))
    for (E, G), color in zip(configs, colors):
        name = config_name(E, G)
        style = dict(color="black", lw=2) if name == "dense" else dict(color=color, lw=1)
        ax.plot(cs, law.loss_opt(cs, E, G), **style, label=name)
        pts = obs[(obs["E"] == E) & (obs["G"] == G)]
        ax.scatter(pts["C"], pts[cfg.loss_col], color=style["color"], s=14)
    ax.set(xscale="log", xlabel=f"compute C ({cfg.c_col})", ylabel=f"{cfg.loss_col}",
           title="Compute-optimal loss: MoE law (lines), best run per budget (points)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = fig_dir / "moe_vs_dense.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
