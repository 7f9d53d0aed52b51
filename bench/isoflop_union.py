"""The default approach 2's exponent interval with and without the percentile interval held (approach2.INTERVAL_UNION),
on the public isoFLOP tables and on the synthetic bias/coverage study (bench/README.md, "IsoFLOP: the Epoch AI table").

    python bench/isoflop_union.py --public                                   # every table in bench/data, 1000 bootstraps
    python bench/isoflop_union.py --synthetic --reps 24 --boot 100 --part 0 --parts 2 --out A.csv   # and --part 1
    python bench/isoflop_union.py --summarise A.csv B.csv                    # per cell: bias, coverage, width
    python bench/isoflop_union.py --synthetic --variants on --out C.csv      # the current code only
    python bench/isoflop_union.py --synthetic --variants on --vertex-level 0.95 --out D.csv   # the vertex test at 5%

The synthetic cells are bench/isoflop_bias.py's (3 laws x 1-3 decades x 4 centrings, 30 sizes a budget, 1% noise,
seeds 1000..); both variants fit the same table with the same resamples.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")

import isoflop_bias  # noqa: E402
import public_isoflop  # noqa: E402

from analysis.laws import approach2  # noqa: E402
from analysis.laws.common import FitConfig  # noqa: E402

VARIANTS = {"off": False, "on": True}


def public(boot: int) -> None:
    print("| data | interval | profile | a | 90% interval | vs authors, covers | b | 90% interval | vs authors, covers |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (file, a_pub, _, b_pub, _, _) in public_isoflop.PUBLISHED.items():
        runs = public_isoflop.load(public_isoflop.DATA / file)
        for on in VARIANTS.values():
            approach2.INTERVAL_UNION = on
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f = approach2.fit(runs, FitConfig(n_col="params_total", c_col="flops", n_bootstrap=boot, seed=0,
                                                  processes=2))
            cells = []
            for law, pub in ((f.n_opt, a_pub), (f.d_opt, b_pub)):
                lo, hi = law.a_ci
                vs = "" if pub is None else f"{law.a - pub:+.3f}, {'yes' if lo <= pub <= hi else 'no'}"
                cells += [f"{law.a:.3f}", f"[{lo:.3f}, {hi:.3f}]", vs]
            print(f"| {name} | {'basic + percentile' if on else 'basic (before)'} | {f.points['profile'].iloc[0]} | "
                  + " | ".join(cells) + " |", flush=True)


def synthetic(reps: int, boot: int, part: int, parts: int, variants: list[str], out: str) -> None:
    cells = list(itertools.product(isoflop_bias.LAWS, (1, 2, 3), isoflop_bias.CENTRING))
    rows = []
    for i, (law, width, centring) in enumerate(cells):
        if i % parts != part:
            continue
        for s in range(reps):
            t, truth = isoflop_bias.table(isoflop_bias.LAWS[law], width, centring, 0.01, 30, 1000 + s)
            for label in variants:
                approach2.INTERVAL_UNION = VARIANTS[label]
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    f = approach2.fit(t, FitConfig(n_bootstrap=boot, seed=1000 + s, processes=1))
                rows.append({"law": law, "width": width, "centring": centring, "seed": 1000 + s, "union": label == "on",
                             "truth": truth, **isoflop_bias.exponent_columns(f),
                             "profile": f.points["profile"].iloc[0], "s": time.perf_counter() - t0})
        pd.DataFrame(rows).to_csv(out, index=False)
        print(law, width, centring, "done", time.strftime("%H:%M:%S"), flush=True)


def summarise(files: list[str]) -> None:
    d = isoflop_bias.scored(pd.concat([pd.read_csv(f) for f in files]))
    g = d.groupby(["law", "width", "centring", "union"]).agg(
        n=("err", "count"), bias=("err", "mean"), cov=("cov", "mean"), bcov=("bcov", "mean"),
        wid=("wid", "mean")).reset_index()
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 500)
    print(g.pivot_table(index=["law", "width", "centring"], columns="union",
                        values=["bias", "cov", "bcov", "wid"]).round(4))
    for u, x in g.groupby("union"):
        print(f"union={u}: {len(x)} cells, {int(x['n'].sum())} fits; largest |bias| {x['bias'].abs().max():.4f}; "
              f"coverage of a: lowest cell {x['cov'].min():.3f}, mean {x['cov'].mean():.3f}, cells < 0.85: "
              f"{int((x['cov'] < 0.85).sum())}; of b: lowest {x['bcov'].min():.3f}; mean 90% width {x['wid'].mean():.4f}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--public", action="store_true")
    p.add_argument("--synthetic", action="store_true")
    p.add_argument("--summarise", nargs="+", default=[])
    p.add_argument("--reps", type=int, default=24)
    p.add_argument("--boot", type=int, default=0, help="bootstraps (default: 1000 public, 100 synthetic)")
    p.add_argument("--part", type=int, default=0)
    p.add_argument("--parts", type=int, default=1)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--out", default="isoflop_union.csv")
    p.add_argument("--vertex-level", type=float, default=approach2.VERTEX_TEST_LEVEL,
                   help="approach2.VERTEX_TEST_LEVEL for this run (a candidate: 0.95)")
    a = p.parse_args()
    approach2.VERTEX_TEST_LEVEL = a.vertex_level
    if a.public:
        public(a.boot or 1000)
    if a.synthetic:
        synthetic(a.reps, a.boot or 100, a.part, a.parts, a.variants, a.out)
    if a.summarise:
        summarise(a.summarise)


if __name__ == "__main__":
    main()
