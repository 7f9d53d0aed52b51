"""Downstream laws: a task's accuracy from (N, D) or compute, in two steps (Bhagia et al. 2024, the OLMo ladder).

    step 1  task loss   L(N, D) = E + A / N^alpha + B / D^beta                  form "nd" (approach 3's fit)
                        L(C)    = E + A / C^alpha                                form "c"
    step 2  accuracy    acc(L)  = chance + (top - chance) / (1 + (L / L0)^k)     k > 0: accuracy falls with L
                        (scale "log", the default; scale "linear": 1 + exp(k (L - L0)) in the denominator)

    fit(runs, task, config)      -> DownstreamLaw   both steps, bootstrap resamples of the runs for intervals
    holdout(runs, task, config)  -> Holdout         fitted without the largest budget; that budget's accuracy predicted
    fit_all(runs, config)        -> DownstreamFits  every task of the runs table (acc_<task> and bpb_<task> columns)
    synthetic_runs(...)          -> a runs table generated from known laws (tests, benchmarks)

The task loss is each run's bpb_<task>: bits per byte of the correct answer, the continuous metric the suite
reports (harness.downstream); DataDecide (Magnusson et al. 2025) found such metrics rank small-scale data choices
far better than accuracy. Step 1 is approach 3's Huber-on-log fit (analysis.laws.approach3.fit_theta) with the
task loss in place of the held-out loss; step 2 a sigmoid with the task's chance level as its floor
(chance_<task>, 0 where the runs do not say), fitted as DEFAULT_ACC_FIT says (ACC_FITS). Form "auto" chooses by a
held-out check (choose_form): each form fitted without the largest budget, the one whose task loss misses that
budget's runs by less is taken; with fewer than FORM_CHECK_MIN_BUDGETS budgets it takes "nd" when there are at least
approach3.MIN_RUNS runs, else "c". The law says which and why (DownstreamLaw.form_note, laws.json's
loss_form_choice). Intervals: DEFAULT_BOOTSTRAP resamples of the runs, both steps refitted on
each (step 1 from the full-data optimum: a local polish, not a new grid search).

A task whose fitted runs show no signal above chance (no_signal: every run within its standard errors of chance at a
family-wise level, or a step 2 that fits no better than chance, or a ceiling at chance) gets no accuracy: the law
keeps its task loss, says NO_SIGNAL, predicts nan accuracy, and a held-out check counts it as "not predicted".
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, minimize
from scipy.special import xlogy
from scipy.stats import chi2, norm

from analysis.bootstrap import one_blas_thread
from analysis.laws import approach3
from analysis.laws.approach2 import group_budgets
from analysis.laws.common import FitConfig, FitError, ci

FORMS = ("auto", "nd", "c")
MIN_RUNS_C = 4                 # form "c" has 3 parameters; step 2 another 3
DEFAULT_BOOTSTRAP = 100        # resamples per task and per fit (each refits both steps): seconds per report
# a resample's polish from the full-data optimum: approach 3's tolerances (ftol 1e-15, 2000 iterations) made one
# polish take 0.2-1.2 s at load 22; these take milliseconds and move the parameters by far less than their intervals
POLISH_OPTIONS = dict(ftol=1e-12, gtol=1e-8, maxiter=200)
WITHIN_POINTS = 3.0            # the target for the held-out budget's accuracy, in accuracy points
# a task loss that falls with N and D has exponents in (0, this]; approach 3's start grid spans [0, 2]. Outside it the
# fit is degenerate (a task whose loss does not move with scale, e.g. one still at chance, sends an exponent to
# -2000 and the prediction overflows to nan): form "auto" then falls back to the compute form
MAX_EXPONENT = 5.0
# form "auto"'s held-out check fits each form without the largest budget, so it needs 2 budgets left to fit on.
# Why a check and not the run count: on the GPU study's 20 runs "nd" predicted the 4x run's task loss 14-27% low on
# 6 of 7 tasks while "c" was within 0.01-0.05 bpb on four (bench/README.md, "Downstream step 1")
FORM_CHECK_MIN_BUDGETS = 3


# ---------------------------------------------------------------- step 2: accuracy from task loss
# How step 2 is fitted: (likelihood, scale of the task loss). "binomial": each run's accuracy is its item count's
# binomial draw (deviance minimised, so a run of 2500 items counts 5x one of 500 and accuracies near 1, whose
# variance is small, pull harder); "lsq": least squares on accuracy, every run alike. "log": logistic in log L, so
# accuracy reaches its ceiling as the task loss goes to 0; "linear": logistic in L (the OLMo ladder's form).
# bench/downstream_step2.py measured them on the GPU study's 20 scored runs (bench/README.md, "Downstream step 2"):
# with the 3 lowest-loss runs of each task held out, step 2 at their measured task loss misses by 1.0 points with
# binomial_log (noise floor 1.2) and by 2.8 with lsq_linear (always low); both steps without the largest budget:
# 7 of 7 tasks within 3 points against 3 of 7. On data generated from a sigmoid in L, lsq_linear does better.
ACC_FITS = {"binomial_log": ("binomial", "log"), "binomial_linear": ("binomial", "linear"),
            "lsq_log": ("lsq", "log"), "lsq_linear": ("lsq", "linear")}
DEFAULT_ACC_FIT = "binomial_log"
ACC_SCALES = ("log", "linear")
_P_EPS = 1e-9

# A task with no signal gets no accuracy prediction (the task loss is still predicted): a sigmoid fitted to runs at
# chance extrapolates noise (the GPU study's arith: every grid run at chance, the law said 0.250 [0.250, 0.250] for a
# 4x run that scored 0.290 +- 0.020). No signal when any of (no_signal):
#   - every run's accuracy within z* of its standard errors above chance, z* = the one-sided normal quantile at
#     SIGNAL_ALPHA / (number of runs) (Bonferroni: with every run truly at chance, a false "signal" at most
#     SIGNAL_ALPHA of the time however many runs there are; 20 runs: z* = 2.81);
#   - step 2's sigmoid fits the runs no better than "accuracy = chance" (binomial deviance gain below the chi-square
#     quantile at SIGNAL_ALPHA, 3 degrees of freedom: top, k, L0): runs above chance that do not rise as the task
#     loss falls (the study's arith has one run 2.90 se above chance, at a task loss where other runs sit at chance);
#   - its fitted ceiling within CEILING_AT_CHANCE of chance.
# The first two need item counts (n_items_<task> or se_<task>); without them only the third is tested (said).
SIGNAL_ALPHA = 0.05
CEILING_AT_CHANCE = 0.02
NO_SIGNAL = "no signal above chance in the fitted runs: accuracy not predicted (only the task loss)"
NOT_PREDICTED = "not predicted"      # a held-out check's status for such a task: neither within nor a miss


@dataclass(frozen=True)
class Sigmoid:
    """acc(L) = chance + (top - chance) / (1 + exp(k (x - x0))), x = log L and x0 = log L0 (scale "log": the
    same as (L / L0)^k in the denominator) or x = L and x0 = L0 (scale "linear"). k > 0: accuracy falls with L."""
    chance: float
    top: float
    k: float
    L0: float
    scale: str

    def __post_init__(self):
        if self.scale not in ACC_SCALES:
            raise ValueError(f"Sigmoid scale={self.scale!r}: use one of {ACC_SCALES}")

    def __call__(self, L):
        L = np.asarray(L, float)
        z = self.k * (np.log(L / self.L0) if self.scale == "log" else L - self.L0)
        return self.chance + (self.top - self.chance) / (1 + np.exp(np.clip(z, -500, 500)))


def _deviance_residuals(p, acc, n):
    """Signed binomial deviance residuals: their squares sum to the deviance, so least squares on them is the
    maximum-likelihood fit."""
    p = np.clip(p, _P_EPS, 1 - _P_EPS)
    d = 2 * n * (xlogy(acc, acc / p) + xlogy(1 - acc, (1 - acc) / (1 - p)))
    return np.sign(acc - p) * np.sqrt(np.maximum(d, 0))


def fit_sigmoid(L: np.ndarray, acc: np.ndarray, chance: float, n: np.ndarray | None = None,
                start: Sigmoid | None = None, how: str | None = None) -> Sigmoid:
    """Step 2 over (top, k, L0), top in [chance, 1], k > 0, fitted as `how` (ACC_FITS; None: DEFAULT_ACC_FIT): a
    few starts (or `start`, a fit made the same way) and the best kept. n: each run's item count (the binomial
    likelihood's; None: every run alike)."""
    how = DEFAULT_ACC_FIT if how is None else how
    if how not in ACC_FITS:
        raise FitError(f"downstream law: step 2 fit {how!r}: use one of {tuple(ACC_FITS)}")
    likelihood, scale = ACC_FITS[how]
    L, acc = np.asarray(L, float), np.asarray(acc, float)
    n = np.ones_like(L) if n is None else np.asarray(n, float)
    x = np.log(L) if scale == "log" else L
    span = max(float(np.ptp(x)), 1e-6)
    lo, hi = [chance + 1e-9, 1e-3 / span, x.min() - 3 * span], [1.0, 1e3 / span, x.max() + 3 * span]
    starts = [(start.top, start.k, np.log(start.L0) if scale == "log" else start.L0)] if start else [
        (top, k / span, x0) for top in (min(1.0, acc.max() + 0.05), 1.0) for k in (2.0, 8.0)
        for x0 in np.quantile(x, (0.25, 0.5, 0.75))]

    def curve(p):
        return Sigmoid(chance, p[0], p[1], float(np.exp(p[2])) if scale == "log" else p[2], scale)

    def resid(p):
        pred = curve(p)(L)
        return _deviance_residuals(pred, acc, n) if likelihood == "binomial" else pred - acc

    best = None
    for x0 in starts:
        x0 = np.clip(x0, np.add(lo, 1e-12), np.subtract(hi, 1e-12))
        res = least_squares(resid, x0, bounds=(lo, hi), x_scale="jac")
        if best is None or res.cost < best.cost:
            best = res
    return curve(list(map(float, best.x)))


def no_signal(acc: np.ndarray, n: np.ndarray, chance: float, curve: Sigmoid, L: np.ndarray) -> str | None:
    """Why the runs (accuracies acc of n items each, task losses L) give step 2 nothing to predict with (NO_SIGNAL
    and the rule that said so), or None when they show a signal. curve: step 2 fitted to them."""
    acc, n, L = (np.asarray(x, float) for x in (acc, n, L))
    if curve.top - chance < CEILING_AT_CHANCE:
        return f"{NO_SIGNAL}; the fitted ceiling {curve.top:.3f} is at chance ({chance:.3g})"
    if not (n > 1).all():     # item_counts found no count: the standard errors are unknown
        return None
    se = np.sqrt(acc * (1 - acc) / (n - 1))   # harness.downstream's standard error
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(acc <= chance, 0.0, np.where(se > 0, (acc - chance) / se, np.inf))
    z_star = float(norm.isf(SIGNAL_ALPHA / len(acc)))
    if z.max() <= z_star:
        return (f"{NO_SIGNAL}; every run within {z_star:.2f} standard errors of chance {chance:.3g} (the highest "
                f"{z.max():.2f} above; {len(acc)} runs, family-wise {SIGNAL_ALPHA:g})")
    gain = float(np.sum(_deviance_residuals(np.full_like(acc, chance), acc, n) ** 2)
                 - np.sum(_deviance_residuals(curve(L), acc, n) ** 2))
    if gain < (crit := float(chi2.isf(SIGNAL_ALPHA, 3))):
        return (f"{NO_SIGNAL}; step 2 fits the runs no better than chance (binomial deviance gain {gain:.2f} < "
                f"{crit:.2f}, chi-square with 3 degrees of freedom at {SIGNAL_ALPHA:g})")
    return None


# ---------------------------------------------------------------- step 1: task loss from (N, D) or C
@dataclass(frozen=True)
class TaskLoss:
    form: str
    params: dict[str, float]       # nd: E, A, B, alpha, beta; c: E, A, alpha

    def __call__(self, N, D, C):
        p = self.params
        if self.form == "nd":
            return p["E"] + p["A"] / np.asarray(N, float) ** p["alpha"] + p["B"] / np.asarray(D, float) ** p["beta"]
        return p["E"] + p["A"] / np.asarray(C, float) ** p["alpha"]

    def formula(self) -> str:
        """The fitted form as text, e.g. "1.2 + 34/N^0.300 + 56/D^0.280" (nd) or "1.2 + 34/C^0.150" (c)."""
        p = self.params
        return (f"{p['E']:.3g} + {p['A']:.3g}/N^{p['alpha']:.3f} + {p['B']:.3g}/D^{p['beta']:.3f}"
                if self.form == "nd" else f"{p['E']:.3g} + {p['A']:.3g}/C^{p['alpha']:.3f}")


def _theta_nd(theta: np.ndarray) -> dict[str, float]:
    e, a, b, al, be = map(float, theta)
    return {"E": np.exp(e), "A": np.exp(a), "B": np.exp(b), "alpha": al, "beta": be}


def degenerate(loss: TaskLoss) -> str | None:
    """Why a fitted task loss cannot be used for prediction (an exponent outside (0, MAX_EXPONENT], a
    non-finite parameter), or None."""
    bad = [f"{k}={v:.4g}" for k, v in loss.params.items() if not np.isfinite(v)]
    bad += [f"{k}={loss.params[k]:.4g}" for k in ("alpha", "beta") if k in loss.params
            and np.isfinite(loss.params[k]) and not 0 < loss.params[k] <= MAX_EXPONENT]
    return ", ".join(bad) or None


def fit_task_loss(N, D, C, L, form: str, start: TaskLoss | None = None) -> TaskLoss:
    logN, logD, logC, logL = (np.log(np.asarray(x, float)) for x in (N, D, C, L))
    if form == "nd":
        w = np.ones_like(logL)
        if start is None:
            theta, _ = approach3.fit_theta(logN, logD, logL, w)
        else:   # a bootstrap resample: polish from the full-data optimum
            p = start.params
            theta0 = np.log([p["E"], p["A"], p["B"]]).tolist() + [p["alpha"], p["beta"]]
            mN, mD = logN.mean(), logD.mean()
            res = minimize(approach3.objective, approach3.centre(np.array(theta0), mN, mD), jac=True,
                           args=(logN - mN, logD - mD, logL, w), method="L-BFGS-B", options=POLISH_OPTIONS)
            theta = approach3.centre(res.x, mN, mD, -1)
        return TaskLoss("nd", _theta_nd(theta))
    # form "c": log L = log(E + A C^-alpha), least squares in log space over (log E, log A, alpha)
    def resid(p):
        return np.logaddexp(p[0], p[1] - p[2] * logC) - logL
    starts = ([[np.log(start.params["E"]), np.log(start.params["A"]), start.params["alpha"]]] if start else
              [[np.log(0.5 * np.min(np.exp(logL))), np.log(np.ptp(np.exp(logL)) + 1e-9) + al * logC.mean(), al]
               for al in (0.05, 0.15, 0.3, 0.6)])
    best = min((least_squares(resid, x0, bounds=([-20, -50, 0.0], [20, 200, 3.0])) for x0 in starts),
               key=lambda r: r.cost)
    return TaskLoss("c", {"E": float(np.exp(best.x[0])), "A": float(np.exp(best.x[1])), "alpha": float(best.x[2])})


# ---------------------------------------------------------------- form "auto": a held-out check
@dataclass(frozen=True)
class FormChoice:
    form: str
    note: str                      # which form and why, for the law's summary
    errors: dict[str, float]       # per form checked: mean |relative error| (%) of the held-out budget's task loss
    by_rule: bool                  # True: too few budgets (or no form fitted) for the check; the run-count rule chose


def choose_form(t: pd.DataFrame, groups: pd.Series) -> FormChoice:
    """Form "auto": fit "nd" and "c" to the runs of all but the largest budget (groups: each run's budget id, as
    approach2.group_budgets) and keep the form whose task loss misses that budget's runs by less (mean |relative
    error|); the larger budget is what a law is asked to predict, so this is the same question one step smaller.
    It never sees a run beyond the table's largest budget. A form that cannot be fitted there (too few runs, a
    degenerate fit) loses; with fewer than FORM_CHECK_MIN_BUDGETS budgets, or neither form fitted, the run-count
    rule: "nd" with at least approach3.MIN_RUNS runs, else "c"."""
    rule = "nd" if len(t) >= approach3.MIN_RUNS else "c"
    rule_why = f"{len(t)} runs ({'>=' if rule == 'nd' else '<'} {approach3.MIN_RUNS} for nd)"
    nb = groups.nunique()
    if nb < FORM_CHECK_MIN_BUDGETS:
        return FormChoice(rule, f"form {rule} by run count, {rule_why}: {nb} budget(s), too few for the held-out "
                                f"check (needs {FORM_CHECK_MIN_BUDGETS})", {}, True)
    top = (groups == groups.max()).to_numpy()
    fit_t, held = t[~top], t[top]
    errors, why_not = {}, {}
    for form, need in (("nd", approach3.MIN_RUNS), ("c", MIN_RUNS_C)):
        if len(fit_t) < need:
            why_not[form] = f"{len(fit_t)} runs below the largest budget, needs {need}"
            continue
        try:
            loss = fit_task_loss(fit_t["N"], fit_t["D"], fit_t["C"], fit_t["L"], form)
        except (ValueError, np.linalg.LinAlgError) as e:
            why_not[form] = f"fit failed ({e})"
            continue
        if bad := degenerate(loss):
            why_not[form] = f"degenerate ({bad})"
            continue
        with np.errstate(all="ignore"):
            err = 100 * float(np.mean(np.abs(loss(held["N"], held["D"], held["C"]) / held["L"] - 1)))
        if np.isfinite(err):
            errors[form] = err
        else:
            why_not[form] = "no finite prediction"
    C_held = float(np.exp(np.log(held["C"]).mean()))
    scores = ", ".join(f"{f} {e:.1f}%" for f, e in errors.items())
    fails = "; ".join(f"{f}: {w}" for f, w in why_not.items())
    where = (f"held-out check, the largest budget (C = {C_held:.3g}, {len(held)} run(s)) fitted without: "
             f"mean |task-loss error| {scores or 'none'}" + (f" ({fails})" if fails else ""))
    if not errors:
        return FormChoice(rule, f"form {rule} by run count, {rule_why}: neither form fitted in the {where}",
                          errors, True)
    # a tie keeps the run-count rule's form
    form = min(errors, key=lambda f: (errors[f], f != rule))
    return FormChoice(form, f"form {form} by the {where}", errors, False)


# ---------------------------------------------------------------- both steps
@dataclass
class DownstreamLaw:
    task: str
    loss: TaskLoss
    acc: Sigmoid
    n_runs: int
    ci_level: float
    acc_fit: str                   # how step 2 was fitted (ACC_FITS)
    samples: list[tuple[TaskLoss, Sigmoid]] = field(default_factory=list)   # bootstrap refits
    warnings: list[str] = field(default_factory=list)
    form_note: str = ""            # how step 1's form was chosen (form "auto": choose_form's note; else "asked for")
    no_signal: str | None = None   # why the accuracy is not predicted (module function no_signal), or None

    @property
    def predicts_accuracy(self) -> bool:
        return self.no_signal is None

    def predict(self, N, D, C) -> tuple[np.ndarray, np.ndarray]:
        """(task loss, accuracy) at (N, D, C); the accuracy is nan for a task without signal (no_signal)."""
        L = self.loss(N, D, C)
        return L, (self.acc(L) if self.predicts_accuracy else np.full(np.shape(L), np.nan))

    def summary(self) -> str:
        """One line: step 1's fitted form, then step 2's sigmoid or why there is none."""
        s = self.acc
        step2 = (self.no_signal if self.no_signal else
                 f"accuracy {s.chance:.3g} + ({s.top:.3f} - {s.chance:.3g}) / (1 + (L / {s.L0:.3g})^{s.k:.3g})"
                 if s.scale == "log" else
                 f"accuracy {s.chance:.3g} + ({s.top:.3f} - {s.chance:.3g}) / (1 + exp({s.k:.3g} (L - {s.L0:.3g})))")
        return f"{self.task}: task loss L = {self.loss.formula()} (form {self.loss.form}, {self.n_runs} runs); {step2}"

    def interval(self, N, D, C, what: str = "acc") -> tuple[np.ndarray, np.ndarray]:
        """The ci_level bootstrap interval of the predicted accuracy (what="acc"; nan without signal) or task loss
        ("loss")."""
        if not self.samples or (what == "acc" and not self.predicts_accuracy):
            nan = np.full(np.shape(np.asarray(N, float)), np.nan)
            return nan, nan
        draws = np.array([(lo(N, D, C) if what == "loss" else sg(lo(N, D, C))) for lo, sg in self.samples])
        q = (1 - self.ci_level) / 2
        return np.quantile(draws, q, axis=0), np.quantile(draws, 1 - q, axis=0)

    def param_ci(self, step: str, name: str) -> tuple[float, float]:
        vals = np.array([(lo.params[name] if step == "loss" else getattr(sg, name)) for lo, sg in self.samples])
        return ci(vals, self.ci_level) if len(vals) else (np.nan, np.nan)


def tasks_in(runs: pd.DataFrame) -> list[str]:
    """Tasks with both an accuracy and a task-loss column, in column order."""
    return [c.removeprefix("acc_") for c in runs.columns
            if c.startswith("acc_") and f"bpb_{c.removeprefix('acc_')}" in runs.columns
            and pd.to_numeric(runs[c], errors="coerce").notna().any()]


def _table(runs: pd.DataFrame, task: str, cfg: FitConfig) -> pd.DataFrame:
    cols = {"N": cfg.n_col, "D": "tokens", "C": cfg.c_col, "L": f"bpb_{task}", "acc": f"acc_{task}"}
    missing = [c for c in cols.values() if c not in runs.columns]
    if missing:
        raise FitError(f"downstream law {task}: the runs table lacks column(s) {missing}")
    t = pd.DataFrame({k: pd.to_numeric(runs[c], errors="coerce").to_numpy(float) for k, c in cols.items()},
                     index=runs.index)
    ok = np.isfinite(t).all(axis=1) & (t[["N", "D", "C", "L"]] > 0).all(axis=1)
    t["n"] = item_counts(runs, task)
    return t[ok]


def item_counts(runs: pd.DataFrame, task: str) -> np.ndarray:
    """Each run's item count, step 2's binomial weight: n_items_<task>; where that is missing, from the standard
    error (harness.downstream's se = sqrt(p (1 - p) / (n - 1)); `cloze`, the mean over domains, has only se_cloze);
    else the median of the others, or 1 for every run when no run says (then all runs count alike)."""
    def col(c):
        return (pd.to_numeric(runs[c], errors="coerce").to_numpy(float) if c in runs.columns
                else np.full(len(runs), np.nan))
    n = col(f"n_items_{task}")
    p, se = col(f"acc_{task}"), col(f"se_{task}")
    with np.errstate(divide="ignore", invalid="ignore"):
        from_se = np.where(se > 0, p * (1 - p) / se ** 2 + 1, np.nan)
    n = np.where(np.isfinite(n) & (n > 0), n, from_se)
    known = n[np.isfinite(n) & (n > 0)]
    return np.where(np.isfinite(n) & (n > 0), n, float(np.median(known)) if len(known) else 1.0)


# tasks harness.downstream writes as the mean of their per-domain tasks (<task>_<domain>)
MEAN_TASKS = ("cloze",)


def chance_of(runs: pd.DataFrame, task: str) -> float:
    """The task's floor: chance_<task>; for an aggregate without one (`cloze`, the mean over cloze_<domain>, whose
    chance harness.downstream writes only since session 9) the mean of its members' chances; else 0."""
    def first(col):
        vals = pd.to_numeric(runs[col], errors="coerce").dropna() if col in runs.columns else pd.Series([], dtype=float)
        return float(vals.iloc[0]) if len(vals) else None
    if (own := first(f"chance_{task}")) is not None:
        return own
    if task not in MEAN_TASKS:
        return 0.0
    members = [m for c in runs.columns if c.startswith(f"chance_{task}_") and (m := first(c)) is not None]
    return float(np.mean(members)) if members else 0.0


def fit(runs: pd.DataFrame, task: str, config: FitConfig | None = None, form: str = "auto",
        n_bootstrap: int | None = None, chance: float | None = None, acc_fit: str | None = None) -> DownstreamLaw:
    """Both steps on every usable run with acc_<task> and bpb_<task>; FitError naming what is missing.
    acc_fit: how step 2 is fitted (ACC_FITS; None: DEFAULT_ACC_FIT)."""
    cfg = config or FitConfig()
    if form not in FORMS:
        raise FitError(f"downstream law: form={form!r}: use one of {FORMS}")
    acc_fit = DEFAULT_ACC_FIT if acc_fit is None else acc_fit
    if acc_fit not in ACC_FITS:
        raise FitError(f"downstream law: acc_fit={acc_fit!r}: use one of {tuple(ACC_FITS)}")
    t = _table(runs, task, cfg)
    chance = chance_of(runs, task) if chance is None else chance
    auto = form == "auto"
    with warnings.catch_warnings(), one_blas_thread():
        warnings.simplefilter("ignore")
        choice = choose_form(t, group_budgets(runs.loc[t.index])) if auto else None
    form = choice.form if auto else form
    need = approach3.MIN_RUNS if form == "nd" else MIN_RUNS_C
    if len(t) < need:
        raise FitError(f"downstream law {task}: {len(t)} usable run(s) with acc_{task} and bpb_{task}; form "
                       f"{form!r} needs at least {need} (run the sweep with eval.downstream=[suite])")
    flat = np.ptp(t["acc"]) == 0
    if flat and t["acc"].iloc[0] > chance:
        raise FitError(f"downstream law {task}: every run has accuracy {t['acc'].iloc[0]:.3g}: no sigmoid to fit")
    with warnings.catch_warnings(), one_blas_thread():   # L-BFGS-B's BLAS calls on 5 parameters: threads only cost
        warnings.simplefilter("ignore")
        loss = fit_task_loss(t["N"], t["D"], t["C"], t["L"], form)
        fallback = None
        if auto and form == "nd" and (why := degenerate(loss)):
            fallback, form = why, "c"
            loss = fit_task_loss(t["N"], t["D"], t["C"], t["L"], form)
        if why := degenerate(loss):
            raise FitError(f"downstream law {task}: the task loss (bpb_{task}) fit is degenerate ({why}): it does "
                           "not fall with scale across these runs (a task still at chance?); no prediction")
        if flat:   # every run at the same accuracy, at or below chance: a flat line at chance, no signal
            acc = Sigmoid(chance, chance, 1.0, float(np.median(t["L"])), ACC_FITS[acc_fit][1])
            why = f"{NO_SIGNAL}; every run has accuracy {t['acc'].iloc[0]:.3g} (chance {chance:.3g})"
        else:
            acc = fit_sigmoid(t["L"], t["acc"], chance, t["n"], how=acc_fit)
            why = no_signal(t["acc"], t["n"], chance, acc, t["L"])
        law = DownstreamLaw(task, loss, acc, len(t), cfg.ci_level, acc_fit,
                            form_note=choice.note if auto else f"form {form} asked for", no_signal=why)
        B = DEFAULT_BOOTSTRAP if n_bootstrap is None else n_bootstrap
        rng = np.random.default_rng(cfg.seed)
        for _ in range(B):
            s = t.iloc[rng.integers(len(t), size=len(t))]
            if s["N"].nunique() < 2 or (law.predicts_accuracy and np.ptp(s["acc"]) == 0):
                continue
            try:
                sample = fit_task_loss(s["N"], s["D"], s["C"], s["L"], form, start=loss)
                if degenerate(sample):   # a resample without the runs that pin an exponent: no prediction from it
                    continue
                # no signal: only the task loss's interval is used, so step 2 is not refitted
                law.samples.append((sample, fit_sigmoid(s["L"], s["acc"], chance, s["n"], start=acc, how=acc_fit)
                                    if law.predicts_accuracy else acc))
            except (ValueError, np.linalg.LinAlgError):
                continue
    if fallback:
        law.form_note += f"; on all runs nd was degenerate ({fallback}), so c"
        law.warnings.append(f"downstream law {task}: the task loss in (N, D) was degenerate ({fallback}); fitted "
                            "in compute instead (form c)")
    elif auto and not choice.by_rule and choice.form == "c" and len(t) >= approach3.MIN_RUNS:
        # the old rule would have taken nd here: say so, since the two forms extrapolate differently
        law.warnings.append(f"downstream law {task}: step 1 in compute (form c), not (N, D): {choice.note}")
    if law.no_signal:
        law.warnings.append(f"downstream law {task}: {law.no_signal}")
    elif not (t["n"] > 1).all():
        law.warnings.append(f"downstream law {task}: no item counts (n_items_{task} or se_{task}), so whether the "
                            "runs rise above chance was judged by the fitted ceiling alone")
    return law


# ---------------------------------------------------------------- validation: the largest budget held out
@dataclass
class Holdout:
    task: str
    budget: float                 # geometric mean C of the held-out runs
    n_fit_runs: int
    table: pd.DataFrame           # held-out runs: N, D, C, loss, acc, predicted loss, predicted acc, interval
    form: str = ""                # step 1's form in the law fitted without the largest budget
    form_note: str = ""           # and why (form "auto": chosen with the next budget down held out)
    no_signal: str | None = None  # that law's no_signal: the accuracy was not predicted (acc_pred nan)

    @property
    def measured(self) -> float:
        return float(self.table["acc"].mean())

    @property
    def predicted(self) -> float:
        """The mean predicted accuracy; nan when not predicted."""
        return float(self.table["acc_pred"].mean()) if self.no_signal is None else float("nan")

    @property
    def error_points(self) -> float:
        """Predicted minus measured mean accuracy of the held-out runs, in accuracy points (x100); nan when not
        predicted."""
        return 100 * (self.predicted - self.measured)

    @property
    def within(self) -> bool | None:
        """Within WITHIN_POINTS; None when the accuracy was not predicted (neither a hit nor a miss)."""
        return None if self.no_signal else bool(abs(self.error_points) <= WITHIN_POINTS)

    @property
    def status(self) -> str:
        """f"within {WITHIN_POINTS:g}", "miss" or NOT_PREDICTED."""
        return NOT_PREDICTED if self.no_signal else f"within {WITHIN_POINTS:g}" if self.within else "miss"


def holdout(runs: pd.DataFrame, task: str, config: FitConfig | None = None, form: str = "auto",
            n_bootstrap: int | None = None, acc_fit: str | None = None) -> Holdout:
    """Fit both steps without the largest budget; predict the accuracy of that budget's runs."""
    cfg = config or FitConfig()
    t = _table(runs, task, cfg)
    groups = group_budgets(runs.loc[t.index])
    if groups.nunique() < 3:
        raise FitError(f"downstream holdout {task}: {groups.nunique()} budget(s); holding one out needs at least 3")
    top = (groups == groups.max()).to_numpy()
    law = fit(runs.loc[t.index[~top]], task, cfg, form, n_bootstrap, chance=chance_of(runs, task), acc_fit=acc_fit)
    held = t[top].copy()
    held["L_pred"], held["acc_pred"] = law.predict(held["N"], held["D"], held["C"])
    if law.predicts_accuracy and not np.isfinite(held["acc_pred"]).all():
        raise FitError(f"downstream holdout {task}: the law fitted without the largest budget predicts no finite "
                       "accuracy there")
    lo, hi = law.interval(held["N"], held["D"], held["C"])
    held["acc_lo"], held["acc_hi"] = lo, hi
    return Holdout(task, float(np.exp(np.log(held["C"]).mean())), law.n_runs, held.reset_index(drop=True),
                   law.loss.form, law.form_note, law.no_signal)


@dataclass
class DownstreamFits:
    laws: dict[str, DownstreamLaw]
    holdouts: dict[str, Holdout]
    failures: dict[str, str]
    config: FitConfig

    @property
    def warnings(self) -> list[str]:
        return [w for law in self.laws.values() for w in law.warnings]

    def holdout_counts(self) -> dict[str, int]:
        """The held-out-budget checks counted: within WITHIN_POINTS, missed, and not predicted (no signal)."""
        status = [h.status for h in self.holdouts.values()]
        return {"within": sum(s.startswith("within") for s in status), "miss": status.count("miss"),
                NOT_PREDICTED: status.count(NOT_PREDICTED)}

    def to_content(self) -> dict:
        """laws.json's "downstream" entry (analysis.lawfile checks it)."""
        def one(law: DownstreamLaw) -> dict:
            h = self.holdouts.get(law.task)
            # no signal: no sigmoid a reader could take for a prediction (acc_params null, no_signal says why)
            acc = ({"chance": law.acc.chance, "top": law.acc.top, "k": law.acc.k, "L0": law.acc.L0}
                   if law.predicts_accuracy else None)
            return {"loss_form": law.loss.form, "loss_form_choice": law.form_note,
                    "loss_params": dict(law.loss.params), "acc_fit": law.acc_fit,
                    "acc_scale": law.acc.scale, "acc_params": acc, "no_signal": law.no_signal,
                    "n_runs": law.n_runs, "n_bootstrap": len(law.samples),
                    "holdout": None if h is None else {
                        "budget": h.budget, "n_fit_runs": h.n_fit_runs, "measured": h.measured,
                        "predicted": h.predicted if h.within is not None else None,
                        "error_points": h.error_points if h.within is not None else None,
                        "within": h.within, "status": h.status, "no_signal": h.no_signal}}
        return {"form": "acc = chance + (top - chance) / (1 + exp(k (x - x0))), x = log L, x0 = log L0 (acc_scale "
                        "log) or x = L, x0 = L0 (linear); L = bpb_<task>(N, D or C)",
                "tasks": {t: one(law) for t, law in self.laws.items()}, "failures": dict(self.failures)}


def has_downstream(runs: pd.DataFrame) -> bool:
    return bool(tasks_in(runs))


def fit_all(runs: pd.DataFrame, config: FitConfig | None = None, n_bootstrap: int | None = None,
            acc_fit: str | None = None) -> DownstreamFits:
    cfg = config or FitConfig()
    tasks = tasks_in(runs)
    if not tasks:
        raise FitError("downstream laws: no acc_<task> with bpb_<task> columns (run the sweep with "
                       "eval.downstream=[suite])")
    out = DownstreamFits({}, {}, {}, cfg)
    for task in tasks:
        try:
            out.laws[task] = fit(runs, task, cfg, n_bootstrap=n_bootstrap, acc_fit=acc_fit)
        except FitError as e:
            out.failures[task] = str(e)
            continue
        try:
            out.holdouts[task] = holdout(runs, task, cfg, n_bootstrap=n_bootstrap, acc_fit=acc_fit)
        except FitError as e:
            out.failures[f"{task} holdout"] = str(e)
    return out


# ---------------------------------------------------------------- known laws, for tests and benchmarks
def synthetic_runs(loss: TaskLoss, acc: Sigmoid, budgets, task: str = "syn", sizes_per_budget: int = 5,
                   span: float = 16.0, loss_noise: float = 0.005, n_items: int = 500, seed: int = 0) -> pd.DataFrame:
    """Runs on isoFLOP lines (C = 6 N D, sizes spread by `span` around sqrt(C/6) * 0.3): bpb_<task> from `loss` with
    log-normal noise, acc_<task> the fraction correct of n_items binomial draws at acc(loss) (0: noiseless)."""
    rng = np.random.default_rng(seed)
    rows = []
    for C in budgets:
        for N in 0.3 * np.sqrt(C / 6) * np.geomspace(span ** -0.5, span ** 0.5, sizes_per_budget):
            D = C / (6 * N)
            L = float(loss(N, D, C)) * np.exp(loss_noise * rng.standard_normal())
            p = float(acc(L))
            a = rng.binomial(n_items, p) / n_items if n_items else p
            rows.append({"run_id": f"r{len(rows):04d}", "budget": C, "params_nonembedding": N, "tokens": D,
                         "flops": C, "flops_6n": C, f"bpb_{task}": L, f"acc_{task}": a, f"chance_{task}": acc.chance,
                         f"n_items_{task}": n_items or np.nan})
    return pd.DataFrame(rows)


__all__ = ["ACC_FITS", "DEFAULT_ACC_FIT", "NOT_PREDICTED", "NO_SIGNAL", "DownstreamFits", "DownstreamLaw",
           "FormChoice", "Holdout", "Sigmoid", "TaskLoss", "choose_form", "fit", "fit_all", "fit_sigmoid",
           "fit_task_loss", "has_downstream", "holdout", "item_counts", "no_signal", "synthetic_runs", "tasks_in"]
