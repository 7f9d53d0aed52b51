"""Seed noise, the objective's spread and the held-out Spearman ceiling of mixture designs, measured on the CPU.

One sweep holds every design's mixtures (several draws of each: grid.mixtures.seed), trained at seed 0 and some at
seed 1 too (runs shared between designs, e.g. pure,
uniform and natural, are trained once: same run id). Per design (a Dirichlet concentration range around the natural
mixture, drawn as sweeps/grids.py draws it) this prints:
  - seed noise: sd of one run's objective about its mixture's mean, pooled over every mixture of the sweep with
    2 seeds (dof: their number);
  - spread: sd of the true objective over the design's interior mixtures (var of seed 0's values - noise^2);
  - split-half Spearman (designs trained at seeds 0 and 1): seed 0 against seed 1 over the interior mixtures, beside
    what the attenuation formula predicts for it (two noisy measurements: r = R, the one-run reliability);
  - the law (fit(..., "natural"), auto family) on seed 0 only (one run a mixture, as the default design trains):
    held-out mean error and Spearman, and the ceiling an exact law expects there (mixing_ceiling);
  - the same on both seeds (each mixture's mean: half the noise variance);
  - with --per-size LAW (a sweep over sizes, e.g. the CPU study of record): per (N, D) the law's held-out error
    and Spearman beside the ceiling from that size's replicates, and whose a low Spearman is;
  - with --plan LO,HI, the planner: a pilot law fitted on one design's runs predicts each design's spread and
    ceiling before its runs (mixing_ceiling.for_design), to compare with the measured ones.

    # the runs (bench/README.md, "Mixing: the Spearman ceiling"): for each concentration range C
    SCALEMIX_RUNS=/tmp/m24runs python sweep.py +grid=mixture grid.name=m24 scale.mixture_depth=2 \
        scale.mixture_tokens=60000 train.runtime.device=cpu eval.points=1 'grid.seeds=[0,1]' \
        grid.mixtures.concentration=C
    PYTHONPATH=$PWD python bench/mixing_ceiling.py /tmp/m24runs/m24 --designs '0.5,5' '0.1,1' --draw-seeds 0 1 2
"""
from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import results  # noqa: E402
from analysis.laws import mixing_ceiling as mc  # noqa: E402
from analysis.laws.mixing import W_PREFIX, MixingConfig, domains_of, fit, make_objective  # noqa: E402
from sweeps import grids  # noqa: E402


def design_mixtures(conc: tuple[float, float], domains: list[str], natural: dict, samples_per_domain: int,
                    seed: int, select: str = "iid") -> np.ndarray:
    """[m, K] the design's mixtures, as +grid=mixture draws them (Dirichlet around natural + pure + uniform +
    natural; select: iid, the design before 2026-12-02, or spread), in `domains` order."""
    cfg = {"kind": "dirichlet", "center": "natural", "natural": natural, "concentration": list(conc),
           "samples_per_domain": samples_per_domain, "seed": seed, "select": select, "include_pure": True,
           "include_uniform": True, "include_natural": True}
    errors: list[str] = []
    mixes = grids.mixtures(cfg, domains, errors)
    if errors:
        raise SystemExit("\n".join(errors))
    return np.array([[dict(m.weights).get(d, 0.0) for d in domains] for m in mixes])


def rows_of(runs: pd.DataFrame, W: np.ndarray, domains: list[str]) -> pd.DataFrame:
    """The runs whose training mixture is one of W's (to the grid's 6 decimals)."""
    R = runs[[W_PREFIX + d for d in domains]].fillna(0.0).to_numpy(float)
    hit = (np.abs(R[:, None, :] - W[None]).max(2) < 2e-6).any(1)
    return runs[hit]


def seed_noise(runs: pd.DataFrame, domains: list[str]) -> tuple[float, int]:
    """(sd of one run's natural objective about its mixture's mean, dof), pooled over every mixture with 2+ seeds."""
    y = pd.Series(make_objective("natural", runs, domains, None).value(runs))
    key = pd.Series([tuple(w) for w in np.round(runs[[W_PREFIX + d for d in domains]].fillna(0.0).to_numpy(), 5)])
    g = y.groupby(key)
    dof = int((g.size() - 1).sum())
    return float(np.sqrt(((y - g.transform("mean")) ** 2).sum() / dof)), dof


def one_design(runs: pd.DataFrame, name: str, domains: list[str], cfg: MixingConfig, noise: float,
               dof: int) -> dict:
    obj = make_objective("natural", runs, domains, None)
    W = runs[[W_PREFIX + d for d in domains]].fillna(0.0).to_numpy(float)
    t = pd.DataFrame({"key": [tuple(np.round(w, 5)) for w in W], "seed": runs["seed"].to_numpy(),
                      "y": obj.value(runs), "interior": W.max(1) < 1 - 1e-6})
    wide = t[t["interior"]].pivot_table(index="key", columns="seed", values="y")
    s0 = wide[0].dropna()
    spread = math.sqrt(max(float(np.var(s0, ddof=1)) - noise ** 2, 0.0))
    rel1 = spread ** 2 / (spread ** 2 + noise ** 2)                     # one run's reliability
    out = {"design": name, "mixtures": t["key"].nunique(), "interior": len(s0), "mean objective": float(s0.mean()),
           "seed noise (pooled)": noise, "noise dof": dof, "spread": spread, "spread/noise": spread / noise,
           "reliability 1 seed": rel1}
    both = wide.dropna()
    if 1 in wide and len(both) > 2:
        out.update({"split-half rho": float(spearmanr(both[0], both[1]).statistic),
                    "split-half predicted": mc.expected_spearman(rel1, len(both))})
    parts = [("1 seed", runs[runs["seed"] == 0])] + ([("2 seeds", runs)] if 1 in wide and wide[1].notna().all() else [])
    for label, part in parts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law = fit(part.reset_index(drop=True), "natural", config=cfg)
        row = law.cv.set_index("family").loc[law.family]
        h = mc._heldout_means(law)
        seeds = float(len(h) / (1 / h["runs"]).sum())
        sp = math.sqrt(max(float(np.var(h["measured"], ddof=1)) - noise ** 2 / seeds, 0.0))
        c = mc.ceiling(sp, noise / math.sqrt(seeds), len(h), seeds=seeds, noise_dof=dof,
                       truth=h["measured"].to_numpy(float))
        out.update({f"{label}: law": law.family, f"{label}: error": float(row["mean_rel_error"]),
                    f"{label}: rho": float(row["spearman"]), f"{label}: ceiling": c.expected,
                    f"{label}: ceiling range": f"{c.lo:.2f}-{c.hi:.2f}", f"{label}: conditional": c.conditional,
                    f"{label}: conditional range": f"{c.cond_lo:.2f}-{c.cond_hi:.2f}",
                    f"{label}: whose": ("design" if row["spearman"] >= c.range[0] else "law"
                                        if row["spearman"] < c.lo_noisy else "undecided"),
                    f"{label}: P(>=0.9)": c.p_target, f"{label}: both targets": bool(
                        row["mean_rel_error"] <= 0.01 and row["spearman"] >= 0.9)})
    return out


def per_size(runs: pd.DataFrame, law_name: str, cfg: MixingConfig) -> pd.DataFrame:
    """Per (N, D) of a sweep over sizes (e.g. bench/cpu_mixing_study.sh's): the law fitted at that size alone, its
    held-out error and Spearman, and the ceiling from that size's seed replicates (mixing_ceiling.from_heldout)."""
    rows = []
    for (n, d), g in runs.groupby([cfg.n_col, cfg.d_col]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law = fit(g.reset_index(drop=True), "natural", law=law_name, config=cfg)
        cv = law.cv.set_index("family").loc[law.family]
        c = mc.from_heldout(law)
        row = {"N": n, "D": d, "law": law.family, "error": cv["mean_rel_error"], "rho": cv["spearman"]}
        if c is not None:
            row.update({"seed noise": c.seed_noise, "dof": c.noise_dof, "spread": c.spread_sd, "R": c.reliability,
                        "ceiling": c.expected, "range": f"{c.lo:.2f}-{c.hi:.2f}", "conditional": c.conditional,
                        "conditional range": "{:.2f}-{:.2f}".format(*c.range),
                        "at noise CI": "{:.2f}-{:.2f}".format(*c.expected_noise_ci), "seeds for 0.9": c.seeds_for_target,
                        "whose": ("design" if cv["spearman"] >= c.range[0] else "law" if cv["spearman"] < c.lo_noisy
                                  else "undecided (more replicates)")})
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", help="the sweep dir holding every design's runs at seeds 0 and 1")
    ap.add_argument("--designs", nargs="+", default=["0.5,5"], help="concentration ranges lo,hi (grid.mixtures.)")
    ap.add_argument("--samples-per-domain", type=int, default=4)
    ap.add_argument("--draw-seeds", type=int, nargs="+", default=[0], help="grid.mixtures.seed values swept")
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--plan", metavar="LO,HI",
                    help="also the planner: fit the law on this design's draw-0 runs at seed 0 (the pilot) and predict "
                         "every design's ceiling from it (mixing_ceiling.for_design), beside what was measured")
    ap.add_argument("--per-size", metavar="LAW",
                    help="instead: per (N, D) of a sweep over sizes, the law LAW (ye, auto, ...) fitted at each size and "
                         "its ceiling from that size's replicates (the CPU study of record)")
    ap.add_argument("--csv", help="write the table here too")
    a = ap.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = results.load(a.sweep).runs
    cfg = MixingConfig(n_bootstrap=a.bootstrap, recommend_resamples=10)
    if a.per_size:
        table = per_size(runs, a.per_size, cfg)
        with pd.option_context("display.max_columns", None, "display.width", 250, "display.float_format",
                               "{:.4g}".format):
            print(table.to_string(index=False))
        if a.csv:
            table.to_csv(a.csv, index=False)
        return
    domains = domains_of(runs)
    natural = {d: float(runs[f"corpus_tokens_{d}"].iloc[0]) for d in domains}
    total = sum(natural.values())
    natural = {d: v / total for d, v in natural.items()}
    noise, dof = seed_noise(runs, domains)
    rows = []
    for spec in a.designs:
        lo, hi = (float(x) for x in spec.split(","))
        for draw in a.draw_seeds:
            W = design_mixtures((lo, hi), domains, natural, a.samples_per_domain, draw)
            part = rows_of(runs, W, domains)
            if len(part[part["seed"] == 0]) < len(W):
                raise SystemExit(f"design {spec}, draw {draw}: {len(part[part['seed'] == 0])} of its {len(W)} "
                                 f"mixtures are trained at seed 0 in {a.sweep}: run its sweep first")
            rows.append(one_design(part, f"[{lo:g}, {hi:g}] draw {draw}", domains, cfg, noise, dof))
    if a.plan:
        lo, hi = (float(x) for x in a.plan.split(","))
        pilot = rows_of(runs, design_mixtures((lo, hi), domains, natural, a.samples_per_domain, 0), domains)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law = fit(pilot[pilot["seed"] == 0].reset_index(drop=True), "natural", config=cfg)
        for row in rows:
            spec, draw = row["design"].split(" draw ")
            lo_d, hi_d = (float(x) for x in spec.strip("[]").split(","))
            W = design_mixtures((lo_d, hi_d), domains, natural, a.samples_per_domain, int(draw))
            c = mc.for_design(law, W, seeds=1, seed_noise=noise)
            row.update({"planned (pilot law): spread": c.spread_sd, "planned: ceiling": c.expected,
                        "planned: range": f"{c.lo:.2f}-{c.hi:.2f}", "planned: conditional": c.conditional,
                        "planned: conditional range": f"{c.cond_lo:.2f}-{c.cond_hi:.2f}"})
    table = pd.DataFrame(rows).set_index("design").T
    with pd.option_context("display.max_rows", 100, "display.max_columns", None, "display.width", 250, "display.float_format", "{:.4g}".format):
        print(table)
    if a.csv:
        table.to_csv(a.csv)


if __name__ == "__main__":
    main()
