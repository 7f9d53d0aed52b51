"""A verdict before advice: quality checks on every fitted law, and what to add to a sweep that fails them.

    judge(fits, runs, config, noise=None, failures=None) -> Verdict

`fits` are report.Context.fits: "approach 1" / "approach 2" (ComputeOptimal), "approach 3" (LossSurface) and,
when the sweep has MoE runs, "moe" (MoELaw). `runs` is the runs table the Chinchilla laws were fitted to.
Each check gives one or more Check(name, severity, message, fix): "fail" (the law cannot be trusted for
advice), "caveat" (advice holds with this named reservation) or "ok". The verdict is

    not determined      some check fails: no recommendation; Verdict.suggestions say what to add to the sweep
    weakly determined   no failure, some caveats: recommend, naming the caveats
    determined          every check passes

The checks (CHECKS, in the order reports list them):
    fitted      approach 3 (the law recommendations come from) was fitted and converged; so was the MoE law
    coverage    4 or more budgets spanning 10x or more of compute: fewer cannot pin an exponent (a line through
                3 close points extrapolates wildly; float differences between machines flip the outcome)
    bound       a parameter at a bound of its search: approach 3 and the MoE law are unbounded L-BFGS on log
                parameters, so "a bound" is where the parametrisation degenerates: E collapsing to 0, a power
                term vanishing over the swept range, a coefficient past the initialisation grid (exp(25))
    exponent    exponents outside the ranges published fits occupy: alpha, beta in PLAUSIBLE_EXPONENT; the
                allocation exponents a (N_opt ~ C^a) and b (D_opt ~ C^b) of every approach in PLAUSIBLE_ALLOCATION
    interval    bootstrap intervals that are missing, degenerate (lo == hi), inverted, undefined for many
                resamples, or that do not contain their own point estimate
    isoflop edge    an isoFLOP minimum at the edge of (or outside) the sizes run at a budget
    isoflop flat    an isoFLOP profile with no minimum, or whose losses differ by less than the run-to-run noise
    agreement   approaches 1, 2, 3 disagreeing on a beyond their intervals (fail when they disagree on direction)
    residuals   a law's residuals larger than the measured run-to-run noise (analysis/noise.py; unmeasured noise
                is a caveat, never a silent pass: approach 3's residuals are then tested against a cubic in log N per
                budget by the lack-of-fit F test); when approach 3's fails, explain_residuals puts the cause that
                analysis/diagnose.py names (if any) into the check's message and fix

Pure functions of fits and tables: nothing here fits a law (approach 2's per-budget parabola is re-read).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from analysis import noise as noise_mod
from analysis.laws import approach2
from analysis.laws.common import PLAUSIBLE_EXPONENT, FitConfig, usable

FAIL, CAVEAT, OK = "fail", "caveat", "ok"
DETERMINED, WEAK, UNDETERMINED = "determined", "weakly determined", "not determined"
CHECKS = ("fitted", "coverage", "bound", "exponent", "interval", "isoflop edge", "isoflop flat", "agreement",
          "residuals")
CHINCHILLA = ("approach 1", "approach 2", "approach 3")
CROSS_CHECKS = ("approach 1", "approach 2")   # fitted to compare with approach 3; no recommendation comes from them

MIN_BUDGETS, MIN_SPAN = 4, 10.0
# Allocation exponents found in published fits: Kaplan et al. 2020 a = 0.73 (b = 0.27), Hoffmann et al. 2022
# a = 0.46-0.50, Besiroglu et al. 2024 a = 0.51; outside this band the runs do not constrain the allocation.
PLAUSIBLE_ALLOCATION = (0.15, 0.85)
E_FLOOR = 1e-3               # E (or a power term) below this fraction of the lowest loss has collapsed to 0
COEF_GRID_MAX = math.exp(25)  # approach 3's largest initial A, B (Hoffmann et al.'s grid: log A, log B <= 25)
DEGENERATE_RTOL = 1e-9
NAN_CAVEAT, NAN_FAIL = 0.1, 0.5    # share of bootstrap resamples with an undefined value
FLAT_SDS = 3.0               # an isoFLOP whose losses span fewer noise sds than this cannot locate its minimum
RESIDUAL_P = 0.01            # residuals exceed noise when an F-test rejects equal variance at this level
RESIDUAL_FAIL_RATIO = 2.0    # ... and fail (a systematic misfit, not chance) when their RMS is this many sds
RESIDUAL_FIX = "check the residual plot for a trend in N or D; sweep more sizes per budget"   # no cause diagnosed


@dataclass(frozen=True)
class Check:
    name: str                 # one of CHECKS
    severity: str             # "fail" | "caveat" | "ok"
    message: str
    fix: str = ""
    law: str = ""             # the fit it concerns ("approach 3", "MoE law", ...), "" for the sweep

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Suggestion:
    """Runs to add to the sweep, their estimated cost and the dry-run line that gives the planner's exact cost."""
    what: str
    runs: int
    flops: float
    seconds: float            # at the sweep's measured throughput, one run at a time; nan when unmeasured
    command: str
    caveat: str = ""          # what the command line could not know (a sweep launched before grid.json named its grid)

    def describe(self) -> str:
        cost = f"{self.runs} run(s), {self.flops:.3g} FLOPs"
        if np.isfinite(self.seconds):
            cost += f", about {duration(self.seconds)} at this sweep's measured throughput (one run at a time)"
        return f"{self.what} ({cost}). Exact plan and cost: `{self.command}`" + (f" ({self.caveat})" if self.caveat else "")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Verdict:
    level: str                                        # DETERMINED | WEAK | UNDETERMINED
    checks: list[Check]
    suggestions: list[Suggestion] = field(default_factory=list)
    noise: noise_mod.Noise | None = None
    throughput: float = float("nan")                  # FLOPs per second of the sweep's runs (flops / wall_s)
    diagnosis: object | None = None                   # analysis.diagnose.Diagnosis of a failed residual check

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.severity == FAIL]

    @property
    def caveats(self) -> list[Check]:
        return [c for c in self.checks if c.severity == CAVEAT]

    @property
    def recommends(self) -> bool:
        return self.level != UNDETERMINED

    def fired(self, name: str) -> list[Check]:
        """The checks named `name` that did not pass."""
        return [c for c in self.checks if c.name == name and c.severity != OK]

    def headline(self) -> str:
        n_ok = sum(c.severity == OK for c in self.checks)
        counts = f"{len(self.failures)} failed, {len(self.caveats)} caveat(s), {n_ok} passed"
        return {DETERMINED: f"**Verdict: determined** ({counts}): the law below is pinned by the sweep; "
                            "recommendations follow.",
                WEAK: f"**Verdict: weakly determined** ({counts}): recommendations follow, with the caveats "
                      "named here.",
                UNDETERMINED: f"**Verdict: not determined** ({counts}): this sweep cannot pin the law, so no "
                              "recommendation is made. What to add to the sweep follows."}[self.level]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"check": c.name, "law": c.law or "–", "result": c.severity, "finding": c.message,
                              "fix": c.fix} for c in sorted(self.checks, key=_order)])

    def to_dict(self) -> dict:
        return {"level": self.level, "checks": [c.to_dict() for c in self.checks],
                "suggestions": [s.to_dict() for s in self.suggestions],
                "noise": self.noise.to_dict() if self.noise is not None else None,
                "throughput": float(self.throughput),
                "diagnosis": self.diagnosis.to_dict() if self.diagnosis is not None else None}


def _order(c: Check) -> tuple:
    return ({FAIL: 0, CAVEAT: 1, OK: 2}[c.severity], CHECKS.index(c.name) if c.name in CHECKS else len(CHECKS))


def level_of(checks: list[Check]) -> str:
    if any(c.severity == FAIL for c in checks):
        return UNDETERMINED
    return WEAK if any(c.severity == CAVEAT for c in checks) else DETERMINED


def duration(seconds: float) -> str:
    for unit, s in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * s:
            return f"{seconds / s:.3g} {unit}"
    return f"{seconds:.3g} s"


def allocation_direction(a: float, interval: tuple[float, float], level: float) -> str:
    """What the a-exponent's interval supports about N against D: a direction only when it excludes 0.5."""
    lo, hi = interval
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return ("without bootstrap intervals the sweep cannot tell whether model size or data should grow faster "
                f"with compute (point estimate a = {a:.3f})")
    if lo > 0.5:
        return f"model size should grow faster than data (the whole {level:.0%} interval of a lies above 0.5)"
    if hi < 0.5:
        return f"data should grow faster than model size (the whole {level:.0%} interval of a lies below 0.5)"
    return (f"the sweep cannot tell whether model size or data should grow faster: the {level:.0%} interval of a, "
            f"[{lo:.3f}, {hi:.3f}], contains 0.5 (equal growth, Chinchilla's finding)")


# ------------------------------------------------------------------------------------------- the sweep
def budget_table(runs: pd.DataFrame, cfg: FitConfig) -> pd.DataFrame:
    """One row per compute budget: C (the grid's nominal budget in exact FLOPs, as `grid.shapes.budgets` takes it,
    else the group's geometric-mean FLOPs), runs, distinct sizes, and the group's rows (index labels)."""
    need = [cfg.n_col, "tokens", cfg.c_col, cfg.loss_col]
    if len(runs) == 0 or any(c not in runs for c in need):
        return pd.DataFrame(columns=["C", "runs", "sizes", "rows"])
    r = usable(runs, cfg)
    if not len(r):
        return pd.DataFrame(columns=["C", "runs", "sizes", "rows"])
    if "flops" not in r:          # group_budgets clusters exact FLOPs; the convention's C is the next best
        r = r.assign(flops=r[cfg.c_col])
    rows = []
    for _, g in r.groupby(approach2.group_budgets(r)):
        C = float(g["budget"].iloc[0]) if "budget" in g and g["budget"].notna().all() else \
            float(np.exp(np.log(g["flops"].astype(float)).mean()))
        rows.append({"C": C, "runs": len(g), "sizes": g[cfg.n_col].nunique(), "rows": list(g.index)})
    return pd.DataFrame(rows).sort_values("C", ignore_index=True)


def check_coverage(budgets: pd.DataFrame) -> list[Check]:
    n = len(budgets)
    span = float(budgets["C"].max() / budgets["C"].min()) if n else float("nan")
    problems = []
    if n < MIN_BUDGETS:
        problems.append(f"{n} compute budget(s) (at least {MIN_BUDGETS} are needed)")
    if not n or span < MIN_SPAN:
        problems.append(f"a compute span of {span:.3g}x (at least {MIN_SPAN:g}x is needed)")
    if problems:
        where = ", ".join(f"{c:.3g}" for c in budgets["C"]) if n else "none"
        return [Check("coverage", FAIL, f"the sweep has {' and '.join(problems)}: budgets {where} FLOPs. Exponents "
                      "fitted through so few or so close budgets are not pinned (another machine's float "
                      "differences can change them)", f"sweep at least {MIN_BUDGETS} budgets spanning "
                      f"{MIN_SPAN:g}x or more (suggestions below)")]
    return [Check("coverage", OK, f"{n} budgets spanning {span:.3g}x of compute")]


# -------------------------------------------------------------------------------------------- the laws
def check_fitted(fits: dict, failures: dict[str, str]) -> list[Check]:
    a3 = fits.get("approach 3")
    out = []
    if a3 is None:
        why = failures.get("approach 3", "no fit was attempted")
        out.append(Check("fitted", FAIL, f"the loss surface (approach 3), which every recommendation comes from, "
                         f"was not fitted: {why}", "sweep at least 8 runs over 4 or more budgets", "approach 3"))
    elif not a3.converged:
        out.append(Check("fitted", FAIL, f"the approach-3 optimiser did not converge (largest gradient entry "
                         f"{a3.grad_norm:.1e})", "add runs over a wider range of N and D", "approach 3"))
    moe = fits.get("moe")
    if moe is not None and not moe.converged:
        out.append(Check("fitted", FAIL, "the MoE law's optimiser did not converge", "add MoE runs", "MoE law"))
    return out or [Check("fitted", OK, "the loss surface was fitted and converged"
                         + (", as was the MoE law" if moe is not None else ""))]


def _min_loss(law) -> float:
    return float(law.residuals["loss"].min()) if len(law.residuals) else float("nan")


def check_bounds(fits: dict) -> list[Check]:
    out = []
    laws = [("approach 3", fits.get("approach 3"), "E", "A", "B"), ("MoE law", fits.get("moe"), "c", "a", "b")]
    for name, law, e_name, a_name, b_name in laws:
        if law is None:
            continue
        lmin = _min_loss(law)
        E = getattr(law, e_name)
        N_hi = float(law.residuals["N"].max()) if len(law.residuals) else float("nan")
        D_hi = float(law.residuals["D"].max()) if len(law.residuals) else float("nan")
        A = law.A if name == "approach 3" else float(law.coefficient(1, 1))
        terms = {"N": A / N_hi ** law.alpha, "D": getattr(law, b_name) / D_hi ** law.beta}
        fix = "sweep a wider range of compute (larger budgets) and sizes, so that the loss bends toward its floor"
        if E < E_FLOOR * lmin:
            out.append(Check("bound", FAIL, f"{e_name} = {E:.3g} has collapsed towards 0 (below {E_FLOOR:g} of the "
                             f"lowest loss, {lmin:.4g}): the runs cannot separate the irreducible loss from the power "
                             "terms, so the fit traded it for flatter power laws", fix, name))
        for var, t in terms.items():
            if t < E_FLOOR * lmin:
                out.append(Check("bound", FAIL, f"the {var} term vanishes: at the largest {var} swept it is {t:.3g}, "
                                 f"below {E_FLOOR:g} of the lowest loss, so {var} has no effect in the fitted law",
                                 fix, name))
        for coef, v in ((a_name, A), (b_name, getattr(law, b_name))):
            if v > COEF_GRID_MAX:
                out.append(Check("bound", CAVEAT, f"{coef} = {v:.3g} lies beyond the initialisation grid "
                                 f"(exp(25) = {COEF_GRID_MAX:.3g}): the optimiser ran far from where the search "
                                 "started", "sweep a wider range of N and D", name))
    return out or [Check("bound", OK, "no parameter has collapsed or run past its search grid")]


def _outside(value: float, rng: tuple[float, float]) -> bool:
    return not (rng[0] <= value <= rng[1])


def check_exponents(fits: dict) -> list[Check]:
    out = []
    fix = "sweep more budgets over a wider compute span (and sizes bracketing each budget's optimum)"
    for name in CHINCHILLA + ("moe",):
        law = fits.get(name)
        if law is None:
            continue
        label = "MoE law" if name == "moe" else name
        found = {}
        if hasattr(law, "alpha"):
            for p in ("alpha", "beta"):
                if _outside(getattr(law, p), PLAUSIBLE_EXPONENT):
                    found[p] = (getattr(law, p), PLAUSIBLE_EXPONENT)
        for p, v in allocation_exponents(law).items():
            if _outside(v, PLAUSIBLE_ALLOCATION):
                found[p] = (v, PLAUSIBLE_ALLOCATION)
        if found:
            out.append(Check("exponent", FAIL, "; ".join(f"{p} = {v:.3g} lies outside {r[0]:g}-{r[1]:g}, where "
                                                         "published fits fall" for p, (v, r) in found.items()),
                             fix, label))
    return out or [Check("exponent", OK, "every exponent lies where published fits fall")]


def allocation_exponents(law) -> dict[str, float]:
    """a (N_opt ~ C^a) and b (D_opt ~ C^b) of any law here."""
    if hasattr(law, "n_opt") and hasattr(law.n_opt, "a"):           # ComputeOptimal: power laws
        return {"a": law.n_opt.a, "b": law.d_opt.a}
    s = law.alpha + law.beta
    return {"a": law.beta / s, "b": law.alpha / s}


def interval_samples(law, level: float) -> dict[str, tuple[float, np.ndarray]]:
    """{name: (point estimate, bootstrap samples)} of each interval a law reports."""
    if hasattr(law, "n_opt") and hasattr(law.n_opt, "samples"):     # ComputeOptimal
        return {"a": (law.n_opt.a, law.n_opt.samples[:, 1]), "b": (law.d_opt.a, law.d_opt.samples[:, 1])}
    s = np.asarray(law.samples, float)
    if s.size == 0:
        return {}
    names = list(law.params)
    held = set(getattr(law, "held", ()))
    # the MoE law's coefficients a, b are not the allocation exponents a, b
    out = {(f"coefficient {p}" if p in ("a", "b") else p): (getattr(law, p), s[:, i]) for i, p in enumerate(names)
           if p not in held}
    al, be = s[:, names.index("alpha")], s[:, names.index("beta")]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["a"], out["b"] = (allocation_exponents(law)["a"], be / (al + be)), (allocation_exponents(law)["b"],
                                                                                 al / (al + be))
    return out


def interval_issue(name: str, point: float, samples: np.ndarray, level: float) -> tuple[str, str] | None:
    """(severity, text) when the bootstrap interval of `name` is degenerate, inverted, undefined or misses its point."""
    samples = np.asarray(samples, float)
    undefined = float(np.mean(~np.isfinite(samples))) if samples.size else 1.0
    if undefined >= NAN_FAIL:
        return FAIL, f"{name}: {undefined:.0%} of bootstrap resamples give no value"
    finite = samples[np.isfinite(samples)]
    lo, hi = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    if lo > hi:
        return FAIL, f"{name}: inverted interval [{lo:.4g}, {hi:.4g}]"
    if abs(hi - lo) <= DEGENERATE_RTOL * max(abs(lo), abs(hi), 1e-300):
        return FAIL, (f"{name}: degenerate interval [{lo:.4g}, {hi:.4g}]: every resample lands on the same value, "
                      "so the data do not move it (it sits where the search put it)")
    if not lo <= point <= hi:
        return CAVEAT, (f"{name} = {point:.4g} lies outside its own {level:.0%} interval [{lo:.4g}, {hi:.4g}]: "
                        "the resampled fits mostly land elsewhere")
    if undefined >= NAN_CAVEAT:
        return CAVEAT, f"{name}: {undefined:.0%} of bootstrap resamples give no value"
    return None


def check_intervals(fits: dict, level: float) -> list[Check]:
    out = []
    for name in CHINCHILLA + ("moe",):
        law = fits.get(name)
        if law is None:
            continue
        label = "MoE law" if name == "moe" else name
        samples = interval_samples(law, level)
        if not samples or all(np.asarray(s).size == 0 for _, s in samples.values()):
            out.append(Check("interval", CAVEAT, "no bootstrap intervals were computed (n_bootstrap = 0), so the "
                             "law's uncertainty is unknown", "fit with --bootstrap 1000", label))
            continue
        issues = [i for p, (v, s) in samples.items() if (i := interval_issue(p, v, s, level))]
        if issues:
            sev = FAIL if any(s == FAIL for s, _ in issues) else CAVEAT
            text = "; ".join(t for _, t in issues)
            if name in CROSS_CHECKS and sev == FAIL:   # no advice comes from it: the cross-check is lost, not the law
                sev, text = CAVEAT, text + f" ({name} only cross-checks approach 3, which recommendations come from)"
            out.append(Check("interval", sev, text, "sweep more budgets and sizes so that resamples agree on a law "
                             "(approach 2 needs 5 or more sizes per budget for runs to be resampled)", label))
    return out or [Check("interval", OK, "every bootstrap interval is proper and contains its estimate")]


def a_interval(law, level: float) -> tuple[float, float, float]:
    """(a, lo, hi) of any law here."""
    pts = interval_samples(law, level).get("a")
    a = allocation_exponents(law)["a"]
    if pts is None or not np.isfinite(pts[1]).any():
        return a, float("nan"), float("nan")
    finite = pts[1][np.isfinite(pts[1])]
    lo, hi = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return a, float(lo), float(hi)


def check_agreement(fits: dict, level: float) -> list[Check]:
    have = [(n, *a_interval(fits[n], level)) for n in CHINCHILLA if fits.get(n) is not None]
    out = []
    for i, (n1, a1, lo1, hi1) in enumerate(have):
        for n2, a2, lo2, hi2 in have[i + 1:]:
            pair = f"{n1} gives a = {a1:.3f} [{lo1:.3f}, {hi1:.3f}], {n2} {a2:.3f} [{lo2:.3f}, {hi2:.3f}]"
            if np.isfinite([lo1, hi1, lo2, hi2]).all():
                if hi1 < lo2 or hi2 < lo1:
                    opposite = (lo1 > 0.5 and hi2 < 0.5) or (lo2 > 0.5 and hi1 < 0.5)
                    out.append(Check("agreement", FAIL if opposite else CAVEAT,
                                     f"{pair}: their {level:.0%} intervals do not overlap"
                                     + (" and they disagree on whether N or D should grow faster" if opposite else
                                        "; trust neither far outside the swept range"),
                                     "sweep sizes that bracket every budget's optimum over a wider compute span"))
            elif abs(a1 - a2) > 0.1:
                out.append(Check("agreement", CAVEAT, f"{n1} gives a = {a1:.3f}, {n2} {a2:.3f} (no intervals to "
                                 "compare)", "fit with bootstrap intervals"))
    if len(have) < 2:
        return [Check("agreement", OK, "only one approach was fitted: nothing to compare")]
    return out or [Check("agreement", OK, "the fitted approaches agree on a within their intervals")]


def check_residuals(fits: dict, noise: noise_mod.Noise, smooth: noise_mod.Noise | None = None) -> list[Check]:
    """Each law's residuals against the run-to-run noise measured from seed replicates (F test on their variances).
    Without replicates approach 3's are tested against `smooth` (a cubic in log N fitted to each budget's runs,
    noise_mod.smoother) by the classical lack-of-fit F test (approach2.lack_of_fit_test, as approach 2's profile
    models are): a law that misses structure the smoother follows is flagged, as with replicates; one that passes
    stays a caveat, since the smoother's scatter is not the run-to-run noise (bench/README.md, "IsoFLOP: lack of
    fit without replicates")."""
    out = []
    for name, label, n_params in (("approach 3", "approach 3", 5), ("moe", "MoE law", None)):
        law = fits.get(name)
        if law is None or not len(law.residuals):
            continue
        p = n_params if n_params is not None else len(law.params) - len(law.held)
        r = law.residuals["residual"].to_numpy(float)
        df1 = len(r) - p
        rms = float(np.sqrt((r ** 2).sum() / max(df1, 1)))
        if not noise.measured:
            tested = smooth is not None and smooth.measured and name == "approach 3"
            _, F, pval, _ = approach2.lack_of_fit_test(r, p, smooth) if tested else (0, np.nan, 1.0, 0)
            if tested and pval < RESIDUAL_P:
                ratio = rms / max(smooth.sd, approach2.SD_FLOOR)
                sev = FAIL if ratio > RESIDUAL_FAIL_RATIO else CAVEAT
                out.append(Check("residuals", sev, f"residual RMS {rms:.2%} of the loss is {ratio:.2g}x the residual "
                                 f"scatter of a cubic in log N per budget ({smooth.sd:.2%} on {smooth.dof} dof; "
                                 f"lack-of-fit F test p = {pval:.1e}; run-to-run noise unmeasured): the law misses "
                                 "structure in the runs that the budgets' own smooth profiles follow", RESIDUAL_FIX,
                                 label))
                continue
            passed = (f"; it passes a lack-of-fit F test against a cubic in log N per budget ({smooth.sd:.2%} on "
                      f"{smooth.dof} dof, p = {pval:.2g}), which is weaker" if tested else "")
            out.append(Check("residuals", CAVEAT, f"residual RMS {rms:.2%} of the loss cannot be compared with the "
                             f"run-to-run noise: {noise.describe()}{passed}", "train some runs again with another "
                             "seed (suggestion below)", label))
            continue
        if df1 < 1:
            continue
        ratio = rms / noise.sd
        pval = float(stats.f.sf(ratio ** 2, df1, noise.dof))
        if pval < RESIDUAL_P:
            sev = FAIL if ratio > RESIDUAL_FAIL_RATIO else CAVEAT
            out.append(Check("residuals", sev, f"residual RMS {rms:.2%} of the loss is {ratio:.2g}x the measured "
                             f"run-to-run noise ({noise.sd:.2%}; F-test p = {pval:.1e}): the law misses structure in "
                             "the runs that noise does not explain", RESIDUAL_FIX, label))
        else:
            out.append(Check("residuals", OK, f"residual RMS {rms:.2%} is consistent with the measured noise "
                             f"{noise.sd:.2%} (F-test p = {pval:.2g})", law=label))
    return out or [Check("residuals", OK, "no law with residuals to compare")]


def explain_residuals(v: Verdict, diagnosis, law: str = "approach 3") -> Verdict:
    """The verdict with `law`'s failed residual check explained by `diagnosis` (analysis.diagnose.Diagnosis): when
    it names a cause, the check's message gains the finding and its fix becomes the cause's concrete change;
    otherwise the generic fix stays. The diagnosis is kept on the verdict (the report's residual section)."""
    checks = []
    for c in v.checks:
        if c.name == "residuals" and c.law == law and c.severity != OK and diagnosis.named:
            c = Check(c.name, c.severity, f"{c.message}. Diagnosis: {diagnosis.finding()}", diagnosis.fix(), c.law)
        checks.append(c)
    return replace(v, checks=checks, diagnosis=diagnosis)


def residual_smoother(runs: pd.DataFrame, budgets: pd.DataFrame, cfg: FitConfig) -> noise_mod.Noise:
    """The no-replicate reference for check_residuals: the residual scatter of a cubic in log N per budget's runs
    (approach2.reference without seed noise: what approach 2's profile models and the hold-out are tested against)."""
    return approach2.reference([approach2.as_arrays(runs.loc[b.rows], cfg) for b in budgets.itertuples(index=False)],
                               None)


# -------------------------------------------------------------------------------------------- isoFLOPs
def isoflop_profiles(runs: pd.DataFrame, budgets: pd.DataFrame, cfg: FitConfig) -> list[dict]:
    """Per budget with 3+ sizes: the parabola's vertex (approach 2's), replicates averaged per size first."""
    out = []
    for b in budgets.itertuples(index=False):
        g = runs.loc[b.rows]
        per = g.assign(logL=np.log(g[cfg.loss_col].astype(float))).groupby(cfg.n_col).agg(
            logL=("logL", "mean"), D=("tokens", "mean")).reset_index()
        if len(per) < approach2.MIN_PER_BUDGET:
            continue
        logN, logD = np.log(per[cfg.n_col].to_numpy(float)), np.log(per["D"].to_numpy(float))
        loss = np.exp(per["logL"].to_numpy())
        v = approach2.vertex(logN, loss, logD)
        best = int(np.argmin(loss))
        out.append({"C": b.C, "vertex": v, "N": np.exp(logN), "spread": float(np.ptp(per["logL"])),
                    "best_at_edge": best in (0, len(loss) - 1), "best_N": float(np.exp(logN[best])),
                    "side": "larger" if best == len(loss) - 1 or (v is not None and v["logN_opt"] > logN.max())
                    else "smaller"})
    return out


def check_isoflops(profiles: list[dict], noise: noise_mod.Noise) -> list[Check]:
    if not profiles:
        return [Check("isoflop edge", OK, "no budget has 3 or more sizes: no isoFLOP profile to check"),
                Check("isoflop flat", OK, "no budget has 3 or more sizes: no isoFLOP profile to check")]
    flat, edge = [], []
    for p in profiles:
        v = p["vertex"]
        if v is None:
            flat.append((p, "the parabola through its losses opens downward (no minimum)"))
        elif noise.measured and p["spread"] < FLAT_SDS * noise.sd:
            flat.append((p, f"its losses differ by {p['spread']:.2%} across sizes, less than {FLAT_SDS:g} sds of the "
                            f"run-to-run noise ({noise.sd:.2%})"))
        elif not v["inside"] or p["best_at_edge"]:
            edge.append((p, f"the lowest loss is at the {p['side']} end of the sizes run "
                            f"({p['N'].min():.3g}..{p['N'].max():.3g}; best N = {p['best_N']:.3g}, parabola minimum "
                            f"{math.exp(v['logN_opt']):.3g})"))
    bad = len(flat) + len(edge)
    sev = FAIL if bad > len(profiles) / 2 or len(profiles) - bad < 2 else CAVEAT
    out = []
    if edge:
        out.append(Check("isoflop edge", sev, "; ".join(f"C = {p['C']:.3g}: {t}" for p, t in edge)
                         + f" ({len(edge)} of {len(profiles)} budgets): the minimum is not bracketed",
                         "add sizes on the side named (grid.shapes.sizes_per_budget, grid.shapes.tokens_per_param)",
                         "approach 2"))
    else:
        out.append(Check("isoflop edge", OK, f"every isoFLOP minimum of {len(profiles)} budget(s) lies inside its sizes",
                         law="approach 2"))
    if flat:
        out.append(Check("isoflop flat", sev, "; ".join(f"C = {p['C']:.3g}: {t}" for p, t in flat)
                         + f" ({len(flat)} of {len(profiles)} budgets)", "spread the sizes wider "
                         "(grid.shapes.spacing) or replicate them (grid.seeds) so the minimum stands out of the noise",
                         "approach 2"))
    else:
        what = "more than the noise" if noise.measured else "with a minimum (noise unmeasured: not compared)"
        out.append(Check("isoflop flat", OK, f"every isoFLOP profile is curved {what}", law="approach 2"))
    return out


# ------------------------------------------------------------------------------------------ suggestions
def throughput(runs: pd.DataFrame) -> float:
    """FLOPs per second over the sweep's runs: exact FLOPs over wall time (set-up and evals included)."""
    if not {"flops", "wall_s"} <= set(runs.columns):
        return float("nan")
    f, w = pd.to_numeric(runs["flops"], errors="coerce"), pd.to_numeric(runs["wall_s"], errors="coerce")
    ok = np.isfinite(f) & np.isfinite(w) & (w > 0)
    return float(f[ok].sum() / w[ok].sum()) if ok.any() else float("nan")


def most_common(runs: pd.DataFrame, col: str) -> str | None:
    return str(runs[col].mode().iloc[0]) if col in runs and runs[col].notna().any() else None


def grid_command(runs: pd.DataFrame) -> tuple[str, str]:
    """(`python sweep.py +grid=<grid> [scale=<scale>] [sweep.name=<sweep>]` that adds runs to the sweep the runs came
    from, a caveat or ""). The grid and scale are the config names grid.json records; the sweep is named whenever
    its name is not the one the grid and scale give it (conf/config.yaml: <grid.name><scale.suffix>, the GPU
    scale's suffix -gpu). A sweep launched before grid.json recorded its grid: the sweep's name stands in for it."""
    sweep, grid, scale = (most_common(runs, c) for c in ("sweep", "grid", "scale"))
    if grid is None:
        name = sweep or "<grid>"
        base = name.removesuffix("-gpu")
        cmd = f"python sweep.py +grid={base}" + (" scale=gpu" if name.endswith("-gpu") else "")
        return cmd, (f"the runs' grid.json does not name the grid the sweep was launched with (launched before it "
                     f"did), so `+grid={base}` is the sweep's name: if that is not its grid, put the grid there and "
                     f"add sweep.name={name}")
    cmd = f"python sweep.py +grid={grid}" + (f" scale={scale}" if scale not in (None, "cpu") else "")
    if sweep is not None and sweep != grid + ("-gpu" if scale == "gpu" else ""):
        cmd += f" sweep.name={sweep}"
    return cmd, ""


def budget_list(values) -> str:
    return "[" + ",".join(f"{float(f'{c:.3g}'):.3g}".replace("e+", "e") for c in values) + "]"


def extend_budgets(C: list[float], min_count: int, min_span: float) -> list[float]:
    """Budgets above the largest, at the sweep's own spacing (at least 2x), until there are `min_count` and they span
    `min_span`x."""
    C = sorted(C)
    step = max(2.0, float(np.exp(np.median(np.diff(np.log(C)))))) if len(C) > 1 else 2.0
    new, top = [], C[-1]
    while len(C) + len(new) < min_count or top / C[0] < min_span:
        top = float(f"{top * step:.3g}")
        new.append(top)
    return new


def suggest(checks: list[Check], budgets: pd.DataFrame, profiles: list[dict], runs: pd.DataFrame,
            noise: noise_mod.Noise, rate: float) -> list[Suggestion]:
    fired = {c.name for c in checks if c.severity != OK}
    if not len(budgets):
        return []
    cmd, caveat = grid_command(runs)
    secs = (lambda flops: flops / rate) if np.isfinite(rate) and rate > 0 else (lambda flops: float("nan"))
    C = budgets["C"].tolist()
    k = int(max(3, round(float(budgets["sizes"].median()))))
    out = []
    span = max(C) / min(C)
    law_fails = fired & {"coverage", "bound", "exponent", "interval", "agreement", "fitted"}
    edge = [p for p in profiles if p["vertex"] is not None and (not p["vertex"]["inside"] or p["best_at_edge"])]
    if law_fails or edge:
        target_span = MIN_SPAN if "coverage" in fired else max(MIN_SPAN, 4 * span)
        new = extend_budgets(C, MIN_BUDGETS if "coverage" in fired else len(C) + 2, target_span) if law_fails else []
        k_new = k + 2 if edge else k
        n_runs = len(new) * k_new + (k_new - k) * len(C)
        flops = sum(new) * k_new + (k_new - k) * sum(C)
        parts = []
        if new:
            parts.append(f"{len(new)} budget(s) above the largest ({', '.join(f'{c:.3g}' for c in new)} FLOPs), "
                         f"so that {len(C) + len(new)} budgets span {max(new) / min(C):.3g}x, {k_new} sizes each")
        if edge:
            sides = sorted({p["side"] for p in edge})
            parts.append(f"{k_new - k} more size(s) per budget (one each side) because the minimum sits at the "
                         f"{' and '.join(sides)} end of the sizes at {len(edge)} budget(s)")
        line = f"{cmd} 'grid.shapes.budgets={budget_list(C + new)}'"
        line += f" grid.shapes.sizes_per_budget={k_new}" if k_new != k else ""
        out.append(Suggestion("Add " + "; and ".join(parts), n_runs, flops, secs(flops), line + " sweep.dry_run=true",
                              caveat))
    if not noise.measured:
        seeds = sorted(pd.to_numeric(runs["seed"], errors="coerce").dropna().astype(int).unique()) \
            if "seed" in runs else [0]
        seeds = seeds or [0]
        both = [seeds[0], max(seeds) + 1]
        c0 = min(C)
        out.append(Suggestion(f"Measure run-to-run noise: train the {k} sizes of the smallest budget ({c0:.3g} FLOPs) "
                              f"again with seed {both[1]}", k, k * c0, secs(k * c0),
                              f"{cmd} 'grid.shapes.budgets={budget_list([c0])}' 'grid.seeds=[{both[0]},{both[1]}]' "
                              "sweep.dry_run=true", caveat))
    flat = [p for p in profiles if p["vertex"] is None or (noise.measured and p["spread"] < FLAT_SDS * noise.sd)]
    if flat:
        ratio = float(np.exp(np.median([np.median(np.diff(np.log(np.sort(p["N"])))) for p in flat])))
        cf = [p["C"] for p in flat]
        flops = k * sum(cf)
        out.append(Suggestion(f"Spread the sizes at the flat budget(s) {', '.join(f'{c:.3g}' for c in cf)} wider than "
                              f"their {ratio:.2g}x spacing (at most {k} new runs each; sizes already run are skipped)",
                              k * len(cf), flops, secs(flops),
                              f"{cmd} 'grid.shapes.budgets={budget_list(cf)}' grid.shapes.spacing={1.5 * ratio:.2g} "
                              "sweep.dry_run=true", caveat))
    return out


# ------------------------------------------------------------------------------------------------ judge
def judge(fits: dict, runs: pd.DataFrame, config: FitConfig, noise: noise_mod.Noise | None = None,
          failures: dict[str, str] | None = None) -> Verdict:
    """Every check on the fits and their runs table, the verdict they add up to, and what to add to the sweep."""
    runs = runs.reset_index(drop=True)          # budgets keep row labels: they must be unique
    if noise is None:
        noise = noise_mod.estimate(runs, config.loss_col, config.ci_level)
    budgets = budget_table(runs, config)
    profiles = isoflop_profiles(runs, budgets, config) if len(budgets) else []
    checks = (check_fitted(fits, failures or {}) + check_coverage(budgets) + check_bounds(fits)
              + check_exponents(fits) + check_intervals(fits, config.ci_level) + check_isoflops(profiles, noise)
              + check_agreement(fits, config.ci_level) + check_residuals(fits, noise, residual_smoother(runs, budgets,
                                                                                                     config)))
    rate = throughput(runs)
    level = level_of(checks)
    suggestions = suggest(checks, budgets, profiles, runs, noise, rate) if level != DETERMINED else []
    return Verdict(level, checks, suggestions, noise, rate)
