"""What a sweep's approach-3 residuals track: the numbers behind bench/README.md's "GPU study: what the residuals
track" (analysis/diagnose.py on a sweep directory, plus the comparisons the report does not make).

    python bench/residual_diagnosis.py runs/study [--lr-sweep runs/study-lr]

Prints: the diagnosis (rank tests per property, the refit without each property's bad end, the cause named);
leave-one-budget-out errors per budget, for the whole grid and for the runs the diagnosis keeps; approach 3 under
each N convention; the law refitted on subsets by tokens per parameter, steps and epochs; with --lr-sweep, each
size's lr against the lr sweep's best and the sweep's token count per size. Fits without bootstrap.
"""
from __future__ import annotations

import argparse
import dataclasses
import warnings

import numpy as np
import pandas as pd

from analysis import diagnose, noise, results
from analysis.laws import approach3


def rms(x, p: int = 0) -> float:
    x = np.asarray(x, float)
    return float(np.sqrt((x ** 2).sum() / max(len(x) - p, 1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sweep_dir")
    ap.add_argument("--lr-sweep", help="the lr sweep the grid's lrs came from")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    pd.set_option("display.width", 200)
    res = results.load(args.sweep_dir)
    cfg = res.fit_config(n_bootstrap=0)
    runs = approach3.usable(res.runs, cfg).reset_index(drop=True)
    fit = lambda r, c=cfg: approach3.fit(r, c)      # noqa: E731
    law, nz = fit(runs), noise.estimate(runs)
    print(f"{len(runs)} runs; approach 3 RMS {rms(law.residuals['residual'], 5):.2%}; {nz.describe()}")
    d = diagnose.diagnose(runs, law.residuals, nz.sd, cfg.n_col, refit=fit)
    cols = ["key", "rho", "p", "rho_abs", "p_abs", "threshold", "bad_side", "rms_bad", "n_bad", "rms_good", "n_good"]
    print("\nrank tests (in-sample residuals):\n" + d.table[cols].round(3).to_string(index=False))
    print("\nrefits without each property's bad end (threshold: fewest left out within "
          f"{diagnose.PARSIMONY}x of the best kept RMS):")
    for k, f in d.refits.items():
        if f is not None:
            print(f"  {k:<17} {f.side} {f.threshold:.4g}: kept {f.n_kept} RMS {f.rms_kept:.2%}; left out {f.n_left}: "
                  f"mean {f.mean_left:+.2%}, RMS {f.rms_left:.2%}, {f.share_above:.0%} above; separation "
                  f"{f.separation:.2g}")
    print(f"\ncause: {d.cause} (with {d.together}); finding: {d.finding()}\nfix: {d.fix()}")

    props = diagnose.properties(runs, cfg.n_col)
    kept = runs
    if d.named:
        k, side = d.split(d.cause)
        kept = runs[(props[d.cause] > k) if side == "below" else (props[d.cause] <= k)]
    for name, r in (("all runs", runs), (f"runs kept by the diagnosis ({len(kept)})", kept)):
        lobo = diagnose.leave_one_budget_out(r, cfg.n_col, fit)
        g = lobo.groupby("budget")["lobo"]
        print(f"\nleave one budget out, {name}: RMS {rms(lobo['lobo']):.2%}")
        print(pd.DataFrame({"mean": g.mean(), "rms": g.apply(rms)}).map(lambda x: f"{x:+.2%}").to_string())

    print("\nN convention (approach 3 on all runs / on the kept runs):")
    for n_col in ("params_compute", "params_nonembedding", "params_total"):
        c = dataclasses.replace(cfg, n_col=n_col)
        a, b = fit(runs, c), fit(kept, c)
        print(f"  {n_col:<20} RMS {rms(a.residuals['residual'], 5):.2%} a={a.a:.3f} | kept RMS "
              f"{rms(b.residuals['residual'], 5):.2%} a={b.a:.3f} alpha={b.alpha:.3f} beta={b.beta:.3f}")

    print("\nsubsets (runs kept: approach 3 RMS, a):")
    for key, ks in (("tokens_per_param", (2, 4.5, 8)), ("steps", (300, 500, 1000)), ("epochs", (1, 2, 3))):
        for k in ks:
            for keep_side, keep in (("<=", props[key] <= k), (">", props[key] > k)):
                if keep.sum() >= 8:
                    f = fit(runs[keep])
                    print(f"  {key} {keep_side} {k:<5} {int(keep.sum()):>3} runs: RMS {rms(f.residuals['residual'], 5):.2%}"
                          f" a={f.a:.3f}")

    if args.lr_sweep:
        lr = results.load(args.lr_sweep).runs
        best = lr.loc[lr.groupby("n_layers")["loss"].idxmin(), ["n_layers", "lr", "tokens", "loss"]]
        best = best.rename(columns={"lr": "lr_best", "tokens": "sweep_tokens", "loss": "sweep_loss"})
        m = runs.merge(best, on="n_layers", how="left")
        m["lr_ratio"] = m["lr"] / m["lr_best"]
        m["tokens_ratio"] = m["tokens"] / m["sweep_tokens"]
        m = m.merge(law.residuals[["run_id", "residual"]], on="run_id")
        print("\nlr against the lr sweep (per size: the sweep's best lr and its tokens):")
        print(best.to_string(index=False))
        print(m[["n_layers", "budget", "lr", "lr_ratio", "tokens_ratio", "residual"]].sort_values(
            ["n_layers", "budget"]).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
