"""The verdict: every quality check fires on a table built to trigger it and changes the verdict; a well-determined
synthetic law triggers none. Noise is measured from seed replicates, and suggestions are runnable sweep lines."""
import copy
import dataclasses
import json
import os
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis import noise, verdict
from analysis.laws import approach1, approach2, approach3
from analysis.laws.common import FitConfig, PowerLaw
from analysis.laws.moe import MoELaw
from analysis.synthetic import CHINCHILLA, KnownLaw, curves_table, isoflop_table

os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")
CFG = FitConfig(n_bootstrap=60, processes=1)
BUDGETS = np.geomspace(1e17, 1e20, 5)          # 5 budgets over 1000x


def fit_all(runs, curves=None, cfg=CFG) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {"approach 2": approach2.fit(runs, cfg), "approach 3": approach3.fit(runs, cfg)}
        if curves is not None:
            fits["approach 1"] = approach1.fit(runs, curves, cfg)
    return fits


def judge(fits, runs, cfg=CFG):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return verdict.judge(fits, runs, cfg)


def fired(v: verdict.Verdict) -> set[str]:
    return {c.name for c in v.checks if c.severity != verdict.OK}


@pytest.fixture(scope="module")
def good():
    """Chinchilla's law on 5 isoFLOP budgets over 1000x, 7 sizes each, every run trained with 2 seeds."""
    runs = isoflop_table(CHINCHILLA, BUDGETS, sizes_per_budget=7, span=16, noise=0.005, seed=1, replicates=2)
    fits = fit_all(runs, curves_table(CHINCHILLA, runs, seed=1))
    return runs, fits, judge(fits, runs)


def test_a_well_determined_law_passes_every_check(good):
    runs, fits, v = good
    assert set(fits) == {"approach 1", "approach 2", "approach 3"}
    assert v.level == verdict.DETERMINED and fired(v) == set() and v.suggestions == []
    assert {c.name for c in v.checks} == set(verdict.CHECKS)                 # every check ran and says so
    assert v.noise.measured and v.noise.dof == len(runs) // 2                 # one degree of freedom per pair
    d = json.loads(json.dumps(v.to_dict()))                                  # what laws.json will store
    assert d["level"] == "determined" and d["noise"]["measured"] and len(d["checks"]) == len(v.checks)


def test_noise_is_measured_from_seed_replicates():
    runs = isoflop_table(CHINCHILLA, BUDGETS, sizes_per_budget=7, noise=0.01, seed=0, replicates=3)
    n = noise.estimate(runs)
    assert n.measured and n.dof == 35 * 2 and n.configs == 35 and n.runs == 105
    assert n.ci[0] < 0.01 < n.ci[1] and n.sd == pytest.approx(0.01, rel=0.2)
    # a seed loaded twice is one replicate, not two; a table without seeds or replicates is unmeasured
    assert noise.estimate(pd.concat([runs, runs])).dof == n.dof
    assert not noise.estimate(runs.drop(columns="seed")).measured
    single = noise.estimate(runs[runs["seed"] == 0])
    assert not single.measured and "grid.seeds" in single.why and "unmeasured" in single.describe()


def test_unmeasured_noise_is_a_caveat_not_a_silent_pass(good):
    runs, fits, _ = good
    v = judge(fits, runs[runs["seed"] == 0])
    assert v.level == verdict.WEAK and fired(v) == {"residuals"}
    assert "unmeasured" in v.fired("residuals")[0].message
    replicate = [s for s in v.suggestions if "grid.seeds" in s.command]
    assert len(replicate) == 1 and replicate[0].runs == 7 and "'grid.seeds=[0,1]'" in replicate[0].command


def test_e_at_its_bound_fails(good):
    runs, fits, _ = good
    a3 = fits["approach 3"]
    collapsed = dataclasses.replace(a3, E=1e-9)
    v = judge({**fits, "approach 3": collapsed}, runs)
    assert v.level == verdict.UNDETERMINED and "E = 1e-09 has collapsed" in v.fired("bound")[0].message
    # a vanished power term is the same failure for N
    flat_n = dataclasses.replace(a3, A=1e-6)
    assert "the N term vanishes" in judge({**fits, "approach 3": flat_n}, runs).fired("bound")[0].message


def test_degenerate_and_missing_intervals(good):
    runs, fits, _ = good
    a3 = fits["approach 3"]
    stuck = a3.samples.copy()
    stuck[:, 0] = a3.E                                      # every resample lands on the same E
    v = judge({**fits, "approach 3": dataclasses.replace(a3, samples=stuck)}, runs)
    assert v.level == verdict.UNDETERMINED and "E: degenerate interval" in v.fired("interval")[0].message
    nan = a3.samples.copy()
    nan[: len(nan) * 3 // 4] = np.nan                       # 75% of resamples undefined
    assert "of bootstrap resamples give no value" in judge(
        {**fits, "approach 3": dataclasses.replace(a3, samples=nan)}, runs).fired("interval")[0].message
    none = judge({**fits, "approach 3": dataclasses.replace(a3, samples=np.empty((0, 5)))}, runs)
    assert none.level == verdict.WEAK and "no bootstrap intervals" in none.fired("interval")[0].message


def test_implausible_exponents_fail(good):
    runs, fits, _ = good
    a2 = fits["approach 2"]
    wild = dataclasses.replace(a2, n_opt=PowerLaw(k=1e-71, a=14.96, samples=a2.n_opt.samples + [0, 14.5]),
                               d_opt=PowerLaw(k=1e37, a=-14.34, samples=a2.d_opt.samples - [0, 14.8]))
    v = judge({**fits, "approach 2": wild}, runs)
    msg = v.fired("exponent")[0]
    assert v.level == verdict.UNDETERMINED and msg.law == "approach 2" and "a = 15 lies outside 0.15-0.85" in msg.message
    assert "agreement" in fired(v)                            # and it no longer agrees with approaches 1 and 3


def test_too_few_budgets_and_too_narrow_a_span_fail_with_a_plan_to_fix_them():
    """The demo's grid: 3 budgets within 2.56x, 3 sizes each. The law collapses (E ~ 0) and the verdict says
    what to add, with the cost at the sweep's measured throughput and a dry-run line Hydra can parse."""
    runs = isoflop_table(CHINCHILLA, [2.5e11, 4e11, 6.4e11], sizes_per_budget=3, span=4, noise=0.01, seed=3)
    runs = runs.assign(sweep="chinchilla", wall_s=runs["flops"] / 1e9)     # 1 GFLOP/s
    v = judge(fit_all(runs), runs)
    assert v.level == verdict.UNDETERMINED and {"coverage", "bound"} <= fired(v)
    assert "3 compute budget(s)" in v.fired("coverage")[0].message and "2.56x" in v.fired("coverage")[0].message
    assert v.throughput == pytest.approx(1e9)
    extend = v.suggestions[0]
    budgets = [float(x) for x in re.search(r"budgets=\[([^\]]+)\]", extend.command).group(1).split(",")]
    assert budgets[:3] == [2.5e11, 4e11, 6.4e11] and len(budgets) >= 4 and max(budgets) / min(budgets) >= 10
    assert extend.runs == 3 * (len(budgets) - 3) and extend.flops == pytest.approx(3 * sum(budgets[3:]))
    assert extend.seconds == pytest.approx(extend.flops / 1e9)
    assert extend.command.startswith("python sweep.py +grid=chinchilla ") and extend.command.endswith("dry_run=true")
    from hydra.core.override_parser.overrides_parser import OverridesParser
    overrides = re.findall(r"'([^']+)'|(\S+=\S+)", extend.command.split("+grid=chinchilla")[1])
    parsed = OverridesParser.create().parse_overrides([a or b for a, b in overrides])
    assert parsed[0].value() == budgets


def test_a_wide_span_with_three_budgets_still_fails_coverage():
    runs = isoflop_table(CHINCHILLA, [1e17, 1e18, 1e19], sizes_per_budget=7, noise=0.005, seed=2)
    checks = verdict.check_coverage(verdict.budget_table(runs, CFG))
    assert checks[0].severity == verdict.FAIL and "3 compute budget(s)" in checks[0].message
    assert "span" not in checks[0].message                    # 100x is wide enough; only the count fails


def test_isoflop_minima_at_the_edge(good):
    runs, _, _ = good
    rank = runs.groupby("budget")["params_nonembedding"].rank(method="dense")
    small = runs[rank <= 3]                                   # only the 3 smallest of 7 sizes: optimum above them
    v = judge(fit_all(small), small)
    edge = v.fired("isoflop edge")
    assert v.level == verdict.UNDETERMINED and edge and "larger end" in edge[0].message and "5 of 5" in edge[0].message
    assert any("sizes_per_budget=5" in s.command for s in v.suggestions)


def test_a_flat_isoflop_profile():
    """At one budget the sizes lie within 1.1x of each other: their losses differ by less than the noise."""
    runs = pd.concat([isoflop_table(CHINCHILLA, BUDGETS[[0, 1, 3, 4]], sizes_per_budget=7, noise=0.004, seed=4,
                                    replicates=2),
                      isoflop_table(CHINCHILLA, BUDGETS[[2]], sizes_per_budget=7, span=1.1, noise=0.004, seed=5,
                                    replicates=2)], ignore_index=True)
    v = judge(fit_all(runs), runs)
    flat = v.fired("isoflop flat")
    assert flat and f"C = {BUDGETS[2]:.3g}" in flat[0].message and "1 of 5" in flat[0].message
    assert flat[0].severity == verdict.CAVEAT and v.level != verdict.DETERMINED
    assert any("grid.shapes.spacing=" in s.command for s in v.suggestions)


def test_disagreeing_approaches():
    """Approach 2 from runs where data should grow faster (a ~ 0.25), approach 3 from runs where size should."""
    law_d, law_n = (KnownLaw(E=1.69, A=406.4, B=410.7, alpha=al, beta=be) for al, be in ((0.6, 0.2), (0.2, 0.6)))
    t_d = isoflop_table(law_d, BUDGETS, sizes_per_budget=7, noise=0.005, seed=1, replicates=2)
    t_n = isoflop_table(law_n, BUDGETS, sizes_per_budget=7, noise=0.005, seed=1, replicates=2)
    fits = {"approach 2": fit_all(t_d)["approach 2"], "approach 3": fit_all(t_n)["approach 3"]}
    v = judge(fits, t_n)
    (check,) = v.fired("agreement")
    assert check.severity == verdict.FAIL and "disagree on whether N or D should grow faster" in check.message
    same_side = verdict.check_agreement({"approach 2": fits["approach 2"],
                                         "approach 3": dataclasses.replace(fits["approach 3"], alpha=0.45, beta=0.28,
                                                                           samples=np.empty((0, 5)))}, 0.9)
    assert same_side[0].severity == verdict.CAVEAT and "no intervals" in same_side[0].message


def test_residuals_larger_than_the_measured_noise(good):
    runs, _, _ = good
    bumpy = runs.assign(loss=runs["loss"] * (1 + 0.03 * np.sin(3 * np.log(runs["params_nonembedding"]))))
    v = judge(fit_all(bumpy), bumpy)
    (check,) = v.fired("residuals")
    assert check.severity == verdict.FAIL and "x the measured run-to-run noise" in check.message


def test_moe_law_checks():
    """A hand-built MoE law: fine as given; with c collapsed or alpha implausible its checks fail."""
    params = dict(c=1.8, a=150.0, g=250.0, gamma=0.6, delta=0.12, alpha=0.33, b=900.0, beta=0.35)
    N, D = np.geomspace(1e6, 1e8, 12), np.geomspace(1e8, 1e10, 12)
    law = MoELaw(**params, k=6.0, config=FitConfig(), n_runs=12, experts=(1, 8), granularities=(1.0, 2.0), held=(),
                 objective=0.0, converged=True, residuals=pd.DataFrame({"N": N, "D": D, "loss": 2.5, "residual": 0.0}))
    assert verdict.check_bounds({"moe": law})[0].severity == verdict.OK
    assert verdict.check_exponents({"moe": law})[0].severity == verdict.OK
    bad = verdict.check_bounds({"moe": dataclasses.replace(law, c=1e-8)})
    assert bad[0].severity == verdict.FAIL and bad[0].law == "MoE law" and "c = 1e-08" in bad[0].message
    steep = verdict.check_exponents({"moe": dataclasses.replace(law, alpha=3.0)})
    assert steep[0].law == "MoE law" and "alpha = 3" in steep[0].message


@pytest.mark.parametrize("ci,says", [((0.55, 0.7), "model size should grow faster than data"),
                                     ((0.3, 0.45), "data should grow faster than model size"),
                                     ((0.42, 0.58), "cannot tell"), ((np.nan, np.nan), "cannot tell")])
def test_direction_only_where_the_interval_supports_it(ci, says):
    assert says in verdict.allocation_direction(0.5, ci, 0.9)


def test_a_cross_check_without_intervals_is_a_caveat_not_a_failure(good):
    """Approach 2 only cross-checks approach 3 (recommendations come from approach 3): its undefined bootstrap
    (e.g. 3 sizes per budget, where most resamples lose a size) weakens the verdict; approach 3's own would fail it."""
    runs, fits, _ = good
    a2 = copy.deepcopy(fits["approach 2"])
    a2.n_opt.samples = np.full_like(a2.n_opt.samples, np.nan)
    a2.d_opt.samples = np.full_like(a2.d_opt.samples, np.nan)
    v = judge({**fits, "approach 2": a2}, runs)
    check = v.fired("interval")[0]
    assert check.severity == verdict.CAVEAT and check.law == "approach 2" and "cross-checks" in check.message
    assert v.level == verdict.WEAK
    a3 = fits["approach 3"]
    nan = np.full_like(a3.samples, np.nan)
    assert judge({**fits, "approach 3": dataclasses.replace(a3, samples=nan)}, runs).level == verdict.UNDETERMINED


def test_suggested_lines_name_the_grid_the_sweep_was_launched_with():
    """grid.json's grid and scale (runs-table columns `grid`, `scale`) give the `+grid=`; a renamed sweep is named
    with sweep.name so the new runs join it; a sweep launched before grid.json named its grid falls back to the
    sweep's name and says so."""
    runs = isoflop_table(CHINCHILLA, [2.5e11, 4e11, 6.4e11], sizes_per_budget=3, span=4, noise=0.01, seed=3)
    fits = fit_all(runs)
    cases = {("foo", "demo", "cpu"): "python sweep.py +grid=demo sweep.name=foo '",
             ("demo", "demo", "cpu"): "python sweep.py +grid=demo '",
             ("chinchilla-gpu", "chinchilla", "gpu"): "python sweep.py +grid=chinchilla scale=gpu '",
             ("bar-gpu", "chinchilla", "gpu"): "python sweep.py +grid=chinchilla scale=gpu sweep.name=bar-gpu '"}
    for (sweep, grid, scale), start in cases.items():
        v = judge(fits, runs.assign(sweep=sweep, grid=grid, scale=scale))
        assert v.suggestions and all(s.command.startswith(start) and not s.caveat for s in v.suggestions), \
            [s.command for s in v.suggestions]
    old = judge(fits, runs.assign(sweep="foo"))
    assert all(s.command.startswith("python sweep.py +grid=foo '") for s in old.suggestions)
    assert "does not name the grid the sweep was launched with" in old.suggestions[0].describe()
