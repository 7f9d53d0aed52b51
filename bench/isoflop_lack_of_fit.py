"""Approach 2's lack-of-fit test without seed replicates (approach2.lack_of_fit_test against noise.smoother): how often
it refuses the law-shaped profile model chosen on tables drawn from the law (the false refusals; nominal 1%), by
cell, for the smoother's polynomial of degree 2, 3 and 4 in log N; and its p-values on the GPU study's table (its seed
column dropped, and one run a size) and on the public tables.

    python bench/isoflop_lack_of_fit.py --reps 12            # the table in bench/README.md (~10 min, 576 tables)
    python bench/isoflop_lack_of_fit.py --reps 1             # smoke run
    python bench/isoflop_lack_of_fit.py --cases              # the GPU study and public tables only
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")

from isoflop_bias import LAWS, table  # noqa: E402
from public_isoflop import DATA, PUBLISHED, load  # noqa: E402

from analysis import noise  # noqa: E402
from analysis.laws import approach2  # noqa: E402
from analysis.laws.common import FitConfig  # noqa: E402

GPU_STUDY = Path(__file__).resolve().parents[1] / "tests" / "data" / "gpu_study_runs.csv"
DEGREES = (2, 3, 4)


def budgets(t: pd.DataFrame, cfg: FitConfig) -> list[tuple]:
    groups = [approach2.as_arrays(g, cfg) for _, g in t.groupby("budget")]
    return [(N, D, float(np.exp(np.log(C).mean())), loss) for N, D, C, loss in groups]


def p_values(keep: list[tuple]) -> dict:
    """The profile model shape_choice picks, and the lack-of-fit test's p against each degree's smoother."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prof, f, _ = approach2.shape_choice(keep, "shape")
    r = np.concatenate(approach2.residuals(prof, f))
    out = {"model": approach2.PROFILE_LABELS[prof.shared, prof.own_vertices]}
    for d in DEGREES:
        ref = noise.smoother([np.log(g[0]) for g in keep], [g[3] for g in keep], degree=d)
        rms, F, p, dof = approach2.lack_of_fit_test(r, approach2.n_params(prof), ref)
        out.update({f"p{d}": p, f"F{d}": F, f"dof{d}": ref.dof, f"sd{d}": ref.sd, "rms": rms, "dof": dof})
    return out


def false_refusals(reps: int) -> pd.DataFrame:
    rows = []
    cells = itertools.product(list(LAWS)[:2], [1, 2, 3], [0.005, 0.02], [6, 30], ["centred", "drift +"], range(reps))
    for law, width, sd, sizes, centring, seed in cells:
        t, _ = table(LAWS[law], width, centring, sd, sizes, seed, "random")
        rows.append({"law": law, "width": width, "noise": sd, "sizes": sizes, "centring": centring, "seed": seed,
                     **p_values(budgets(t, FitConfig(n_bootstrap=0)))})
    return pd.DataFrame(rows)


def cases() -> None:
    runs = pd.read_csv(GPU_STUDY, comment="#")
    cfg = FitConfig(n_col="params_compute", c_col="flops", n_bootstrap=0)
    tables = {"GPU study, seed column dropped (1e15's 4 sizes twice)": runs.drop(columns="seed"),
              "GPU study, seed 0 only (one run a size)": runs[runs["seed"] == 0].drop(columns="seed")}
    for name, t in tables.items():
        _case(name, budgets(t, cfg))
    for name, spec in PUBLISHED.items():
        _case(name, budgets(load(DATA / spec[0]), FitConfig(n_col="params_total", c_col="flops", n_bootstrap=0)))


def _case(name: str, keep: list[tuple]) -> None:
    o = p_values(keep)
    print(f"{name}: {o['model']} profiles {o['rms']:.2%} RMS on {o['dof']} dof; "
          + "; ".join(f"degree {d}: smoother {o[f'sd{d}']:.2%} on {o[f'dof{d}']} dof, F {o[f'F{d}']:.3g}, "
                      f"p {o[f'p{d}']:.2g}" for d in DEGREES), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=12)
    p.add_argument("--cases", action="store_true", help="only the GPU study and the public tables")
    p.add_argument("--out", default="")
    a = p.parse_args()
    cases()
    if a.cases:
        return
    t0 = time.time()
    d = false_refusals(a.reps)
    if a.out:
        d.to_csv(a.out, index=False)
    g = d.groupby(["width", "noise", "sizes"])
    summary = pd.DataFrame({"tables": g.size(), **{f"refused (degree {k})": g[f"p{k}"].apply(lambda p: (p < 0.01).mean())
                                                   for k in DEGREES}, "median p (degree 3)": g["p3"].median()})
    print(summary.round(3).to_string())
    print(f"all {len(d)} tables ({time.time() - t0:.0f} s): refused at 1% "
          + ", ".join(f"degree {k} {(d[f'p{k}'] < 0.01).mean():.2%}" for k in DEGREES))


if __name__ == "__main__":
    main()
