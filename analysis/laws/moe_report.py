"""The report's MoE section: dense and MoE at equal compute, observed and as the MoE law predicts.

    report_section(ctx)  -> blocks for analysis.report (registered in analysis.report_blocks.SECTIONS when this
                            module is imported; None when the sweep has no MoE run)
    section(runs)        -> the same as markdown (str), standalone; with fig_dir also moe_vs_dense.png

A pure function of the runs table (and of the law fitted to it, or one passed in): which configuration
won at each budget in the runs themselves, then the law's parameters, its dense-equivalent sizes, its
compute-optimal tokens per active parameter, and how much compute a dense model needs to match each MoE.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.laws.common import FitConfig, FitError, unconstrained
from analysis.laws.moe import PARAMS, MoELaw, default_config, experts_and_granularity, fit
from analysis.report_blocks import Figure, Heading, Para, Table, register

TITLE = "Mixture of experts against dense at equal compute"
ACTIVE = ("params_active_nonembedding", "params_active")


def config_name(E: float, G: float) -> str:
    return "dense" if E == 1 else f"E{int(E)} G{G:g}"


def has_moe(runs: pd.DataFrame) -> bool:
    return "n_experts" in runs.columns and bool((runs["n_experts"].fillna(0) > 0).any())


def observed_best(runs: pd.DataFrame, cfg: FitConfig) -> pd.DataFrame:
    """Per compute budget (runs grouped by C to 2 significant digits) and configuration: the best loss."""
    t = runs.copy()
    t["E"], t["G"] = experts_and_granularity(t)
    t["C"] = t[cfg.c_col].astype(float).map(lambda c: float(f"{c:.2g}"))
    t["config"] = [config_name(e, g) for e, g in zip(t["E"], t["G"])]
    best = t.loc[t.groupby(["C", "config"])[cfg.loss_col].idxmin()]
    return best[["C", "config", "E", "G", cfg.n_col, "tokens", cfg.loss_col]].sort_values(["C", cfg.loss_col])


def _ci(v: float, lo: float, hi: float) -> str:
    return f"{v:.4g}" if not np.isfinite(lo) else f"{v:.4g} [{lo:.3g}, {hi:.3g}]"


def fit_config(config: FitConfig) -> FitConfig:
    """The MoE law's conventions under a report's: N counts active parameters (a report under a total or
    non-embedding N switches to active non-embedding; the section says which)."""
    return config if config.n_col in ACTIVE else dataclasses.replace(config, n_col=ACTIVE[0])


def blocks(runs: pd.DataFrame, law: MoELaw | None = None, config: FitConfig | None = None,
           figure: bool = True, failure: str | None = None) -> list[tuple]:
    """The section as neutral blocks: ("heading", text) ("para", text) ("table", df, caption)
    ("figure", name, matplotlib figure, caption). `law`: the MoE law already fitted to `runs` (None: fitted here,
    unless `failure` says why it could not be)."""
    cfg = law.config if law is not None else (config or default_config())
    out: list[tuple] = [("heading", TITLE)]
    if not has_moe(runs):
        return out + [("para", "No MoE runs in this sweep (run `python sweep.py +grid=moe`).")]
    obs = observed_best(runs, cfg)
    pivot = obs.pivot(index="config", columns="C", values=cfg.loss_col)
    order = [config_name(e, g) for e, g in sorted({(float(e), float(g)) for e, g in zip(obs["E"], obs["G"])})]
    pivot = pivot.reindex(order)
    observed = pd.DataFrame({"config": pivot.index})
    for c in pivot.columns:
        observed[f"C={c:.2g}"] = [f"{v:.4f}" if np.isfinite(v) else "-" for v in pivot[c]]
    out.append(("table", observed, f"Observed: the lowest {cfg.loss_col} among the sizes tried at each budget "
                                   f"(N = {cfg.n_col}; E experts, granularity G = ffn_hidden / expert_hidden)"))
    if law is None and failure is None:
        try:
            law = fit(runs, cfg)
        except FitError as e:
            failure = str(e)
    if law is None:
        return out + [("para", f"The MoE law was not fitted: {failure}")]
    out.append(("para", "**MoE law** L(N, D, E, G) = c + (a + g / G^gamma) E^-delta / N^alpha + b / D^beta: "
                        "Krajewski et al. (2024)'s granularity law with Clark et al. (2022)'s expert-count factor "
                        "(why this form: `analysis/laws/moe.py`); dense runs are E = G = 1. " + cfg.describe() + "."))
    params = pd.DataFrame({"parameter": [p + (" (held)" if p in law.held else "") for p in PARAMS],
                           "value [CI]": [_ci(getattr(law, p), *law.ci(p)) for p in PARAMS]})
    out.append(("table", params, f"MoE law parameters ({law.n_runs} runs)"))
    rms = law.residuals.groupby("E")["residual"].apply(lambda r: float(np.sqrt(np.mean(r ** 2))))
    out.append(("para", "RMS log residual by E: " + ", ".join(f"E={int(e)}: {v:.4f}" for e, v in rms.items())
                + " (a trend in E or N would be the interaction term the law leaves out)."))
    configs = sorted({(float(e), float(g)) for e, g in zip(law.residuals["E"], law.residuals["G"])})
    C = float(obs["C"].max())
    rows = []
    for E, G in configs:
        r = law.recommend(C, E, G)
        ratio = r["dense_equivalent_N"] / r["N_opt"]
        rows.append({"config": config_name(E, G), "N_opt (active)": f"{r['N_opt']:.3g}", "D_opt": f"{r['D_opt']:.3g}",
                     "D/N": _ci(r["tokens_per_param"], *r.get("tokens_per_param_ci", (np.nan, np.nan))),
                     "loss": f"{r['loss']:.4f}",
                     "dense-equivalent N / N": _ci(ratio, *r.get("dense_equivalent_ratio_ci", (np.nan, np.nan))),
                     "compute multiplier": f"{r['compute_multiplier']:.3g}"})
    out.append(("table", pd.DataFrame(rows),
                f"Predicted compute-optimal models at C = {C:.2g} FLOPs. Dense-equivalent N: the dense size with the "
                "same predicted loss at the same D. Compute multiplier: the compute a compute-optimal dense model "
                "needs to reach that configuration's optimal loss, over C."))
    best = min(configs, key=lambda eg: law.loss_opt(C, *eg))
    cautions = unconstrained(law.warnings)
    out += [("para", f"**Caution:** {w}.") for w in cautions]
    out.append(("para", f"At C = {C:.2g} the law prefers **{config_name(*best)}** (loss {law.loss_opt(C, *best):.4f} "
                        f"against dense {law.loss_opt(C):.4f}; a dense model would need "
                        f"{law.compute_multiplier(C, *best):.3g}x the compute)."))
    out += [("para", f"Warning: {w}") for w in law.warnings if w not in cautions]
    if figure:
        out.append(("figure", "moe_vs_dense", plot(law, obs, cfg),
                    "Compute-optimal loss per configuration: the MoE law (lines) and the best run per budget (points)."))
    return out


def section(runs: pd.DataFrame, law: MoELaw | None = None, config: FitConfig | None = None,
            fig_dir: str | Path | None = None) -> str:
    """Markdown (a level-2 section), standalone from analysis.report."""
    md = []
    for b in blocks(runs, law, config, figure=fig_dir is not None):
        if b[0] == "heading":
            md.append(f"## {b[1]}\n")
        elif b[0] == "para":
            md.append(b[1] + "\n")
        elif b[0] == "table":
            df = b[1]
            md.append(f"*{b[2]}*\n\n| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
                      + "\n".join("| " + " | ".join(map(str, r)) + " |" for r in df.itertuples(index=False)) + "\n")
        elif b[0] == "figure":
            path = Path(fig_dir) / f"{b[1]}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            b[2].savefig(path, dpi=120)
            import matplotlib.pyplot as plt
            plt.close(b[2])
            md.append(f"![{b[3]}]({path.parent.name}/{path.name})\n")
    return "\n".join(md)


@register
def report_section(ctx):
    """analysis.report section: None (skipped) when the sweep has no MoE run. N is counted as active. The law is
    the one analysis.report.build_context fitted and judged (ctx.fits["moe"]), or its failure; fitted here only
    for a Context built without it."""
    if not has_moe(ctx.results.runs):
        return None
    kinds = {"heading": lambda b: Heading(b[1]), "para": lambda b: Para(b[1]),
             "table": lambda b: Table(b[1], b[2]), "figure": lambda b: Figure(b[1], b[2], b[3])}
    return [kinds[b[0]](b) for b in blocks(ctx.results.runs, law=ctx.fits.get("moe"), config=fit_config(ctx.config),
                                           failure=ctx.failures.get("moe"))]


def plot(law: MoELaw, obs: pd.DataFrame, cfg: FitConfig):
    """Best observed loss per budget (points) and the law's compute-optimal loss (lines), per configuration."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
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
    ax.set(xscale="log", xlabel=f"compute C ({cfg.c_col})", ylabel=cfg.loss_col,
           title="MoE against dense: compute-optimal loss")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
