"""Equality check of two versions of the mixing laws: fit() on the tests' synthetic tables and the benchmark's 500 x 17
tables, saved by one tree and compared with another's.

    PYTHONPATH=<tree A> python bench/mixing_snapshot.py save A.pkl     # in each tree (e.g. main in a detached worktree)
    PYTHONPATH=<tree B> python bench/mixing_snapshot.py save B.pkl
    python bench/mixing_snapshot.py compare A.pkl B.pkl

Saved per table: law="auto"'s family and k-fold table (every family's held-out mean / max relative error and
Spearman), its predictions at 20 of the table's mixtures and 90% intervals there and at uniform weights (1000 resamples
on the 500 x 17 tables, 200 on the others), and the point fits of ye, power and additive alone (predictions at the same
mixtures). compare prints, per table, the families chosen, whether the k-fold ranking is the same, the largest
relative and absolute change of a k-fold mean error, of a prediction, of a point fit, and the largest interval-end
change as a fraction of that interval's width; then, per (family, k-fold column), the largest change over the tables.
"""
from __future__ import annotations

import argparse
import pickle
import warnings

import numpy as np

N, D = 1e6, 1e8


def tables() -> dict:
    from analysis.laws.mixing import synthetic_joint_table, synthetic_power_table, synthetic_ye_table
    return {
        "ye60x5s1": synthetic_ye_table(60, 5, noise=0.002, seed=1)[0],
        "ye40x4s3": synthetic_ye_table(40, 4, noise=0.0, seed=3)[0],
        "ye200x12s4": synthetic_ye_table(200, 12, noise=0.003, seed=4)[0],
        "add40x4s0": synthetic_joint_table(40, 4, [(N, D)], noise=0.0, seed=0)[0],
        "add80x4s1": synthetic_joint_table(80, 4, [(N, D)], noise=0.001, seed=1)[0],
        "add60x6s4": synthetic_joint_table(60, 6, [(N, D)], noise=0.003, seed=4)[0],
        "add120x6s5": synthetic_joint_table(120, 6, [(N, D)], noise=0.003, seed=5)[0],
        "pow40x4s0": synthetic_power_table(40, 4, noise=0.0, seed=0)[0],
        "pow80x4s1": synthetic_power_table(80, 4, noise=0.001, seed=1)[0],
        "pow60x6s2": synthetic_power_table(60, 6, noise=0.003, seed=2)[0],
        "pow120x6s3": synthetic_power_table(120, 6, noise=0.003, seed=3)[0],
        "ye60x4s0": synthetic_ye_table(60, 4, noise=0.002, seed=0)[0],
        "ye60x4s3": synthetic_ye_table(60, 4, noise=0.002, seed=3)[0],
        "bench_ye": synthetic_ye_table(500, 17, noise=0.003, seed=0)[0],
        "bench_additive": synthetic_joint_table(500, 17, [(N, D)], noise=0.003, seed=0)[0],
        "bench_power": synthetic_power_table(500, 17, noise=0.003, seed=0)[0],
    }


def save(path: str) -> None:
    from analysis.laws.mixing import MixingConfig, fit
    out = {}
    for name, t in tables().items():
        W = t[[c for c in t.columns if c.startswith("w_")]].to_numpy()[:20]
        W = W / W.sum(1, keepdims=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law = fit(t, "uniform", config=MixingConfig(n_bootstrap=1000 if name.startswith("bench") else 200,
                                                        recommend_resamples=0))
            lo, hi = law.interval(np.vstack([np.full(W.shape[1], 1 / W.shape[1]), W]))
            rec = {"family": law.family, "cv": law.cv.copy(), "pred": law.predict(W), "ci": (lo, hi)}
            for fam in ("ye", "power", "additive"):
                rec["point_" + fam] = fit(t, "uniform", law=fam, config=MixingConfig(n_bootstrap=0)).predict(W)
        out[name] = rec
        print(name, law.family, flush=True)
    with open(path, "wb") as f:
        pickle.dump(out, f)


def compare(path_a: str, path_b: str) -> None:
    with open(path_a, "rb") as f:
        a = pickle.load(f)
    with open(path_b, "rb") as f:
        b = pickle.load(f)
    worst = {}
    for k in a:
        x, y = a[k], b[k]
        ca, cb = x["cv"].set_index("family"), y["cv"].set_index("family")
        d_rel = (cb["mean_rel_error"] / ca["mean_rel_error"] - 1).abs()
        d_abs = (cb["mean_rel_error"] - ca["mean_rel_error"]).abs()
        same = list(x["cv"]["family"]) == list(y["cv"]["family"])
        width = x["ci"][1] - x["ci"][0]
        with np.errstate(invalid="ignore", divide="ignore"):
            d_ci = np.nanmax(np.maximum(np.abs(y["ci"][0] - x["ci"][0]), np.abs(y["ci"][1] - x["ci"][1])) / width)
        points = " ".join(f"{f}:{np.abs(y['point_' + f] / x['point_' + f] - 1).max():.0e}"
                          for f in ("ye", "power", "additive"))
        print(f"{k:15s} {x['family']:>9s} -> {y['family']:<9s} ranking {'same' if same else 'DIFFERENT'}; k-fold mean "
              f"error rel {d_rel.max():.1e} ({d_rel.idxmax()}), abs {d_abs.max():.1e}; predictions "
              f"{np.abs(y['pred'] / x['pred'] - 1).max():.0e}; intervals {d_ci:.1e} of the width; point fits {points}")
        for fam in ca.index:
            for col in ("mean_rel_error", "max_rel_error", "spearman"):
                r = abs(cb.loc[fam, col] / ca.loc[fam, col] - 1)
                if (fam, col) not in worst or r > worst[fam, col][0]:
                    worst[fam, col] = (r, abs(cb.loc[fam, col] - ca.loc[fam, col]), k)
    print("largest change per (family, k-fold column) over the tables:")
    for (fam, col), (r, d, k) in sorted(worst.items()):
        print(f"  {fam:9s} {col:15s} rel {r:.1e} abs {d:.1e} ({k})")


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("save").add_argument("path")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    args = p.parse_args()
    save(args.path) if args.cmd == "save" else compare(args.a, args.b)


if __name__ == "__main__":
    main()
