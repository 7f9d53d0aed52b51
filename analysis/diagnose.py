"""When a law misfits: which recorded run properties its residuals track, and what to change in the sweep.

    properties(runs, n_col)                      -> DataFrame: per run, the candidate causes (PROPERTIES) that
                                                    its result.json columns give
    diagnose(runs, residuals, noise, n_col, refit=None) -> Diagnosis: rank statistics per property, the
                                                    confirming refits, and the cause named (or none)
    leave_one_budget_out(runs, config, refit)    -> DataFrame: each budget's runs predicted by the law fitted to
                                                    the other budgets (log residual per run)

Two kinds of evidence, both reported. (1) Rank tests on the in-sample residuals: each property's Spearman
correlation with the signed residual (runs at one end sit above the law) and with its absolute value (the misfit
concentrates at one end), with 90% intervals; significant after a Bonferroni correction over every test made
here (family-wise level ALPHA). A law bends to fit the runs it misses, so in-sample residuals smear a cause over
all runs: these tests screen, they do not decide. (2) With `refit`, for each property: the law fitted without the
runs at its bad end (SPLITS thresholds, from MIN_SIDE runs left out up to half of them, MIN_KEPT kept),
predicting the runs left out (the threshold: the fewest runs left out that fit the rest within PARSIMONY of
the best such refit). A cause is named when such a refit lowers the kept runs' RMS by MIN_GAIN or
more and leaves the runs it left out above the law (ONE_SIDED_SHARE of them, their mean beyond ONE_SIDED_SDS
times the larger of the noise sd and the kept runs' RMS: an unmodelled defect of training raises the loss; a wildly extrapolated law errs either way); of those, the
property whose left-out runs are predicted worst relative to the kept runs' fit (Refit.separation). Without
`refit`, the strongest significant rank test names it. Properties whose values rank almost identically across
the runs (|rank correlation| >= COLLINEAR) cannot be told apart by these runs: they are named together (a sweep
with one batch size: optimizer steps, tokens and epochs are one variable).

Pure functions of the runs table and residuals (`refit` is passed in: nothing here imports a law).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05               # family-wise level of the rank tests (Bonferroni over properties x 2 tests)
MIN_RUNS = 8               # fewer residuals: no diagnosis
MIN_SIDE = 4               # runs on each side of a split
COLLINEAR = 0.95           # |Spearman| between two properties at or above which these runs cannot separate them
ONE_SIDED_SDS = 3.0        # left-out runs sit above the refitted law when their mean error exceeds this many sds
MIN_GAIN = 1.5             # a confirming refit must lower the kept runs' RMS by at least this factor
ONE_SIDED_SHARE = 0.75     # ... and leave at least this share of the left-out runs on one side of the law
SPLITS = 8                 # thresholds tried per property by the confirming refits, geometric in runs left out
MIN_KEPT = 10              # ... from MIN_SIDE up to half of the runs left out, at least MIN_KEPT kept
PARSIMONY = 1.25           # the threshold: fewest runs left out whose refit's kept RMS is within this of the best
SPEARMAN_SE = 1.06         # var(atanh(rho_s)) ~ 1.06 / (n - 3) (Fieller, Hartley and Pearson 1957)
CI_LEVEL = 0.9             # the rank correlations' intervals


@dataclass(frozen=True)
class Property:
    key: str
    label: str                          # how the report names it
    unit: str                           # how a threshold on it is written ("{:.0f} optimizer steps")
    log: bool                           # ranks do not care; the split threshold is a geometric midpoint when True


PROPERTIES = (
    Property("steps", "optimizer steps", "{:.0f} optimizer steps", True),
    Property("tokens_per_param", "tokens per parameter (D/N)", "{:.3g} tokens per parameter", True),
    Property("epochs", "epochs of data repetition (most-read domain)", "{:.2g} epochs", True),
    Property("lr", "learning rate", "lr {:.3g}", True),
    Property("depth", "depth (n_layers)", "{:g} layers", False),
    Property("width", "width (d_model)", "d_model {:.0f}", True),
    Property("head_share", "output head's share of the compute count", "a head share of {:.2f}", False),
    Property("off_optimum", "distance in N from the budget's lowest-loss size (abs log)",
             "{:.2f} in abs(log N / N_best)", False),
)
BY_KEY = {p.key: p for p in PROPERTIES}


def properties(runs: pd.DataFrame, n_col: str) -> pd.DataFrame:
    """Per run (same index as `runs`): each property its columns give; a property whose columns are missing is
    absent. epochs: the most-read domain's tokens read over its train tokens (w_<d> x tokens / corpus_tokens_<d>),
    or tokens over the corpus when the mixture is not recorded."""
    num = lambda c: pd.to_numeric(runs[c], errors="coerce") if c in runs else None     # noqa: E731
    out = pd.DataFrame(index=runs.index)
    tokens, N = num("tokens"), num(n_col)
    if num("steps") is not None:
        out["steps"] = num("steps")
    if tokens is not None and N is not None:
        out["tokens_per_param"] = tokens / N
    corpus = {c[len("corpus_tokens_"):]: num(c) for c in runs if c.startswith("corpus_tokens_")}
    if tokens is not None and corpus:
        weighted = [tokens * num(f"w_{d}") / n for d, n in corpus.items() if f"w_{d}" in runs]
        out["epochs"] = pd.concat(weighted, axis=1).max(axis=1) if weighted else tokens / sum(corpus.values())
    for key, col in (("lr", "lr"), ("depth", "n_layers"), ("width", "d_model")):
        if col in runs:
            out[key] = num(col)
    if {"params_head", "params_compute"} <= set(runs):
        out["head_share"] = num("params_head") / num("params_compute")
    if "budget" in runs and N is not None and "loss" in runs:
        idx = runs.groupby("budget")["loss"].idxmin()
        n_best = runs["budget"].map(dict(zip(runs.loc[idx, "budget"], N.loc[idx])))
        out["off_optimum"] = np.abs(np.log(N / pd.to_numeric(n_best, errors="coerce")))
    return out


@dataclass(frozen=True)
class Association:
    """One property against the residuals."""
    key: str
    n: int
    rho: float                          # Spearman(property, residual): > 0, runs with larger values sit above
    rho_ci: tuple[float, float]
    p: float
    rho_abs: float                      # Spearman(property, |residual|): > 0, the misfit grows with the property
    rho_abs_ci: tuple[float, float]
    p_abs: float
    threshold: float                    # the split that separates the residual RMS most
    bad_side: str                       # "below" | "above" the threshold: where the larger RMS is
    rms_bad: float
    n_bad: int
    rms_good: float
    n_good: int
    mean_bad: float                     # mean residual on the bad side (> 0: above the law)

    @property
    def p_min(self) -> float:
        return min(self.p, self.p_abs)

    def strength(self) -> float:
        return max(abs(self.rho), abs(self.rho_abs))


@dataclass(frozen=True)
class Refit:
    """The law fitted without the runs on one side of a threshold on a property, predicting the runs left out."""
    key: str
    threshold: float
    side: str                           # the runs left out: "below" | "above" the threshold
    n_kept: int
    rms_kept: float                     # residual RMS of the kept runs (dof-corrected like verdict's)
    n_left: int
    mean_left: float                    # mean log(measured / predicted) of the left-out runs
    rms_left: float
    share_above: float                  # share of left-out runs above the refitted law

    @property
    def above(self) -> bool:
        """The left-out runs sit above the refitted law (ONE_SIDED_SHARE of them): what an unmodelled defect of
        training (too few steps, repeated data, a wrong lr) does; a law extrapolated wildly errs either way."""
        return self.mean_left > 0 and self.share_above >= ONE_SIDED_SHARE

    @property
    def separation(self) -> float:
        """How much worse the law predicts the left-out runs than it fits the kept ones (RMS ratio)."""
        return self.rms_left / max(self.rms_kept, 1e-12)


@dataclass
class Diagnosis:
    rms: float                          # the law's residual RMS (dof-corrected)
    noise_sd: float
    table: pd.DataFrame                 # one row per property (Association fields)
    candidates: list[str]               # properties significant after Bonferroni
    refits: dict[str, Refit] = field(default_factory=dict)
    cause: str | None = None            # the property named, or None
    together: list[str] = field(default_factory=list)   # properties these runs cannot separate from the cause
    rivals: list[str] = field(default_factory=list)     # other properties whose refits qualified too (weaker)
    note: str = ""                      # why nothing was named
    lobo: pd.DataFrame | None = None    # leave_one_budget_out's table, where the caller computed it
    one_batch: float | None = None      # the batch (tokens) every run shared, when they did

    @property
    def named(self) -> bool:
        return self.cause is not None

    def association(self, key: str) -> Association | None:
        rows = self.table[self.table["key"] == key]
        return None if rows.empty else Association(**{k: v for k, v in rows.iloc[0].items() if k != "label"})

    def finding(self) -> str:
        """One sentence: what the residuals track, with numbers (or that nothing was found)."""
        if not self.named:
            return self.note
        a, (k, side) = self.association(self.cause), self.split(self.cause)
        p = BY_KEY[self.cause]
        where = f"{'fewer' if side == 'below' else 'more'} than {p.unit.format(k)}"
        if self.cause in ("lr", "depth", "width", "head_share", "off_optimum"):
            where = f"{p.unit.format(k)} or {'less' if side == 'below' else 'more'}"
        text = (f"the misfit sits in the runs with {where} (rank correlation of abs(residual) with {p.label}: "
                f"{a.rho_abs:+.2f}, p = {a.p_abs:.1g}; of the signed residual: {a.rho:+.2f}, p = {a.p:.1g})")
        if self.together:
            text += ("; these runs cannot separate it from " + ", ".join(BY_KEY[k].label for k in self.together)
                     + " (their values rank alike)")
        if (r := self.refits.get(self.cause)) is not None:
            vs_noise = f" ({r.rms_kept / self.noise_sd:.2g}x the noise)" if np.isfinite(self.noise_sd) else ""
            text += (f". Fitted without them, the law's RMS on the other {r.n_kept} runs is {r.rms_kept:.1%}"
                     f"{vs_noise} and it predicts the {r.n_left} left out "
                     f"{abs(r.mean_left):.1%} too {'low' if r.mean_left > 0 else 'high'} on average "
                     f"({r.share_above:.0%} of them above it)")
        for k in self.rivals:
            f = self.refits[k]
            text += (f"; leaving out the runs {f.side} {BY_KEY[k].unit.format(f.threshold)} instead ({BY_KEY[k].label}) "
                     f"also qualifies, less sharply: RMS {f.rms_kept:.1%} on the other {f.n_kept}, the {f.n_left} left "
                     f"out {f.mean_left:+.1%} (these runs overlap; more runs would separate the two)")
        return text

    def qualifies(self, key: str) -> bool:
        """Whether leaving out `key`'s runs (its best refit) is evidence of a cause: the kept runs' RMS MIN_GAIN
        lower than the law's, the left-out runs above the refitted law by ONE_SIDED_SDS x max(noise, kept RMS)."""
        f = self.refits.get(key)
        sd = self.noise_sd if np.isfinite(self.noise_sd) else 0.0
        return (f is not None and self.rms / max(f.rms_kept, 1e-12) >= MIN_GAIN and f.above
                and f.mean_left > ONE_SIDED_SDS * max(sd, f.rms_kept))

    def fix(self) -> str:
        """The concrete change to the sweep for the named cause ("" when none is named), and the controlled rerun
        that tells it from too few optimizer steps when every run shared one batch (then the largest sizes of each
        budget are also its shortest runs in steps, and a step penalty that grows with size looks like the cause)."""
        if not self.named:
            return ""
        text = FIXES[self.cause](*self.split(self.cause))
        if self.one_batch and self.cause in SIZE_LIKE:
            text += (f". Before changing the grid, rule out too few optimizer steps: every run used one batch "
                     f"({self.one_batch:,.0f} tokens), so these runs cannot tell the two apart. Train two of the runs "
                     "left out again on the same tokens at a quarter of train.batch_tokens (4x the steps): if their "
                     "loss falls to the law or below, the cause is the step count, and the fix is a smaller batch "
                     "for the short runs (grid.batch.rule=steps)")
        return text

    def split(self, key: str) -> tuple[float, str]:
        """(threshold, side) of the runs a property's diagnosis points at: its best refit's, else the in-sample
        split's."""
        if (r := self.refits.get(key)) is not None:
            return r.threshold, r.side
        a = self.association(key)
        return a.threshold, a.bad_side

    def to_dict(self) -> dict:
        return {"rms": self.rms, "noise_sd": self.noise_sd, "cause": self.cause, "together": self.together,
                "rivals": self.rivals,
                "finding": self.finding(), "fix": self.fix(), "candidates": self.candidates,
                "table": self.table.to_dict(orient="records"),
                "refits": {k: vars(v) for k, v in self.refits.items() if v is not None},
                "lobo": self.lobo.to_dict(orient="records") if self.lobo is not None else None}


# properties that single out the large sizes of each budget, which at one batch for all runs are also the runs with
# the fewest steps for their size: a controlled rerun at a smaller batch separates them (examples/README.md: in the
# GPU study, 4x the steps on the same tokens lowered two such runs' loss by 21-25%)
SIZE_LIKE = ("tokens_per_param", "depth", "width", "head_share", "off_optimum")


def _generic(what: str) -> Callable[[float, str], str]:
    return lambda k, side: what


FIXES: dict[str, Callable[[float, str], str]] = {
    "steps": lambda k, side: (
        f"give every run at least {k:.0f} optimizer steps: a smaller train.batch_tokens for the small budgets "
        "(steps = tokens / batch_tokens), or leave out the sizes that cannot reach them" if side == "below" else
        f"runs with more than {k:.0f} steps sit off the law: check their lr schedule and data repetition"),
    "tokens_per_param": lambda k, side: (
        f"keep every run above {k:.3g} tokens per parameter: centre each budget's sizes on more tokens per "
        "parameter (grid.shapes.tokens_per_param) or narrow grid.shapes.spacing, dropping the large-model end"
        if side == "below" else
        f"keep every run below {k:.3g} tokens per parameter: narrow grid.shapes.spacing, dropping the "
        "small-model end"),
    "epochs": lambda k, side: (
        f"keep every run below {k:.2g} epochs of its data: lower sweep.max_epochs or use a larger corpus"
        if side == "above" else "runs that read little of the corpus sit off the law: check their step count"),
    "lr": _generic("sweep the learning rate at the grid's token counts (grid/lr.yaml at the budgets' tokens per "
                   "parameter), not at one, and take each run's lr from the sweep nearest its tokens"),
    "depth": lambda k, side: (
        f"runs deeper than {k:g} layers sit above the law: sweep their lr (grid.shapes.depths of the lr grid covering "
        "them) rather than extrapolating the lr law, or keep the grid to the depths the lr sweep ran" if side == "above"
        else f"runs shallower than {k:g} layers sit off the law: leave the shallowest sizes out of the ladder"),
    "width": lambda k, side: (
        f"runs wider than d_model {k:.0f} sit above the law: sweep their lr rather than extrapolating the lr law, or "
        "keep the grid to the sizes the lr sweep ran" if side == "above"
        else f"runs narrower than d_model {k:.0f} sit off the law: leave the narrowest sizes out of the ladder"),
    "head_share": _generic("the N convention weighs the output head wrongly: refit with --n-col "
                           "params_nonembedding and --n-col params_compute and compare the residuals"),
    "off_optimum": lambda k, side: (
        f"runs far from their budget's best size carry the misfit: narrow grid.shapes.spacing so every size lies "
        f"within {np.exp(k):.2g}x of the optimum" if side == "above" else
        "runs near their budget's optimum sit off the law: sweep more sizes per budget"),
}


# --------------------------------------------------------------------------------------------- statistics
def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, tuple[float, float], float]:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0, (float("nan"), float("nan")), 1.0
    rho, p = stats.spearmanr(x, y)
    n = len(x)
    z = np.arctanh(np.clip(rho, -0.999999, 0.999999))
    half = stats.norm.ppf((1 + CI_LEVEL) / 2) * np.sqrt(SPEARMAN_SE / max(n - 3, 1))
    return float(rho), (float(np.tanh(z - half)), float(np.tanh(z + half))), float(p)


def _rms(r: np.ndarray) -> float:
    return float(np.sqrt(np.mean(r ** 2))) if len(r) else float("nan")


def best_split(x: np.ndarray, r: np.ndarray, log: bool) -> tuple[float, str, np.ndarray]:
    """(threshold, side with the larger RMS, mask of that side) over the splits with MIN_SIDE runs each side and
    at most half of the runs on the larger-RMS side (a cause is a part of the runs: the rest must still pin the
    law), the one whose sides' RMS differ most (ratio)."""
    order = np.unique(x)
    best = (-1.0, float("nan"), "below", np.zeros(len(x), bool))
    for lo, hi in zip(order[:-1], order[1:]):
        below = x <= lo
        if below.sum() < MIN_SIDE or (~below).sum() < MIN_SIDE:
            continue
        a, b = _rms(r[below]), _rms(r[~below])
        if (below if a > b else ~below).sum() > len(x) / 2:
            continue
        ratio = max(a, b) / max(min(a, b), 1e-12)
        if ratio > best[0]:
            k = float(np.sqrt(lo * hi)) if log and lo > 0 else (lo + hi) / 2
            best = (ratio, k, "below" if a > b else "above", below if a > b else ~below)
    return best[1], best[2], best[3]


def associations(props: pd.DataFrame, resid: pd.Series) -> pd.DataFrame:
    rows = []
    for p in PROPERTIES:
        if p.key not in props:
            continue
        x = props[p.key].to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(resid.to_numpy(float))
        if ok.sum() < MIN_RUNS or len(np.unique(x[ok])) < 3:
            continue
        x, r = x[ok], resid.to_numpy(float)[ok]
        rho, ci, pv = _spearman(x, r)
        rho_a, ci_a, pv_a = _spearman(x, np.abs(r))
        k, side, bad = best_split(x, r, p.log)       # no admissible split: nan threshold, the whole table "good"
        rows.append(dict(key=p.key, label=p.label, n=int(ok.sum()), rho=rho, rho_ci=ci, p=pv, rho_abs=rho_a,
                         rho_abs_ci=ci_a, p_abs=pv_a, threshold=k, bad_side=side, rms_bad=_rms(r[bad]),
                         n_bad=int(bad.sum()), rms_good=_rms(r[~bad]), n_good=int((~bad).sum()),
                         mean_bad=float(r[bad].mean()) if bad.any() else float("nan")))
    return pd.DataFrame(rows)


def collinear_with(props: pd.DataFrame, key: str, among: list[str]) -> list[str]:
    out = []
    for other in among:
        if other == key or other not in props:
            continue
        both = props[[key, other]].dropna()
        if len(both) >= MIN_RUNS and abs(_spearman(both[key].to_numpy(float), both[other].to_numpy(float))[0]) \
                >= COLLINEAR:
            out.append(other)
    return out


def diagnose(runs: pd.DataFrame, residuals: pd.DataFrame, noise_sd: float, n_col: str, n_params: int = 5,
             refit: Callable[[pd.DataFrame], object] | None = None) -> Diagnosis:
    """What the residuals (run_id, residual: log measured / fitted) track among the runs' properties (runs: the
    fitted runs, their fitted loss in column `loss`).
    `refit(runs_subset)` -> a law with .predict(N, D) and .residuals, to confirm candidates (None: rank tests
    only, and the strongest candidate is named). `noise_sd`: the run-to-run sd of log loss (nan: unmeasured)."""
    r = runs.reset_index(drop=True)
    res = residuals.set_index("run_id")["residual"] if "run_id" in residuals and "run_id" in r else None
    resid = (r["run_id"].map(res) if res is not None else residuals["residual"].reset_index(drop=True)).astype(float)
    rv = resid.dropna().to_numpy(float)
    rms = float(np.sqrt((rv ** 2).sum() / max(len(rv) - n_params, 1)))
    props = properties(r, n_col)
    table = associations(props, resid)
    empty = Diagnosis(rms, noise_sd, table, [])
    if len(rv) < MIN_RUNS or table.empty:
        empty.note = f"too few residuals ({len(rv)}) or recorded properties to diagnose"
        return empty
    level = ALPHA / (2 * len(table))
    sig = table[(table["p"] < level) | (table["p_abs"] < level)].copy()
    sig["strength"] = sig[["rho", "rho_abs"]].abs().max(axis=1)
    sig = sig.sort_values("strength", ascending=False)
    candidates = list(sig["key"])
    d = Diagnosis(rms, noise_sd, table, candidates)
    if "batch_tokens" in r and r["batch_tokens"].nunique() == 1:
        d.one_batch = float(r["batch_tokens"].iloc[0])
    if not candidates and refit is None:
        d.note = (f"no recorded property ({', '.join(BY_KEY[k].label for k in table['key'])}) tracks the residuals: "
                  f"none of their rank correlations is significant at {ALPHA:g} over the {2 * len(table)} tests")
        return d
    if refit is None:
        candidates = [k for k in candidates if np.isfinite(d.association(k).threshold)]     # a side to name
        if not candidates:
            d.note = "the residuals track properties with too few distinct values to split the runs by"
            return d
        d.cause = candidates[0]
    else:
        for key in table["key"]:
            d.refits[key] = best_refit(r, resid, props[key], d.association(key), refit, n_col, n_params)
        ok = {k: f for k, f in d.refits.items() if d.qualifies(k)}
        if not ok:
            d.note = ("leaving out the runs at either end of any recorded property and refitting neither lowers the "
                      f"other runs' RMS by {MIN_GAIN:g}x and leaves the runs left out above the law: no "
                      "single cause is named"
                      + (f" (the residuals' rank correlations point at {', '.join(BY_KEY[k].label for k in candidates)})"
                         if candidates else ""))
            return d
        d.cause = max(ok, key=lambda k: ok[k].separation)
        d.together = collinear_with(props, d.cause, [p.key for p in PROPERTIES])
        d.rivals = sorted((k for k in ok if k != d.cause and k not in d.together), key=lambda k: -ok[k].separation)
        d.rivals = [k for k in d.rivals if not any(k in collinear_with(props, j, [k]) for j in d.rivals[:d.rivals.index(k)])]
        return d
    d.together = collinear_with(props, d.cause, [p.key for p in PROPERTIES])
    return d


def best_refit(runs, resid, x: pd.Series, a: Association, refit, n_col, n_params) -> Refit | None:
    """The law refitted without the runs on the association's bad side of each of up to SPLITS thresholds (the
    bad side holding MIN_SIDE runs up to half of them, MIN_KEPT kept); of the refits that leave the left-out
    runs above the law, the one leaving out fewest whose kept RMS is within PARSIMONY of the lowest (none above:
    the one with the largest separation, for the report)."""
    x = x.to_numpy(float)
    ok = np.isfinite(x) & resid.notna().to_numpy()
    xs = np.sort(x[ok]) if a.bad_side == "below" else np.sort(x[ok])[::-1]
    sizes = np.unique(np.geomspace(MIN_SIDE, min(ok.sum() // 2, ok.sum() - MIN_KEPT), SPLITS).astype(int))
    fits = []
    for m in sizes:
        if m >= len(xs) or xs[m - 1] == xs[m]:
            continue
        lo, hi = sorted((xs[m - 1], xs[m]))
        k = float(np.sqrt(lo * hi)) if BY_KEY[a.key].log and lo > 0 else (lo + hi) / 2
        bad = ok & ((x <= k) if a.bad_side == "below" else (x > k))
        if (f := _refit_without(runs, ok, bad, a.key, k, a.bad_side, refit, n_col, n_params)) is not None:
            fits.append(f)
    above = [f for f in fits if f.above]
    if not above:
        return max(fits, key=lambda f: f.separation, default=None)
    # the fewest runs left out that fit the rest about as well as leaving out more does: leaving out runs always
    # lowers the kept RMS a little, so the largest exclusion would otherwise win
    floor = min(f.rms_kept for f in above)
    return min((f for f in above if f.rms_kept <= PARSIMONY * floor), key=lambda f: f.n_left)


def _refit_without(runs, ok, bad, key, k, side, refit, n_col, n_params) -> Refit | None:
    keep, left = runs[ok & ~bad], runs[bad]
    try:
        law = refit(keep)
    except (ValueError, KeyError):              # FitError is a ValueError
        return None
    kr = law.residuals["residual"].to_numpy(float)
    pred = np.asarray(law.predict(left[n_col].to_numpy(float), left["tokens"].to_numpy(float)), float)
    err = np.log(left["loss"].to_numpy(float) / pred)
    return Refit(key, k, side, len(keep), float(np.sqrt((kr ** 2).sum() / max(len(kr) - n_params, 1))), len(left),
                 float(err.mean()), _rms(err), float((err > 0).mean()))


def leave_one_budget_out(runs: pd.DataFrame, n_col: str, refit: Callable[[pd.DataFrame], object],
                         budget_col: str = "budget") -> pd.DataFrame:
    """Per run: log(measured / predicted) by the law fitted to the other budgets (column `lobo`); budgets whose
    complement cannot be fitted are left out."""
    rows = []
    for C, held in runs.groupby(budget_col):
        try:
            law = refit(runs[runs[budget_col] != C])
        except (ValueError, KeyError):
            continue
        pred = np.asarray(law.predict(held[n_col].to_numpy(float), held["tokens"].to_numpy(float)), float)
        rows += [{"run_id": i, budget_col: C, "lobo": float(np.log(m / p))}
                 for i, m, p in zip(held["run_id"], held["loss"].to_numpy(float), pred)]
    return pd.DataFrame(rows, columns=["run_id", budget_col, "lobo"])
