"""The additive law at one size (E + 1/sum_j C_j w_j^gamma_j) as fitted by analysis/laws/mixing.py's vectorised
Levenberg-Marquardt, checked against slower references (bench/README.md, "the additive law at one size in auto"):

  (a) point fit: per target, the error on log residuals against scipy's least_squares from the same four starts
      (Shukor._one, the size laws' solver), and the CPU time of each;
  (b) k-fold check: held-out predictions with the folds started at the full fit (the default) against cold-started
      folds (four starts each);
  (c) bootstrap: the 5% and 95% quantiles of the objective's prediction at 65 mixtures from the default resample
      fits (ADD_BOOT_STEPS steps from the point fit, float32) against resamples refitted to convergence (200 steps,
      float64), in units of the converged 90% interval's width; and the time for 200 and 1000 resamples.

Tables: RegMix's 512 1M proxies (Pile-CC, and the natural objective over 13 targets), and 500 x 17 generated from
Ye et al.'s law (mixing_bench.py's table, uniform objective).

    python bench/mixing_additive.py [--resamples 100]
"""
from __future__ import annotations

import argparse
import resource
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mixing_public as mp  # noqa: E402

import analysis.laws.mixing as mx  # noqa: E402
from analysis.bootstrap import one_blas_thread, resample_weights  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def arrays(table, objective):
    doms = mx.domains_of(table)
    obj = mx.make_objective(objective, table, doms, None)
    W = table[[mx.W_PREFIX + d for d in doms]].to_numpy(float).copy()
    return W / W.sum(1, keepdims=True), table[obj.columns].to_numpy(float), obj.vector


def log_error(m, th, W, y, S) -> float:
    return float(((np.log(m._pred(th, W, S)) - np.log(y)) ** 2).sum())


def point_fit(W, Y, S) -> None:
    m = mx.Shukor("additive", False, False)
    c0 = cpu()
    th = m.fit(W, Y, S, np.ones((1, len(W))))["theta"][0]
    c1 = cpu()
    ratios = []
    for t in range(Y.shape[1]):
        ref = m._one(W, S, Y[:, t], np.ones(len(W)), m.starts(W, Y[:, t], S))
        ratios.append(log_error(m, th[t], W, Y[:, t], S) / log_error(m, ref, W, Y[:, t], S))
    c2 = cpu()
    print(f"  (a) point fit {c1 - c0:.2f} CPU-s (scipy per target: {c2 - c1:.2f}); error / scipy's per target: "
          f"min {min(ratios):.6f} max {max(ratios):.6f}")


def folds(table, objective) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c0 = cpu()
        warm = mx.fit(table, objective, "additive", config=mx.MixingConfig(n_bootstrap=0))
        c1 = cpu()
        mx.FOLD_WARM_START = False
        cold = mx.fit(table, objective, "additive", config=mx.MixingConfig(n_bootstrap=0))
        c2 = cpu()
        mx.FOLD_WARM_START = True
    dp = np.abs(warm.cv_predictions["predicted"] / cold.cv_predictions["predicted"] - 1).max()
    row = lambda law: law.cv.set_index("family").loc["additive"]            # noqa: E731
    print(f"  (b) k-fold check: warm-started folds {c1 - c0:.2f} CPU-s, cold {c2 - c1:.2f}; mean error "
          f"{row(warm)['mean_rel_error']:.6%} vs {row(cold)['mean_rel_error']:.6%}, Spearman "
          f"{row(warm)['spearman']:.6f} vs {row(cold)['spearman']:.6f}; largest relative difference of a held-out "
          f"prediction {dp:.1e}")


def bootstrap(W, Y, vec, Wp, n: int) -> None:
    S = (np.zeros(len(W)), np.zeros(len(W)))
    m = mx.Shukor("additive", False, False)
    m.fit(W, Y, S, np.ones((1, len(W))))
    R = resample_weights(len(W), n, 0)
    steps, dtype = mx.ADD_BOOT_STEPS, mx.ADD_BOOT_DTYPE
    c0 = cpu()
    th = m._boot_one_size(W, Y, R)
    c1 = cpu()
    mx.ADD_BOOT_STEPS, mx.ADD_BOOT_DTYPE = 200, np.float64
    ref = m._boot_one_size(W, Y, R)
    c2 = cpu()
    mx.ADD_BOOT_STEPS, mx.ADD_BOOT_DTYPE = steps, dtype
    q = lambda t: np.quantile(m.predict({"theta": t}, Wp, S) @ vec, [0.05, 0.95], axis=0)   # noqa: E731
    qr = q(ref)
    err = np.abs(q(th) - qr).max(0) / (qr[1] - qr[0])
    print(f"  (c) {n} resamples: {c1 - c0:.2f} CPU-s ({steps} steps, {np.dtype(dtype).name}), converged reference "
          f"{c2 - c1:.1f} CPU-s; quantile error / interval width over {len(Wp)} mixtures: median {np.median(err):.3f}, "
          f"max {err.max():.3f}")
    for b in (200, 1000):
        Rb = resample_weights(len(W), b, 1)
        c0 = cpu()
        m._boot_one_size(W, Y, Rb)
        print(f"      {b} resamples x {Y.shape[1]} targets: {cpu() - c0:.2f} CPU-s")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resamples", type=int, default=100, help="resamples compared with converged refits in (c)")
    args = ap.parse_args(argv)
    train, test = mp.load("train"), mp.load("test_1m")
    Wt = test[[c for c in sorted(test.columns) if c.startswith(mx.W_PREFIX)]].to_numpy(float)
    Wt = np.vstack([Wt[:64] / Wt[:64].sum(1, keepdims=True), np.full(17, 1 / 17)])
    ye, _ = mx.synthetic_ye_table(500, 17, noise=0.003, seed=0)
    cases = [("RegMix 512 x 17, Pile-CC", train, "pile_cc", Wt),
             ("RegMix 512 x 17, natural (13 targets)", train, mp.natural_objective(train), Wt),
             ("Ye-law table 500 x 17, uniform (17 targets)", ye, "uniform",
              np.random.default_rng(1).dirichlet(np.ones(17), 65))]
    with one_blas_thread():
        for name, table, objective, Wp in cases:
            print(name)
            W, Y, vec = arrays(table, objective)
            point_fit(W, Y, (np.zeros(len(W)), np.zeros(len(W))))
            folds(table, objective)
            bootstrap(W, Y, vec, Wp, args.resamples)


if __name__ == "__main__":
    main()
