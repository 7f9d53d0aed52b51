"""Which mixture design meets issue 13's held-out targets (<= 1% mean relative error, Spearman >= 0.9) for ANY draw
seed? A simulation on the CPU default size's measured runs, no training.

    python bench/mixing_design_sim.py [--sims 200] [--truths additive,power]      # the demo corpus (K = 4)
    python bench/mixing_design_sim.py --domains 8 --sims 40                         # a synthetic K-domain truth
    python bench/mixing_design_sim.py --real-pool --sims 200                        # the measured mixtures as truth

Truth: a law fitted to every run of bench/results/mixing_cpu_default_2026-12-02.csv (124 runs, 98 interior mixtures;
"additive" and "power", the two auto picks there) gives each mixture's per-domain losses. Noise: each simulated run
gets one of the measured seed-noise vectors (per-domain log loss, seed 1 minus seed 0 over draw 0's 22 mixtures,
divided by sqrt 2, random sign), so the noise keeps its correlation across domains (objective noise 0.76%). A design
is drawn by sweeps.grids.mixtures exactly as `+grid=mixture` draws it (draw seed s = grid.mixtures.seed), one run a
mixture; the check is the report's: fit(table, "natural"), law auto, 5-fold held-out interior mixtures, no bootstrap.
Per design: mean and 90th percentile of the held-out error, mean and 10th percentile of the Spearman, and the
fraction of draw seeds meeting each target and both.

--domains K: a synthetic power-law truth (analysis.laws.mixing.synthetic_power_table's parameters, seed 0) over K
domains with natural proportions Dirichlet(2) (seed 0), objective noise 0.76% (common to every domain): whether the
rule keeps its advantage over iid samples at other K (the demo corpus's numbers are not used).

--real-pool: no law as the truth. The candidates are the measured mixtures themselves (every seed-0 interior mixture
of the CPU default's two CSVs, mixing_cpu_default_ and mixing_cpu_spread_2026-12-02.csv: 229), so a law's real misfit
and the real seed noise are in the check. Per draw seed: a random half of them are the candidates, from which the rule
(sweeps.grids.spread_subset) or a random choice takes samples_per_domain x K, plus the measured pure, uniform and
natural runs; then the same fit. Coarser than the sampler (114 candidates instead of 50 x the samples; the pool holds
the earlier designs' mixtures, so a random choice from it is not quite iid Dirichlet samples).

Limits: the truth is a smooth law, so a real law's misfit (largest on lopsided mixtures: bench/README.md, "a power
law in effective data") is not simulated but by --real-pool; the real runs of the chosen design check that.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.laws import mixing as mx  # noqa: E402
from sweeps import grids  # noqa: E402

CSV = Path(__file__).resolve().parent / "results" / "mixing_cpu_default_2026-12-02.csv"
SPREAD_CSV = CSV.with_name("mixing_cpu_spread_2026-12-02.csv")
NOISE = 0.0076            # the objective's measured relative seed noise at the CPU default size (--domains)
# (name, select, samples_per_domain, concentration): the old default, and the candidates
DESIGNS = [("iid [0.5, 5], 4/domain (old default)", "iid", 4, (0.5, 5.0)),
           ("iid [0.5, 5], 6/domain", "iid", 6, (0.5, 5.0)),
           ("iid [0.1, 1], 4/domain", "iid", 4, (0.1, 1.0)),
           ("spread [0.5, 5], 4/domain", "spread", 4, (0.5, 5.0)),
           ("spread [0.5, 5], 5/domain", "spread", 5, (0.5, 5.0)),
           ("spread [0.5, 5], 6/domain (new default)", "spread", 6, (0.5, 5.0))]


def design(select: str, spd: int, conc, doms: list[str], nat: dict, seed: int) -> np.ndarray:
    cfg = {"kind": "dirichlet", "center": "natural", "natural": nat, "concentration": list(conc), "select": select,
           "samples_per_domain": spd, "seed": seed, "include_pure": True, "include_uniform": True,
           "include_natural": True}
    errors: list[str] = []
    mixes = grids.mixtures(cfg, doms, errors)
    if errors:
        raise SystemExit("\n".join(errors))
    return np.array([[dict(m.weights).get(d, 0.0) for d in doms] for m in mixes])


def measured_truths(names: list[str]):
    table = pd.read_csv(CSV)
    doms = mx.domains_of(table)
    runs = table.drop_duplicates("run_id").drop(columns=["draw", "samples_per_domain"])
    ct = np.array([runs[mx.TOKENS_PREFIX + d].iloc[0] for d in doms], float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        laws = {n: mx.fit(runs, "natural", law=n, config=mx.MixingConfig(n_bootstrap=0)) for n in names}
    d0 = table[(table["samples_per_domain"] == 4) & (table["draw"] == 0)]
    key = d0[[mx.W_PREFIX + d for d in doms]].round(5).astype(str).agg("|".join, axis=1)
    res = []
    for _, g in d0.groupby(key):
        by = {s: np.log(g.loc[g["seed"] == s, [mx.LOSS_PREFIX + d for d in doms]].to_numpy(float)[0])
              for s in (0, 1) if (g["seed"] == s).any()}
        if len(by) == 2:
            res.append((by[1] - by[0]) / np.sqrt(2))
    truths = {n: (lambda W, law=law: law.predict_targets(W)[0]) for n, law in laws.items()}
    return truths, doms, ct, np.array(res)


def synthetic_truth(K: int):
    _, params = mx.synthetic_power_table(K + 2, K, seed=0)
    C = np.exp(params["logC"])

    def truth(W):
        return params["E"][None] + (W @ C.T) ** -params["alpha"][None]
    nat = np.random.default_rng(0).dirichlet(np.full(K, 2.0))
    return {"power": truth}, list(params["domains"]), nat * 1e6, None


def simulate(truth, W, doms, ct, res, rng) -> tuple[float, float, str]:
    L = truth(W)
    if res is not None:
        noise = res[rng.integers(len(res), size=len(W))] * rng.choice([-1, 1], size=(len(W), 1))
    else:
        noise = NOISE * rng.standard_normal((len(W), 1))
    Y = L * np.exp(noise)
    df = pd.DataFrame({"run_id": [f"m{i}" for i in range(len(W))],
                       **{mx.W_PREFIX + d: W[:, j] for j, d in enumerate(doms)},
                       **{mx.LOSS_PREFIX + d: Y[:, j] for j, d in enumerate(doms)},
                       **{mx.TOKENS_PREFIX + d: ct[j] for j, d in enumerate(doms)}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        law = mx.fit(df, "natural", config=mx.MixingConfig(n_bootstrap=0))
    r = law.cv.set_index("family").loc[law.family]
    return float(r["mean_rel_error"]), float(r["spearman"]), law.family


def real_pool(sims: int, samples_per_domain: int) -> None:
    """--real-pool (module docstring): the rule and a random choice over the measured mixtures."""
    drop = ["draw", "samples_per_domain", "select"]
    t = pd.concat([pd.read_csv(c).drop(columns=drop, errors="ignore") for c in (CSV, SPREAD_CSV)])
    t = t[t["seed"] == 0].drop_duplicates("run_id").reset_index(drop=True)
    doms = mx.domains_of(t)
    W = t[[mx.W_PREFIX + d for d in doms]].to_numpy(float)
    ct = np.array([t[mx.TOKENS_PREFIX + d].iloc[0] for d in doms], float)
    nat = ct / ct.sum()
    fixed = (W.max(1) > 1 - 1e-6) | (np.abs(W - 1 / len(doms)).max(1) < 1e-4) | (np.abs(W - nat).max(1) < 1e-4)
    pool = np.flatnonzero(~fixed)
    n = samples_per_domain * len(doms)
    print(f"real pool: {len(pool)} measured interior mixtures, {int(fixed.sum())} pure/uniform/natural; {sims} draw "
          f"seeds, {n} samples a design")
    for rule in ("random", "spread"):
        out = []
        for s in range(sims):
            rng = np.random.default_rng(s)
            cand = rng.choice(pool, len(pool) // 2, replace=False)
            if rule == "random":
                take = rng.choice(cand, n, replace=False)
            else:
                picked = grids.spread_subset(W[cand], nat, n)
                take = cand[[int(np.flatnonzero(np.abs(W[cand] - w).max(1) == 0)[0]) for w in picked]]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                law = mx.fit(t.iloc[np.r_[take, np.flatnonzero(fixed)]], "natural",
                             config=mx.MixingConfig(n_bootstrap=0))
            r = law.cv.set_index("family").loc[law.family]
            out.append((r["mean_rel_error"], r["spearman"]))
        e, r = np.array(out).T
        print(f"{rule:<8} | err {e.mean():.2%} {np.quantile(e, .9):.2%} {np.mean(e <= 0.01):.2f} | rho {r.mean():.3f} "
              f"{np.quantile(r, .1):.3f} {np.mean(r >= 0.9):.2f} | both {np.mean((e <= 0.01) & (r >= 0.9)):.2f}",
              flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sims", type=int, default=200, help="draw seeds per design (0..sims-1)")
    p.add_argument("--truths", default="additive,power")
    p.add_argument("--domains", type=int, default=None, help="a synthetic truth over this many domains")
    p.add_argument("--designs", default=None, help="comma-separated indices into DESIGNS (default: all)")
    p.add_argument("--real-pool", action="store_true", help="the measured mixtures as the candidates (docstring)")
    p.add_argument("--samples-per-domain", type=int, default=6, help="--real-pool: the design's samples / K")
    a = p.parse_args()
    if a.real_pool:
        return real_pool(a.sims, a.samples_per_domain)
    if a.domains:
        truths, doms, ct, res = synthetic_truth(a.domains)
    else:
        truths, doms, ct, res = measured_truths(a.truths.split(","))
    nat = dict(zip(doms, ct / ct.sum()))
    picks = [DESIGNS[int(i)] for i in a.designs.split(",")] if a.designs else DESIGNS
    t0 = time.perf_counter()
    print(f"K = {len(doms)}, {a.sims} draw seeds a design; error: mean, 90th pct, P(<= 1%); Spearman: mean, 10th pct, "
          "P(>= 0.9); both")
    for tname, truth in truths.items():
        for name, select, spd, conc in picks:
            out = []
            for s in range(a.sims):
                W = design(select, spd, conc, doms, nat, s)
                out.append(simulate(truth, W, doms, ct, res, np.random.default_rng(10_000 + s)))
            e = np.array([o[0] for o in out])
            r = np.array([o[1] for o in out])
            fams = pd.Series([o[2] for o in out]).value_counts().to_dict()
            print(f"truth {tname:<8} {name:<42} runs {len(W):>3} | err {e.mean():.2%} {np.quantile(e, .9):.2%} "
                  f"{np.mean(e <= 0.01):.2f} | rho {r.mean():.3f} {np.quantile(r, .1):.3f} {np.mean(r >= 0.9):.2f} | "
                  f"both {np.mean((e <= 0.01) & (r >= 0.9)):.2f} | auto {fams}", flush=True)
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
