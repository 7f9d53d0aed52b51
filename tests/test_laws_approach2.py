"""Approach 2 (isoFLOP parabolas): recovers the N_opt exponent of a known law; groups budgets; warns."""
import os

import numpy as np
import pandas as pd
import pytest

from analysis.laws import approach2
from analysis.laws.common import FitConfig, FitError, FitWarning
from analysis.synthetic import CHINCHILLA, FIXTURE_LAW, isoflop_table

os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")


@pytest.mark.parametrize("law, budgets", [(CHINCHILLA, (1e18, 1e22)), (FIXTURE_LAW, (1e14, 1e18))])
def test_recovers_n_opt_exponent(law, budgets):
    """Tolerance 0.02 on a (the parabola is an approximation of the isoFLOP profile: a small bias remains)."""
    t = isoflop_table(law, np.geomspace(*budgets, 5), sizes_per_budget=9, span=16, noise=0.003, seed=0)
    fit = approach2.fit(t, FitConfig(n_bootstrap=0))
    assert fit.n_opt.a == pytest.approx(law.a, abs=0.02)
    assert fit.d_opt.a == pytest.approx(law.b, abs=0.02)
    assert fit.n_opt.a + fit.d_opt.a == pytest.approx(1.0, abs=1e-6)    # C = 6ND exactly on each line
    np.testing.assert_allclose(fit.points["N_opt"], law.n_opt(fit.points["C"]), rtol=0.15)


def test_bootstrap_interval_covers_truth_and_is_seeded():
    t = isoflop_table(CHINCHILLA, np.geomspace(1e18, 1e22, 5), sizes_per_budget=9, noise=0.01, seed=1)
    cfg = FitConfig(n_bootstrap=300, seed=3)
    a = approach2.fit(t, cfg)
    lo, hi = a.n_opt.a_ci
    assert lo < CHINCHILLA.a < hi and hi - lo > 0.005
    b = approach2.fit(t, cfg)
    np.testing.assert_array_equal(a.n_opt.samples, b.n_opt.samples)


def test_groups_by_exact_flops_without_budget_column():
    t = isoflop_table(CHINCHILLA, [1e18, 1e19, 1e20], sizes_per_budget=5, noise=0.0).drop(columns="budget")
    t["flops"] = t["flops"] * np.random.default_rng(0).uniform(0.97, 1.0, len(t))   # whole steps: slightly under C
    g = approach2.group_budgets(t)
    assert g.nunique() == 3 and (g.value_counts() == 5).all()


def test_optimum_outside_sizes_warns():
    law = CHINCHILLA
    rows = isoflop_table(law, np.geomspace(1e18, 1e21, 4), sizes_per_budget=9, noise=0.0)
    lopsided = rows[rows["params_nonembedding"] > law.n_opt(rows["budget"]) * 1.5]   # only sizes above the optimum
    with pytest.warns(FitWarning, match="outside the sizes"):
        fit = approach2.fit(lopsided, FitConfig(n_bootstrap=0), method="parabola")
    assert any("outside" in w for w in fit.warnings)
    # the law-shaped profile warns the same way; noise-free, its extrapolation lands on the optimum
    with pytest.warns(FitWarning, match="outside the sizes"):
        shape = approach2.fit(lopsided, FitConfig(n_bootstrap=0))
    np.testing.assert_allclose(shape.points["N_opt"], law.n_opt(shape.points["C"]), rtol=0.01)
    assert not shape.points["bracketed"].any()


def test_too_few_budgets_is_an_error():
    t = isoflop_table(CHINCHILLA, [1e19], sizes_per_budget=7)
    with pytest.raises(FitError, match="at least 2"):
        approach2.fit(t, FitConfig(n_bootstrap=0))
    with pytest.raises(FitError, match="lacks column"):
        approach2.fit(pd.DataFrame({"loss": [1.0]}), FitConfig(n_bootstrap=0))


def test_groups_by_the_grids_budget_even_where_flops_clusters_would_not():
    """Two budgets 0.05 dex apart (closer than the clustering gap) stay apart by their budget column; a table
    where some runs lack a budget (launched before grid.json) falls back to the FLOPs: exact repeats keep the two
    apart; FLOPs that differ run to run are clustered (and two budgets this close, whose sizes' D differ by only
    1.12x, chain into one)."""
    t = isoflop_table(CHINCHILLA, [1e19, 1.12e19], sizes_per_budget=5, noise=0.0)
    g = approach2.group_budgets(t)
    assert g.nunique() == 2 and (g.value_counts() == 5).all()
    t.loc[0, "budget"] = np.nan
    assert approach2.group_budgets(t).nunique() == 2
    t["flops"] = t["flops"] * np.random.default_rng(0).uniform(0.97, 1.0, len(t))
    assert approach2.group_budgets(t).nunique() == 1
