"""Issue 17, step 2 of the downstream law (task loss -> accuracy) on its own: alternatives to the least-squares
sigmoid, judged by held-out runs of the GPU study and by recovery of known sigmoids, and only then by the 4x run.

    python bench/downstream_step2.py [--runs examples/study2/runs.csv] [--big examples/study2/big_run.csv]
                                     [--seeds 25] [--only real|synthetic|big|step1|cause|signal]

Reads the CSVs only (the same numbers as the run directories bench/study_downstream_check.py reads). Step 1 is left
out (but for the last table): every prediction is step 2 evaluated at the held-out run's MEASURED task loss
(bpb_<task>), so the errors are step 2's alone. The last table runs both steps (analysis.laws.downstream.fit and
holdout) with the old and the new step 2; --only step1 compares step 1's form "auto" before and after its held-out
check (analysis.laws.downstream.choose_form), both steps with the default step 2; --only cause splits each 4x miss
into step 1 (task loss, per form) and step 2, with how firm the form check is, and the same extrapolation on each
domain's held-out loss (issue 17, session 10: cloze_multilingual); --only signal measures the no-signal rule
(analysis.laws.downstream.no_signal) on generated runs.

Methods (acc = b + (top - b) / (1 + exp(k (L - L0))), b = chance unless said):
    lsq            least squares on accuracy, top in [chance, 1] fitted (the old default; ACC_FITS lsq_linear)
    lsq_top1       least squares, top = 1
    lsq_b_free     least squares, b and top both fitted (the OLMo ladder's 4-parameter form)
    binom          binomial likelihood (each run's item count), top fitted (binomial_linear)
    binom_top1     binomial likelihood, top = 1
    binom_prior    binomial likelihood, top fitted with a Beta(20, 1) prior on (top - chance) / (1 - chance)
    logit_top1     weighted least squares of logit((acc - chance) / (1 - chance)) on L (delta-method weights), top = 1
    lsq_logL       least squares, top fitted, logistic in log L: acc = b + (top - b) / (1 + (L / L0)^k) (lsq_log)
    binom_logL     binomial likelihood, top fitted, logistic in log L (binomial_log: the new default)
    binom_top1_logL  binomial likelihood, top = 1, logistic in log L

Held-out checks on the runs (each task with signal; arith and arith_em stay at chance and are listed apart):
leave-one-budget-out (each budget's runs predicted from the others), the largest budget out, the two largest out,
and the 3 runs of lowest task loss out (extrapolation downwards in L, which is what a larger run asks for).
Synthetic: 20 task losses like a real task's (cloze_prose's bpb), accuracies drawn binomially at n = 500 from known
sigmoids (both families: logistic in L and in log L; top 0.85-1; two shapes each), predicted at 0.75 x the lowest
loss (the 4x run sits at 0.73-0.80 x), and the fitted ceilings; "sparse upper part": 16 runs at the low accuracies
and 4 above instead; "+ckpt" adds 4 intermediate checkpoints per run (task loss x 1.1-1.5, 100 items each: an
eval.downstream_items subset) as the OLMo ladder does, which these runs do not have (they were scored post hoc on
the final checkpoint only; no metrics.jsonl downstream_subset rows).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.special import expit, logit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository's packages, run as a script
from analysis.laws import downstream as ds  # noqa: E402
from analysis.laws.common import FitConfig, FitError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STUDY_CFG = FitConfig(n_col="params_compute", c_col="flops")     # the study's conventions (its laws.json)


def at_chance(runs: pd.DataFrame, tasks: list[str]) -> list[str]:
    """Tasks whose runs show no signal above chance (analysis.laws.downstream.no_signal, the law's own rule; on the
    study: arith, arith_em): no sigmoid to judge, listed apart."""
    return [t for t in tasks if ds.fit(runs, t, STUDY_CFG, n_bootstrap=0).no_signal]
EPS = 1e-9


# ------------------------------------------------------------------------------------------------ the methods
def _curve(b, top, k, L0, L, logL=False):
    z = k * (np.log(L) - np.log(L0)) if logL else k * (L - L0)
    return b + (top - b) * expit(-np.clip(z, -500, 500))


def _fit(L, acc, n, chance, *, loss="lsq", top1=False, b_free=False, prior=0.0, logL=False):
    """One curve; the best of a few starts. Parameters: [b], [top], k, L0 (k on the L or log L scale)."""
    L, acc, n = (np.asarray(x, float) for x in (L, acc, n))
    x = np.log(L) if logL else L
    span = max(float(np.ptp(x)), 1e-6)
    names, lo, hi = [], [], []
    if b_free:
        names, lo, hi = ["b"], [0.0], [max(float(acc.min()), 1e-3)]
    if not top1:
        names, lo, hi = names + ["top"], lo + [chance + 1e-6], hi + [1.0]
    names += ["k", "L0"]
    lo += [1e-3 / span, float(x.min() - 3 * span)]
    hi += [1e3 / span, float(x.max() + 3 * span)]

    def unpack(p):
        d = dict(zip(names, p))
        b = d.get("b", chance)
        top = d.get("top", 1.0)
        L0 = np.exp(d["L0"]) if logL else d["L0"]
        return b, top, d["k"], L0

    def resid(p):
        b, top, k, L0 = unpack(p)
        pred = _curve(b, top, k, L0, L, logL)
        r = ds._deviance_residuals(pred, acc, n) if loss == "binom" else pred - acc
        if prior:   # -2 log prior, as one more squared residual: Beta(prior + 1, 1) on the ceiling's share
            u = np.clip((top - b) / (1 - b), EPS, 1.0)
            r = np.append(r, np.sqrt(2 * prior * -np.log(u)))
        return r

    best = None
    for top0 in ([None] if top1 else (min(1.0, acc.max() + 0.05), 1.0)):
        for k0 in (2.0, 8.0):
            for q in (0.25, 0.5, 0.75):
                x0 = ([chance] if b_free else []) + ([] if top1 else [top0]) + [k0 / span, float(np.quantile(x, q))]
                x0 = np.clip(x0, np.add(lo, 1e-9), np.subtract(hi, 1e-9))
                try:
                    r = least_squares(resid, x0, bounds=(lo, hi), x_scale="jac")
                except ValueError:
                    continue
                if best is None or r.cost < best.cost:
                    best = r
    b, top, k, L0 = unpack(best.x)
    return lambda Lq: _curve(b, top, k, L0, np.asarray(Lq, float), logL), {"b": b, "top": top, "k": k, "L0": L0}


def _logit_top1(L, acc, n, chance):
    """Linear in logit space: logit(q) = -k (L - L0), q = (acc - chance) / (1 - chance), weights 1/var (delta method)."""
    L, acc, n = (np.asarray(x, float) for x in (L, acc, n))
    a = np.clip(acc, chance + 0.5 / n, 1 - 0.5 / n)           # the empirical-logit correction for 0 or n correct
    q = (a - chance) / (1 - chance)
    var = a * (1 - a) / (n * (1 - chance) ** 2 * (q * (1 - q)) ** 2)
    w = 1 / var
    X = np.column_stack([np.ones_like(L), L])
    beta = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * logit(q)))
    k, L0 = -beta[1], -beta[0] / beta[1]
    return lambda Lq: _curve(chance, 1.0, k, L0, np.asarray(Lq, float)), {"b": chance, "top": 1.0, "k": k, "L0": L0}


def _lib(how):
    """analysis.laws.downstream's own step 2 (ACC_FITS)."""
    def f(L, acc, n, chance):
        s = ds.fit_sigmoid(L, acc, chance, n, how=how)
        return s, {"b": chance, "top": s.top, "k": s.k, "L0": s.L0}
    return f


METHODS = {
    "lsq": _lib("lsq_linear"),
    "lsq_top1": lambda L, a, n, c: _fit(L, a, n, c, top1=True),
    "lsq_b_free": lambda L, a, n, c: _fit(L, a, n, c, b_free=True),
    "binom": _lib("binomial_linear"),
    "binom_top1": lambda L, a, n, c: _fit(L, a, n, c, loss="binom", top1=True),
    "binom_prior": lambda L, a, n, c: _fit(L, a, n, c, loss="binom", prior=19.0),
    "logit_top1": _logit_top1,
    "lsq_logL": _lib("lsq_log"),
    "binom_logL": _lib("binomial_log"),
    "binom_top1_logL": lambda L, a, n, c: _fit(L, a, n, c, loss="binom", top1=True, logL=True),
}
SPARSE_METHODS = ("lsq", "lsq_b_free", "binom", "binom_logL")
CKPT_METHODS = ("lsq", "binom", "binom_logL")


# ------------------------------------------------------------------------------------------------ the runs
items = ds.item_counts


def folds(t: pd.DataFrame) -> dict[str, list[np.ndarray]]:
    budgets = sorted(t["budget"].unique())
    low = np.argsort(t["L"].to_numpy())[:3]
    return {"leave-one-budget-out": [(t["budget"] == b).to_numpy() for b in budgets],
            "largest out": [(t["budget"] == budgets[-1]).to_numpy()],
            "two largest out": [t["budget"].isin(budgets[-2:]).to_numpy()],
            "3 lowest-loss out": [np.isin(np.arange(len(t)), low)]}


def real(runs: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    rows = []
    for task in tasks:
        sc = runs[runs[f"acc_{task}"].notna()]
        t = pd.DataFrame({"budget": sc["budget"].to_numpy(), "L": sc[f"bpb_{task}"].to_numpy(float),
                          "acc": sc[f"acc_{task}"].to_numpy(float), "n": items(sc, task)})
        chance = ds.chance_of(runs, task)
        for check, masks in folds(t).items():
            for held in masks:
                tr = t[~held]
                for m, f in METHODS.items():
                    pred, _ = f(tr["L"], tr["acc"], tr["n"], chance)
                    for _, r in t[held].iterrows():
                        rows.append({"task": task, "check": check, "method": m, "L": r["L"], "acc": r["acc"],
                                     "pred": float(np.asarray(pred(np.array([r["L"]])))[0]),
                                     "se": np.sqrt(r["acc"] * (1 - r["acc"]) / max(r["n"] - 1, 1))})
    df = pd.DataFrame(rows)
    df["err"] = 100 * (df["pred"] - df["acc"])
    return df


def summarise_real(df: pd.DataFrame, quiet: list[str]) -> pd.DataFrame:
    sig = df[~df["task"].isin(quiet)]
    out = sig.groupby(["check", "method"])["err"].agg(mae=lambda e: e.abs().mean(), bias="mean",
                                                     n="size").unstack(0)
    floor = sig[sig["method"] == "lsq"].groupby("check")["se"].mean() * 100 * np.sqrt(2 / np.pi)
    return out, floor


# ------------------------------------------------------------------------------------------------ synthetic
# (family, k, L0) on cloze_prose's bpb (1.16-2.18): accuracies ~0.43-0.97 over the grid at top 1. Both families,
# so that a form is judged on data from the other one too
SHAPES = (("L", 2.5, 1.8), ("L", 4.0, 1.9), ("logL", 4.5, 1.75), ("logL", 7.0, 1.85))
TOPS = (0.85, 0.9, 0.95, 1.0)


# the upper part sparser than in the study: 16 runs in the lower half of the accuracies, 4 above
SPARSE_L = np.concatenate([np.linspace(1.6, 2.2, 16), np.linspace(1.15, 1.5, 4)])


def synthetic(L: np.ndarray, seeds: int, chance: float = 0.25, n: int = 500, ckpt: bool = False,
              methods=tuple(METHODS)) -> pd.DataFrame:
    rows = []
    Lx = 0.75 * L.min()
    for (fam, k, L0) in SHAPES:
        for top in TOPS:
            truth = _curve(chance, top, k, L0, np.array([Lx]), fam == "logL")[0]
            for seed in range(seeds):
                rng = np.random.default_rng(seed)
                Ls, ns = L, np.full(len(L), n, float)
                if ckpt:
                    Ls = np.concatenate([L] + [L * f for f in (1.1, 1.2, 1.35, 1.5)])
                    ns = np.concatenate([ns] + [np.full(len(L), 100.0)] * 4)
                acc = rng.binomial(ns.astype(int), _curve(chance, top, k, L0, Ls, fam == "logL")) / ns
                for m in methods:
                    pred, p = METHODS[m](Ls, acc, ns, chance)
                    rows.append({"family": fam, "shape": f"{fam} k={k:g} L0={L0:g}", "top": top, "method": m, "seed": seed,
                                 "err": 100 * (float(np.asarray(pred(np.array([Lx])))[0]) - truth),
                                 "top_hat": p["top"], "k_hat": p["k"], "L0_hat": p["L0"]})
    return pd.DataFrame(rows)


def summarise_synthetic(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby(["method", "family", "top"])["err"]
    return pd.concat({"mae": g.apply(lambda e: e.abs().mean()).unstack([1, 2]),
                      "bias": g.mean().unstack([1, 2])}, axis=1)


# ------------------------------------------------------------------------------------------------ the 4x run
def big_run(runs: pd.DataFrame, big: pd.Series, tasks: list[str]) -> pd.DataFrame:
    rows = []
    for task in tasks:
        sc = runs[runs[f"acc_{task}"].notna()]
        chance = ds.chance_of(runs, task)
        row = {"task": task, "bpb": big[f"bpb_{task}"], "grid min bpb": sc[f"bpb_{task}"].min(),
               "measured": big[f"acc_{task}"], "se": big[f"se_{task}"]}
        for m, f in METHODS.items():
            pred, _ = f(sc[f"bpb_{task}"], sc[f"acc_{task}"], items(sc, task), chance)
            row[m] = 100 * (float(np.asarray(pred(np.array([big[f"bpb_{task}"]])))[0]) - big[f"acc_{task}"])
        rows.append(row)
    return pd.DataFrame(rows)


def two_step(runs: pd.DataFrame, big: pd.Series, tasks: list[str]) -> pd.DataFrame:
    cfg = STUDY_CFG
    N, D, C = (np.array([float(big[c])]) for c in (cfg.n_col, "tokens", cfg.c_col))
    rows = []
    for task in tasks:
        row = {"task": task, "measured": big[f"acc_{task}"], "bpb": big[f"bpb_{task}"]}
        for how in ("lsq_linear", ds.DEFAULT_ACC_FIT):
            try:
                law = ds.fit(runs, task, cfg, n_bootstrap=100, acc_fit=how)
            except FitError as e:
                row[how] = str(e)[:40]
                continue
            L, acc = (v[0] for v in law.predict(N, D, C))
            lo, hi = law.interval(N, D, C)
            row["bpb pred (step 1)"] = L
            try:    # the grid's own check: both steps without the largest budget (3e16), no bootstrap
                row[f"{how} grid holdout err"] = ds.holdout(runs, task, cfg, n_bootstrap=0, acc_fit=how).error_points
            except FitError:
                row[f"{how} grid holdout err"] = np.nan
            row[f"{how} pred"] = acc
            row[f"{how} err"] = 100 * (acc - big[f"acc_{task}"])
            row[f"{how} 90%"] = f"[{lo[0]:.3f}, {hi[0]:.3f}]"
            row[f"{how} inside"] = bool(lo[0] <= big[f"acc_{task}"] <= hi[0])
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ step 1's form
def _old_auto(fn, *args, **kw):
    """The form "auto" before the held-out check: "nd" with >= approach3.MIN_RUNS runs (all tasks here), "c" when
    nd's fit is degenerate (fit() fell back; asked for explicitly it raises, so fall back here the same way)."""
    try:
        return fn(*args, form="nd", **kw)
    except FitError as e:
        if "degenerate" not in str(e):
            raise
        return fn(*args, form="c", **kw)


def step1(runs: pd.DataFrame, big: pd.Series, tasks: list[str], n_bootstrap: int = 0) -> pd.DataFrame:
    """Per task: the form the new auto chooses and its held-out check (each form without the grid's largest
    budget, 3e16; task-loss error in %), then old auto against new auto: the 4x run's task loss from step 1, both
    steps' error at the 4x run and the grid's own holdout() (both steps without 3e16; inside it new auto chooses
    with the next budget, 1.3e16, held out)."""
    cfg = STUDY_CFG
    N, D, C = (np.array([float(big[c])]) for c in (cfg.n_col, "tokens", cfg.c_col))
    rows = []
    for task in tasks:
        t = ds._table(runs, task, cfg)
        choice = ds.choose_form(t, ds.group_budgets(runs.loc[t.index]))
        row = {"task": task, "new form": choice.form, "check nd %": choice.errors.get("nd", np.nan),
               "check c %": choice.errors.get("c", np.nan), "bpb 4x": big[f"bpb_{task}"]}
        for name, call in (("old", lambda f, *a, **k: _old_auto(f, *a, **k)),
                           ("new", lambda f, *a, **k: f(*a, form="auto", **k))):
            law = call(ds.fit, runs, task, cfg, n_bootstrap=n_bootstrap)
            L, acc = (v[0] for v in law.predict(N, D, C))
            h = call(ds.holdout, runs, task, cfg, n_bootstrap=0)
            row.update({f"{name} form": law.loss.form, f"{name} bpb %": 100 * (L / big[f"bpb_{task}"] - 1),
                        f"{name} grid holdout": h.error_points, f"{name} holdout form": h.form,
                        f"{name} 4x": 100 * (acc - big[f"acc_{task}"])})
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ a miss's cause
def cause(runs: pd.DataFrame, big: pd.Series, tasks: list[str], resamples: int = 100) -> pd.DataFrame:
    """Per task: the 4x run's task loss from each form (all scored runs) and the accuracy both steps give with it;
    step 2 alone; the held-out check (largest budget out) signed per form, and the share of resamples of the fitted
    runs (each form polished from its optimum) in which c wins that check, i.e. how firm the choice is."""
    cfg = STUDY_CFG
    N, D, C = (float(big[c]) for c in (cfg.n_col, "tokens", cfg.c_col))
    rows = []
    for task in tasks:
        t = ds._table(runs, task, cfg)
        law = ds.fit(runs, task, cfg, n_bootstrap=0)
        row = {"task": task, "auto": law.loss.form,
               "step 2 alone": 100 * (float(law.acc(big[f"bpb_{task}"])) - big[f"acc_{task}"])}
        Ls = {}
        for form in ("nd", "c"):
            Ls[form] = L = float(ds.fit_task_loss(t["N"], t["D"], t["C"], t["L"], form)(N, D, C))
            row[f"{form} bpb %"] = 100 * (L / big[f"bpb_{task}"] - 1)
            row[f"{form} both"] = 100 * (float(law.acc(L)) - big[f"acc_{task}"])
        # alternatives tried for step 1: the two forms' geometric mean; c fitted to each budget's lowest task loss;
        # the task loss as a power of the run's held-out (mixture) loss, at the 4x run's MEASURED held-out loss
        row["mean-of-forms both"] = 100 * (float(law.acc(np.sqrt(Ls["nd"] * Ls["c"]))) - big[f"acc_{task}"])
        g = ds.group_budgets(runs.loc[t.index]).to_numpy()
        best = t.loc[t.groupby(g)["L"].idxmin()]
        row["best-run c bpb %"] = 100 * (float(ds.fit_task_loss(best["N"], best["D"], best["C"], best["L"], "c")(
            N, D, C)) / big[f"bpb_{task}"] - 1)
        slope, icpt = np.polyfit(np.log(runs.loc[t.index, "loss"]), np.log(t["L"]), 1)
        row["via loss bpb %"] = 100 * (np.exp(icpt + slope * np.log(big["loss"])) / big[f"bpb_{task}"] - 1)
        fit_t, held = t[g != g.max()], t[g == g.max()]
        base = {f: ds.fit_task_loss(fit_t["N"], fit_t["D"], fit_t["C"], fit_t["L"], f) for f in ("nd", "c")}
        for f, lo in base.items():
            row[f"check {f} %"] = 100 * float(np.mean(lo(held["N"], held["D"], held["C"]) / held["L"] - 1))
        rng, wins = np.random.default_rng(0), []
        for _ in range(resamples):
            s = fit_t.iloc[rng.integers(len(fit_t), size=len(fit_t))]
            e = {f: np.mean(np.abs(ds.fit_task_loss(s["N"], s["D"], s["C"], s["L"], f, start=lo)(
                held["N"], held["D"], held["C"]) / held["L"] - 1)) for f, lo in base.items()}
            wins.append(e["c"] < e["nd"])
        row["c wins resamples"] = float(np.mean(wins))
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ the no-signal rule
# accuracy at the study's lowest task loss (cloze_prose's bpb, 1.16) for each generating sigmoid (logistic in log L,
# chance 0.25, top 1, k 4.5): at chance, faint (0.27-0.30 at the best run), weak, clear (cloze-like)
SIGNAL_CASES = (("at chance", None), ("faint", 0.55), ("weak", 0.7), ("medium", 0.85), ("clear", 1.75))


def signal_rate(L: np.ndarray, seeds: int, n: int = 500) -> pd.DataFrame:
    """How often analysis.laws.downstream.no_signal says "no signal" on runs at the study's 20 task losses with
    accuracies drawn binomially (n items) from known sigmoids: a false 'signal' at chance should be rare (<= 5%
    family-wise), a clear signal never called absent."""
    rows = []
    for name, L0 in SIGNAL_CASES:
        truth = ds.Sigmoid(0.25, 1.0, 4.5, L0, "log") if L0 else None
        p = truth(L) if truth else np.full(len(L), 0.25)
        calls = []
        for seed in range(seeds):
            acc = np.random.default_rng(seed).binomial(n, p) / n
            fitted = ds.fit_sigmoid(L, acc, 0.25, np.full(len(L), n))
            calls.append(ds.no_signal(acc, np.full(len(L), n), 0.25, fitted, L))
        rule = pd.Series([("signal" if c is None else "ceiling" if "ceiling" in c else "deviance"
                           if "no better than chance" in c else "within z*") for c in calls])
        rows.append({"truth": name, "acc at lowest L": float(p[np.argmin(L)]),
                     "called no signal": float(np.mean([c is not None for c in calls])),
                     "by rule": rule.value_counts().to_dict()})
    return pd.DataFrame(rows)


def domain_loss(runs: pd.DataFrame, big: pd.Series) -> pd.DataFrame:
    cfg = STUDY_CFG
    N, D, C = (float(big[c]) for c in (cfg.n_col, "tokens", cfg.c_col))
    rows = []
    for col in sorted(c for c in runs.columns if c.startswith("loss_")):
        row = {"loss": col}
        for name, sub in (("scored", runs[runs["acc_cloze"].notna()]), ("all", runs)):
            for form in ("nd", "c"):
                lo = ds.fit_task_loss(sub[cfg.n_col], sub["tokens"], sub[cfg.c_col], sub[col], form)
                row[f"{name} {form} %"] = 100 * (float(lo(N, D, C)) / big[col] - 1)
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default=ROOT / "examples/study2/runs.csv", type=Path)
    p.add_argument("--big", default=ROOT / "examples/study2/big_run.csv", type=Path)
    p.add_argument("--seeds", type=int, default=25)
    p.add_argument("--only", choices=("real", "synthetic", "big", "step1", "cause", "signal"))
    a = p.parse_args(argv)
    warnings.simplefilter("ignore")
    pd.set_option("display.width", 250, "display.max_columns", 40, "display.precision", 2)
    runs = pd.read_csv(a.runs)
    tasks = ds.tasks_in(runs)
    quiet = at_chance(runs, tasks)
    if a.only in (None, "real"):
        df = real(runs, tasks)
        out, floor = summarise_real(df, quiet)
        print(f"## Held-out runs, step 2 at the measured task loss: error in accuracy points, tasks "
              f"{[t for t in tasks if t not in quiet]} (no signal: {quiet})")
        print("noise floor (mean |error| of a perfect law, sqrt(2/pi) x the held-out runs' se):",
              floor.round(2).to_dict())
        print(out.to_string())
        print("\nper task, mean |error| over leave-one-budget-out and 3 lowest-loss out (points):")
        sub = df[df["check"].isin(["leave-one-budget-out", "3 lowest-loss out"])]
        print(sub.groupby(["task", "method"])["err"].apply(lambda e: e.abs().mean()).unstack().to_string())
    if a.only in (None, "synthetic"):
        L = np.sort(runs["bpb_cloze_prose"].dropna().to_numpy(float))
        for name, L_, ckpt, methods in (("study's task losses", L, False, tuple(METHODS)),
                                        ("sparse upper part (16 + 4 runs)", SPARSE_L, False, SPARSE_METHODS),
                                        ("study's task losses + ckpt", L, True, CKPT_METHODS)):
            df = synthetic(L_, a.seeds, ckpt=ckpt, methods=methods)
            print(f"\n## Synthetic, {name}: {a.seeds} seeds x 2 shapes per family and ceiling; error at 0.75 x the "
                  f"lowest loss, points (mae, bias), columns: generating family, true top")
            print(summarise_synthetic(df).to_string())
            print("mean |error| by generating family, over ceilings and shapes:")
            print(df.groupby(["method", "family"])["err"].apply(lambda e: e.abs().mean()).unstack().round(2)
                  .assign(all=df.groupby("method")["err"].apply(lambda e: e.abs().mean()).round(2)).to_string())
            rec = df[df["method"].isin(["binom", "lsq", "binom_prior", "binom_logL"])].groupby(["method", "top"])["top_hat"]
            print("fitted top, median [5%, 95%]:")
            print(pd.concat({"median": rec.median(), "q05": rec.quantile(0.05), "q95": rec.quantile(0.95)},
                            axis=1).unstack().round(3).to_string())
    if a.only in (None, "big"):
        big = pd.read_csv(a.big).iloc[0]
        print("\n## The 4x run: step 2 (fitted to the 20 scored runs) at its measured task loss; error in points")
        print(big_run(runs, big, tasks).to_string(index=False))
        print("\n## The 4x run: both steps (bench/study_downstream_check.py's table, N = params_compute, C = flops), "
              "old and new step 2, 100 bootstrap resamples; and each fit's holdout() of the grid's largest budget")
        print(two_step(runs, big, tasks).to_string(index=False))
    if a.only in (None, "step1"):
        big = pd.read_csv(a.big).iloc[0]
        df = step1(runs, big, tasks)
        print("\n## Step 1's form: old auto (nd) against new auto (held-out check); task loss error in %, accuracy "
              "error in points; new form's check = each form fitted without the grid's largest budget (3e16)")
        print(df.to_string(index=False))
        sig = df[~df["task"].isin(quiet)]
        for name in ("old", "new"):
            print(f"{name} auto, within {ds.WITHIN_POINTS:g} points: grid holdout "
                  f"{int((sig[f'{name} grid holdout'].abs() <= ds.WITHIN_POINTS).sum())} of {len(sig)} tasks with "
                  f"signal; 4x run {int((sig[f'{name} 4x'].abs() <= ds.WITHIN_POINTS).sum())} of {len(sig)} "
                  f"predicted ({len(quiet)} not predicted: no signal); "
                  f"mean |4x bpb error| {sig[f'{name} bpb %'].abs().mean():.1f}%")
    if a.only in (None, "signal"):
        L = np.sort(runs["bpb_cloze_prose"].dropna().to_numpy(float))
        print(f"\n## The no-signal rule on generated runs (the study's 20 task losses, 500 items, {a.seeds * 8} seeds): "
              "share called 'no signal', and by which rule (the first that applies: ceiling at chance, every run within z* "
              "of chance, deviance no better than chance)")
        print(signal_rate(L, a.seeds * 8).to_string(index=False))
    if a.only in (None, "cause"):
        big = pd.read_csv(a.big).iloc[0]
        print("\n## Where the 4x run's misses come from: step 1 (task loss, each form fitted to all scored runs) or "
              "step 2 (the sigmoid at the measured task loss); errors in % (task loss) and points (accuracy)")
        print(cause(runs, big, [t for t in tasks if t not in quiet]).to_string(index=False))
        print("\n## The same extrapolation on each domain's held-out loss (loss_<domain>, every run has it): the "
              "scored 20 runs against all 36; error at the 4x run in %")
        print(domain_loss(runs, big).to_string(index=False))


if __name__ == "__main__":
    main()
