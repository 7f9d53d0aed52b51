"""The data-mixing laws (analysis/laws/mixing.py) on RegMix's public mixture data, beside RegMix's own baselines.

Data (bench/data/regmix_*.csv; source, commit and columns in bench/data/README.md): Liu et al. 2024 trained 512
1M-parameter models on Dirichlet mixtures of 17 Pile domains (the regression's training set), 256 more 1M and 60M
models on unseen mixtures, and 64 1B models; losses on up to 13 domains' validation sets. Their target is the
Pile-CC validation loss; they report the Spearman correlation between predicted and measured target loss for a
linear regression and LightGBM fitted on the 512 (PUBLISHED below).

Measured here, for every family and the default law="auto":
  (a) fit()'s own k-fold held-out-mixture error and Spearman on the 512 (objective Pile-CC, and the natural one:
      the 13 evaluated domains weighted by the Pile's token proportions, PILE_PRIOR);
  (b) fitted on the 512: relative error and Spearman on the 256 unseen 1M mixtures; Spearman against the same
      mixtures at 60M and the 64 at 1B (ranking across scale, as the paper does);
  (c) what recommend() picks (default trust region) and how its predicted loss ranks among the measured test
      mixtures; the law's prediction for RegMix's own 1B mixture;
  (d) time of fit + 1000 bootstraps on the 512 x 17 table (the issue's target: <= 10 s on the 2-core VM).
RegMix's linear baseline (least squares on the raw loss with an intercept) and a gradient-boosted-tree stand-in for
LightGBM (scikit-learn; LightGBM is not installed) are refitted here on the same split.

    python bench/mixing_public.py                 # everything (about a minute)
    python bench/mixing_public.py --no-timing     # (a)-(c) only
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")

from analysis.laws.mixing import FAMILIES, W_PREFIX, MixingConfig, fit  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
SETS = {"train": "regmix_1m_train.csv", "test_1m": "regmix_1m_test.csv", "test_60m": "regmix_60m_test.csv",
        "test_1b": "regmix_1b_test.csv"}
# The Pile's token proportions of the 17 domains: sail-sg/regmix model_training/token_prior.yaml (commit 1678465d),
# the prior of RegMix's Dirichlet sampling.
PILE_PRIOR = {"arxiv": 0.113285273, "freelaw": 0.079608651, "nih_exporter": 0.003913491,
              "pubmed_central": 0.185375901, "wikipedia_en": 0.051081359, "dm_mathematics": 0.015962925,
              "github": 0.101750772, "philpapers": 0.003707518, "stackexchange": 0.066529351,
              "enron_emails": 0.001750772, "gutenberg_pg_19": 0.027085479, "pile_cc": 0.236869207,
              "ubuntu_irc": 0.01184346, "europarl": 0.007929969, "hackernews": 0.008032956,
              "pubmed_abstracts": 0.038825953, "uspto_backgrounds": 0.046446962}
# The mixture RegMix chose for its 1B model (sail-sg/regmix mixture_config/config_1b/regmix.yaml, commit 476a7b09),
# rounded to 4 decimals.
REGMIX_CHOICE = {"arxiv": 0.0012, "freelaw": 0.0015, "nih_exporter": 0.0012, "pubmed_central": 0.0031,
                 "wikipedia_en": 0.0159, "dm_mathematics": 0.0003, "github": 0.0002, "philpapers": 0.0,
                 "stackexchange": 0.0003, "enron_emails": 0.0017, "gutenberg_pg_19": 0.0016, "pile_cc": 0.8701,
                 "ubuntu_irc": 0.0642, "europarl": 0.0, "hackernews": 0.0119, "pubmed_abstracts": 0.0242,
                 "uspto_backgrounds": 0.0025}
# Spearman rho (%) between predicted and measured Pile-CC loss, regression fitted on the 512 1M models, evaluated on
# the unseen 1M / 60M / 1B mixtures (Liu et al. 2024, Table 2). As recalled: the paper's text could not be
# retrieved with the tools of this session; our own refit of their linear baseline (REGMIX_LINEAR below) measures
# 90.2 / 89.3 / 87.9 on these files, which is consistent with the recalled linear row.
PUBLISHED = {"linear": (90.08, 89.26, 88.01), "lightgbm": (98.45, 98.64, 98.80)}
ONE_SIZE = tuple(f for f in FAMILIES if f != "joint")     # law="auto"'s candidates at one size (joint = additive there)


def load(name: str, path: Path | None = None) -> pd.DataFrame:
    """A RegMix table as the runs table the mixing laws take: w_<domain> renormalised to sum to 1 (the source's
    3-decimal weights sum to 1 within 0.004; fit() allows 0.001)."""
    t = pd.read_csv(path or DATA / SETS[name], comment="#")
    w = [c for c in t.columns if c.startswith(W_PREFIX)]
    t[w] = t[w].div(t[w].sum(axis=1), axis=0)
    return t


def natural_objective(table: pd.DataFrame) -> dict[str, float]:
    """The Pile's token proportions over the domains the table has losses for (13 of 17: the others have no
    validation set in RegMix's data), renormalised; fit(objective=...) takes it as {domain: weight}."""
    have = {c[len("loss_"):] for c in table.columns if c.startswith("loss_")}
    total = sum(v for d, v in PILE_PRIOR.items() if d in have)
    return {d: v / total for d, v in PILE_PRIOR.items() if d in have}


def weights(table: pd.DataFrame) -> np.ndarray:
    return table[sorted(c for c in table.columns if c.startswith(W_PREFIX))].to_numpy(float)


def rho(a, b) -> float:
    return float(spearmanr(a, b).statistic)


def baselines(train: pd.DataFrame, tests: dict[str, pd.DataFrame], target: str = "loss_pile_cc") -> pd.DataFrame:
    """RegMix's linear regression (least squares on the raw loss, intercept) and a gradient-boosted-tree stand-in for
    its LightGBM, fitted on the train table, scored by Spearman on each test table."""
    from sklearn.ensemble import GradientBoostingRegressor
    X, y = weights(train), train[target].to_numpy(float)
    A = np.c_[np.ones(len(X)), X]
    beta = np.linalg.lstsq(A, y, rcond=None)[0]
    gbr = GradientBoostingRegressor(n_estimators=1000, learning_rate=0.02, max_depth=3, subsample=0.8,
                                    random_state=0).fit(X, y)
    rows = []
    for name, model in (("RegMix linear (refit)", lambda Z: np.c_[np.ones(len(Z)), Z] @ beta),
                        ("gradient-boosted trees (refit)", gbr.predict)):
        row = {"family": name}
        for tname, t in tests.items():
            p = model(weights(t))
            row[f"rho_{tname}"] = rho(p, t[target])
            if tname == "test_1m":
                row["rel_test_1m"] = float(np.mean(np.abs(p / t[target] - 1)))
        rows.append(row)
    return pd.DataFrame(rows)


def evaluate(train: pd.DataFrame, tests: dict[str, pd.DataFrame], objective, families=ONE_SIZE + ("auto",),
             config: MixingConfig | None = None) -> pd.DataFrame:
    """Per family: fit()'s k-fold check on `train` and, fitted on all of it, relative error and Spearman on each
    test table that has the objective's columns."""
    cfg = config or MixingConfig(n_bootstrap=0)
    rows = []
    for fam in families:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law = fit(train, objective, fam, config=cfg)
        cv = law.cv.set_index("family").loc[law.family]
        row = {"family": fam if fam != "auto" else f"auto ({law.family})", "cv_rel_error": cv["mean_rel_error"],
               "cv_spearman": cv["spearman"]}
        for tname, t in tests.items():
            if not set(law.objective.columns) <= set(t.columns):
                continue
            measured, predicted = law.objective.value(t), law.predict(t)
            row[f"rho_{tname}"] = rho(predicted, measured)
            if tname == "test_1m":
                row["rel_test_1m"] = float(np.mean(np.abs(predicted / measured - 1)))
        rows.append(row)
    return pd.DataFrame(rows)


def recommendation(train: pd.DataFrame, test: pd.DataFrame, objective="pile_cc", family="auto") -> dict:
    """fit (1000 bootstraps) + recommend() with its defaults; where its predicted loss ranks among the measured
    test mixtures, and the law's prediction for RegMix's own choice."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        law = fit(train, objective, family)
        t1 = time.perf_counter()
        rec = law.recommend()
    t2 = time.perf_counter()
    measured = law.objective.value(test)
    pred_test = law.predict(test)
    regmix = law.predict({d: REGMIX_CHOICE.get(d, 0.0) / sum(REGMIX_CHOICE.values()) for d in law.domains})[0]
    top = sorted(rec.weights.items(), key=lambda kv: -kv[1])[:5]
    return {"family": law.family, "fit_s": t1 - t0, "recommend_s": t2 - t1, "trust": rec.trust,
            "predicted": rec.predicted, "predicted_ci": rec.predicted_ci, "supported": rec.supported,
            "top_weights": top, "beats_measured_test": float(np.mean(measured > rec.predicted)),
            "beats_predicted_test": float(np.mean(pred_test > rec.predicted)), "best_measured_test": float(measured.min()),
            "regmix_choice_predicted": float(regmix),
            "l1_to_regmix_choice": float(sum(abs(rec.weights[d] - REGMIX_CHOICE.get(d, 0.0) / sum(REGMIX_CHOICE.values()))
                                             for d in law.domains)),
            "verdict": rec.verdict}


def timing(train: pd.DataFrame, objective, families=ONE_SIZE + ("auto",), n_bootstrap: int = 1000) -> pd.DataFrame:
    """Wall time of fit() with its k-fold check and n_bootstrap resamples, per family."""
    rows = []
    for fam in families:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law = fit(train, objective, fam, config=MixingConfig(n_bootstrap=n_bootstrap))
        rows.append({"family": fam if fam != "auto" else f"auto ({law.family})", "seconds": time.perf_counter() - t0})
    return pd.DataFrame(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-timing", action="store_true", help="skip (c) and (d), the bootstrap fits")
    args = ap.parse_args(argv)
    train = load("train")
    tests = {k: load(k) for k in ("test_1m", "test_60m", "test_1b")}
    pd.set_option("display.width", 200)
    print(f"RegMix data: train {train.shape[0]} mixtures x {train.filter(like=W_PREFIX).shape[1]} domains; test "
          + ", ".join(f"{k} {len(v)}" for k, v in tests.items()))
    for label, obj in (("Pile-CC validation loss (RegMix's target)", "pile_cc"),
                       ("natural: 13 domains' losses weighted by the Pile's token proportions", natural_objective(train))):
        print(f"\n== objective: {label}")
        res = evaluate(train, tests, obj)
        if obj == "pile_cc":
            res = pd.concat([res, baselines(train, tests)], ignore_index=True)
            pub = pd.DataFrame([{"family": f"published {k} (Liu et al. Table 2, recalled)",
                                 **{f"rho_{t}": v / 100 for t, v in zip(("test_1m", "test_60m", "test_1b"), vals)}}
                                for k, vals in PUBLISHED.items()])
            res = pd.concat([res, pub], ignore_index=True)
        print(res.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    if args.no_timing:
        return
    print("\n== recommend() (fit with 1000 bootstraps, default trust region), objective Pile-CC")
    for fam in ("auto", "ye", "loglinear"):
        r = recommendation(train, tests["test_1m"], family=fam)
        print(f"{fam:>9} -> {r['family']}: fit {r['fit_s']:.1f} s, recommend {r['recommend_s']:.1f} s, trust "
              f"{r['trust']}; predicted {r['predicted']:.4f} [{r['predicted_ci'][0]:.4f}, {r['predicted_ci'][1]:.4f}]"
              f" (best measured test {r['best_measured_test']:.4f}); below {r['beats_measured_test']:.1%} of the 256 "
              f"measured test losses, {r['beats_predicted_test']:.1%} of their predictions; top weights "
              + ", ".join(f"{d} {w:.3f}" for d, w in r["top_weights"])
              + f"; RegMix's choice predicted {r['regmix_choice_predicted']:.4f}, L1 distance {r['l1_to_regmix_choice']:.2f}"
              + f"\n           {r['verdict']}")
    print("\n== time: fit (k-fold check + 1000 bootstraps) on 512 x 17")
    for label, obj in (("Pile-CC", "pile_cc"), ("natural (13 targets)", natural_objective(train))):
        t = timing(train, obj)
        print(label + ": " + ", ".join(f"{r.family} {r.seconds:.1f} s" for r in t.itertuples()))


if __name__ == "__main__":
    main()
