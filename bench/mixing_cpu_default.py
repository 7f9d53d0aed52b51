"""The held-out-mixture check of issue 13 at the CPU default size, per draw of the default design, from a stored CSV.

The runs: the default design (`python sweep.py +grid=mixture`: 16 Dirichlet mixtures around natural + 4 pure +
uniform + natural, L4-d32 x 200k tokens on the demo corpus) for draws grid.mixtures.seed = 0, 1, 2 at seed 0, and
draw 0 again at seed 1 (the seed noise):

    SCALEMIX_RUNS=/tmp/mixcpu nice -n 10 python sweep.py +grid=mixture grid.name=mixcpu train.runtime.device=cpu \\
        eval.points=1 sweep.max_parallel=2 'grid.seeds=[0,1]'           # then grid.mixtures.seed=1, 2 (seed 0 only)
    python bench/mixing_cpu_default.py --export /tmp/mixcpu/mixcpu       # -> bench/results/mixing_cpu_default_<date>.csv
    python bench/mixing_cpu_default.py [--csv CSV] [--families ye,additive] [--per-mixture]

Today's default design (grid.mixtures.select=spread, samples_per_domain=6: 30 runs a draw) has its own CSV:
`--export RUN_DIR --designs spread:6 --csv bench/results/mixing_cpu_spread_<date>.csv`, checked with
`--csv bench/results/mixing_cpu_spread_2026-12-02.csv` (its rows with select=spread_sq: the first candidate, spaced
in the squared Hellinger distance, which sweeps/grids.py no longer draws).

With grid.mixtures.samples_per_domain=8 as well (each draw's 38 mixtures hold the default's 22: 16 more runs a
draw), the export holds that design too. The CSV has one row per (run, design, draw): a run shared by draws or
designs (pure, uniform, natural; the default's mixtures in the larger design) appears once per (design, draw), so
`table[(table.samples_per_domain == 4) & (table.draw == d)]` is the default design's draw d. Columns: run_id,
samples_per_domain, draw, seed, params_nonembedding (N), tokens (D), w_<domain>, loss_<domain> (held-out loss on
every domain), corpus_tokens_<domain> (the natural proportions).

Per design and draw (seed 0; draw 0 also at seed 1 and both seeds where trained so) it prints what
`python -m analysis.mixing_report` reports: `fit(table, "natural")` (law="auto", 5-fold held-out mixtures, pure
mixtures never held out): each family's held-out mean relative error and Spearman, the one auto picks, and whether it
meets the issue's targets (<= 1%, >= 0.9).
"""
from __future__ import annotations

import argparse
import datetime
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.laws.mixing import W_PREFIX, MixingConfig, _mixture_keys, domains_of, fit  # noqa: E402

HERE = Path(__file__).resolve().parent
DRAWS = (0, 1, 2)
CONCENTRATION = (0.5, 5.0)          # conf/grid/mixture.yaml's default
SAMPLES_PER_DOMAIN = (4, 8)         # the default design, and grid.mixtures.samples_per_domain=8 (16 more mixtures)
# the designs --export looks for (select, samples_per_domain): the iid design of before 2026-12-02 at 4 and 8 a domain;
# --designs spread:6 for today's default (grid.mixtures.select=spread, samples_per_domain=6)
DESIGNS = tuple(("iid", spd) for spd in SAMPLES_PER_DOMAIN)


def export(run_dir: str, out: Path, designs=DESIGNS) -> pd.DataFrame:
    """The runs of `run_dir` assigned to the default design's draws (as sweeps/grids.py draws them)."""
    from analysis import results
    from analysis.laws.mixing import natural_proportions
    sys.path.insert(0, str(HERE))
    from mixing_ceiling import design_mixtures, rows_of
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = results.load(run_dir).runs
    doms = domains_of(runs)
    nat = natural_proportions(runs, doms)
    cols = (["run_id", "seed", "params_nonembedding", "tokens"] + [W_PREFIX + d for d in doms]
            + [f"loss_{d}" for d in doms] + [f"corpus_tokens_{d}" for d in doms])
    parts = []
    for select, spd in designs:
        for d in DRAWS:
            W = design_mixtures(CONCENTRATION, doms, nat, spd, d, select)
            part = rows_of(runs, W, doms)[cols]
            have = len(np.unique(np.round(part[[W_PREFIX + x for x in doms]].to_numpy(float), 5), axis=0))
            if have < len(np.unique(np.round(W, 5), axis=0)):      # a design not (fully) trained: left out
                continue
            parts.append(part.assign(draw=d, samples_per_domain=spd, select=select))
    table = pd.concat(parts, ignore_index=True)[["run_id", "select", "samples_per_domain", "draw"] + cols[1:]]
    table = table.sort_values(["samples_per_domain", "draw", "seed", "run_id"], ignore_index=True)
    table.to_csv(out, index=False, float_format="%.8g")
    return table


def check(table: pd.DataFrame, families: tuple[str, ...] | None, per_mixture: bool) -> pd.DataFrame:
    rows = []
    if "samples_per_domain" not in table:
        table = table.assign(samples_per_domain=4)
    if "select" not in table:                                   # the CSVs before grid.mixtures.select: iid draws
        table = table.assign(select="iid")
    table = table.assign(design=table["select"] + ":" + table["samples_per_domain"].astype(str))
    cases = []
    for des_name in sorted(table["design"].unique()):
        des = table[table["design"] == des_name]
        cases += [(des_name, d, (0,)) for d in sorted(des["draw"].unique())]
        interior = des[(des["draw"] == 0) & (des[[c for c in des if c.startswith(W_PREFIX)]].max(axis=1) < 1)]
        if set(interior["seed"]) >= {0, 1} and (interior["seed"] == 1).sum() == (interior["seed"] == 0).sum():
            cases += [(des_name, 0, (1,)), (des_name, 0, (0, 1))]          # draw 0 trained at both seeds
    for des_name, d, seeds in cases:
        t = table[(table["design"] == des_name) & (table["draw"] == d) & table["seed"].isin(seeds)]
        t = t.drop(columns=["draw", "samples_per_domain", "select", "design"]).reset_index(drop=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law = fit(t, "natural", config=MixingConfig(n_bootstrap=0), families=families)
        for r in law.cv.itertuples():
            rows.append({"design": des_name, "draw": d, "seeds": ",".join(map(str, seeds)), "runs": len(t),
                         "family": r.family, "auto": r.family == law.family, "mean_rel_error": r.mean_rel_error,
                         "max_rel_error": r.max_rel_error, "spearman": r.spearman,
                         "meets": bool(r.mean_rel_error <= 0.01 and r.spearman >= 0.9)})
        if per_mixture:
            cp = law.cv_predictions.groupby(["mixture", "family"])[["measured", "predicted"]].mean().reset_index()
            cp["err %"] = 100 * (cp["predicted"] / cp["measured"] - 1)
            piv = cp.pivot(index="mixture", columns="family", values="err %")
            doms = domains_of(t)
            W = t[[W_PREFIX + x for x in doms]].to_numpy(float)
            w = pd.DataFrame(W, columns=doms).assign(mixture=_mixture_keys(W)).groupby("mixture").first()
            meas = cp.groupby("mixture")["measured"].first().rename("measured")
            print(f"\n== design {des_name}, draw {d}, seeds {seeds}: held-out error per mixture (% of the measured objective)")
            print(pd.concat([w.round(3), meas.round(3), piv.round(2)], axis=1).dropna()
                  .sort_values("measured").to_string())
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--export", metavar="RUN_DIR", help="write the CSV from a sweep's run directories first")
    p.add_argument("--csv", default=None, help="default: the newest bench/results/mixing_cpu_default_*.csv")
    p.add_argument("--families", default=None, help="auto's candidates, comma-separated (default: fit's)")
    p.add_argument("--per-mixture", action="store_true", help="each held-out mixture's error by family")
    p.add_argument("--designs", default=None, help="--export: SELECT:SPD,... (default: iid:4,iid:8)")
    a = p.parse_args()
    if a.export:
        out = Path(a.csv or HERE / "results" / f"mixing_cpu_default_{datetime.date.today()}.csv")
        designs = tuple((x.split(":")[0], int(x.split(":")[1])) for x in a.designs.split(",")) if a.designs \
            else DESIGNS
        table = export(a.export, out, designs)
        print(f"wrote {out}: {len(table)} rows")
    else:
        csvs = sorted((HERE / "results").glob("mixing_cpu_default_*.csv"))
        if not a.csv and not csvs:
            raise SystemExit("no bench/results/mixing_cpu_default_*.csv: run the sweep and --export it (see the "
                             "docstring)")
        table = pd.read_csv(a.csv or csvs[-1])
    fams = tuple(a.families.split(",")) if a.families else None
    res = check(table, fams, a.per_mixture)
    with pd.option_context("display.width", 200):
        print(res.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    for des_name, auto in res[res["auto"]].groupby("design"):
        print(f"\ndesign {des_name} (select:samples_per_domain): auto meets both targets (<= 1% mean error, Spearman >= 0.9) in "
              f"{int(auto['meets'].sum())} of {len(auto)} cases: " + ", ".join(
                  f"draw {r.draw} seeds {r.seeds}: {r.family} {r.mean_rel_error:.2%} / {r.spearman:.3f}"
                  for r in auto.itertuples()))


if __name__ == "__main__":
    main()
