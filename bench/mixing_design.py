"""Which mixture-grid design meets the held-out-mixture targets (<= 1% mean relative error, Spearman >= 0.9)?

    python bench/mixing_design.py runs/mixfit --replicates runs/mixfit_seed1 [--sims 20]

A simulation calibrated on measured runs: the Ye et al. law fitted to the sweep's runs stands in for the truth,
and the per-domain seed noise (pooled standard deviation of log loss over the replicate runs: the same mixture,
another seed) is added to every simulated run. Each design draws its mixtures the way +grid=mixture does
(sweeps.grids.dirichlet_mixtures: Dirichlet around the natural mixture, concentration log-uniform in [0.5, 5]),
optionally adds the pure mixtures, averages `seeds` runs per mixture, fits analysis.laws.mixing.fit (law="auto",
no bootstrap) and reads its k-fold held-out-mixture error and Spearman. The mean and the 10-90% range over
`sims` simulated sweeps are printed per design, with the CPU cost in runs.

Limits: the truth is the fitted law itself, so model misfit is not simulated (the measured CV error also holds
the law's misfit); the noise is measured on few replicates (its own interval is printed).
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd
from scipy.stats import chi2

from analysis import results
from analysis.laws.mixing import LOSS_PREFIX, W_PREFIX, MixingConfig, domains_of, fit, natural_proportions
from sweeps.grids import dirichlet_mixtures


def replicate_noise(runs: pd.DataFrame, doms: list[str]) -> tuple[np.ndarray, int]:
    """Per-domain pooled sd of log loss over runs sharing a mixture (seeds), and its degrees of freedom."""
    key = runs[[W_PREFIX + d for d in doms]].round(4).astype(str).agg("|".join, axis=1)
    logs = np.log(runs[[LOSS_PREFIX + d for d in doms]].to_numpy(float))
    ss, dof = np.zeros(len(doms)), 0
    for k in key.unique():
        g = logs[(key == k).to_numpy()]
        if len(g) > 1:
            ss += ((g - g.mean(0)) ** 2).sum(0)
            dof += len(g) - 1
    return (np.sqrt(ss / dof) if dof else np.full(len(doms), np.nan)), dof


def simulate(truth, doms, nat, sd, n_mix, pure, seeds, sims, rng_seed, corners=False):
    out = []
    for s in range(sims):
        mixes = dirichlet_mixtures({"center": "natural", "natural": nat, "samples": n_mix, "seed": 1000 * rng_seed + s},
                                   doms, [])
        W = np.array([[m[d] for d in doms] for m in mixes])
        if pure:
            W = np.vstack([W, np.eye(len(doms))])
        W = np.vstack([W, np.full(len(doms), 1 / len(doms)), [nat[d] for d in doms]])
        L = truth.predict_targets(W)[0]
        rng = np.random.default_rng(s + 7919 * rng_seed)
        noisy = np.exp(np.log(L)[None] + sd * rng.standard_normal((seeds, *L.shape)))
        rows = [{"run_id": f"m{i}-s{k}", **{W_PREFIX + d: W[i, j] for j, d in enumerate(doms)},
                 **{LOSS_PREFIX + d: noisy[k, i, j] for j, d in enumerate(doms)}}
                for k in range(seeds) for i in range(len(W))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law = fit(pd.DataFrame(rows), natural=nat, objective="natural", config=MixingConfig(n_bootstrap=0, cv_corners=corners))
        row = law.cv.set_index("family").loc[law.family]
        out.append((row["mean_rel_error"], row["spearman"]))
    return np.array(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("sweep_dir")
    p.add_argument("--replicates", nargs="*", default=[], help="sweeps with other seeds of some of its mixtures")
    p.add_argument("--sims", type=int, default=20)
    args = p.parse_args()
    runs = pd.concat([results.load(d).runs for d in [args.sweep_dir, *args.replicates]], ignore_index=True)
    doms = domains_of(runs)
    nat = natural_proportions(runs, doms)
    sd, dof = replicate_noise(runs, doms)
    lo, hi = np.sqrt(dof * sd ** 2 / chi2.ppf([[0.95], [0.05]], dof)) if dof else (sd, sd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truth = fit(runs, "natural", law="ye", config=MixingConfig(n_bootstrap=0))
    obj = truth.objective.value(runs)
    t0, c0 = time.perf_counter(), os.times()
    print(f"truth: Ye law fitted to {len(runs)} runs ({truth.cv_summary()}); objective {obj.min():.3f}-{obj.max():.3f}")
    print("seed noise (sd of log loss) per domain: " + ", ".join(
        f"{d} {s:.4f} [{a:.4f}, {b:.4f}]" for d, s, a, b in zip(doms, sd, lo, hi)) + f" ({dof} dof, 90% interval)")
    print(f"{'design':<44} {'runs':>5} {'mean |err| (10-90%)':>26} {'Spearman (10-90%)':>24} {'met':>5}")
    # (Dirichlet samples, pure mixtures added, seeds per mixture, pure mixtures held out in the k-fold check too)
    for n_mix, pure, seeds, corners in [(8, True, 1, True), (8, True, 1, False), (8, False, 1, False),
                                        (16, True, 1, True), (16, True, 1, False), (16, False, 2, False),
                                        (32, False, 1, False), (48, False, 1, False)]:
        r = simulate(truth, doms, nat, sd, n_mix, pure, seeds, args.sims, n_mix, corners)
        e, rho = r[:, 0], r[:, 1]
        n_runs = (n_mix + 2 + pure * len(doms)) * seeds
        met = np.mean((e <= 0.01) & (rho >= 0.9))
        name = f"{n_mix} Dirichlet{' + pure' if pure else ''} + unif/nat x{seeds}{' (pure held out)' if corners else ''}"
        print(f"{name:<44} {n_runs:>5} "
              f"{e.mean():8.3%} ({np.quantile(e, .1):.3%}-{np.quantile(e, .9):.3%}) "
              f"{rho.mean():8.3f} ({np.quantile(rho, .1):.2f}-{np.quantile(rho, .9):.2f}) {met:5.0%}")
    c1 = os.times()
    print(f"simulation: {time.perf_counter() - t0:.0f} s wall, {c1.user - c0.user + c1.system - c0.system:.0f} CPU-s")


if __name__ == "__main__":
    main()
