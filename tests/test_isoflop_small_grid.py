"""Approach 2 on small and irregular grids (3 sizes per budget, sizes off any shared grid, budgets of unequal
size) and on the public isoFLOP data stored in bench/data (its authors' exponents within 0.03)."""
import sys

import numpy as np
import pandas as pd
import pytest
from isoflop_util import ASYM, BENCH, fit

from analysis.laws.common import FitConfig
from analysis.synthetic import CHINCHILLA, KnownLaw, isoflop_table


def test_three_sizes_per_budget_fall_back_to_shared_profiles_noise_free():
    """3 sizes fit any exponents exactly, so per-budget shapes are undetermined: the default says it shares one
    (a, b) across budgets, and noise-free that recovers the exponent exactly even on an off-centre grid."""
    t = isoflop_table(ASYM, np.geomspace(1e18, 1e19, 4), sizes_per_budget=3, span=10, noise=0.0,
                      shift_dex=[-0.2, 0.0, 0.1, 0.3])
    f = fit(t)
    assert (f.points["profile"] == "shared").all()
    assert any("share one (a, b)" in w for w in f.warnings)
    assert "(too few sizes per budget" in f.describe_method()
    assert f.n_opt.a == pytest.approx(ASYM.a, abs=1e-3)
    assert f.d_opt.a == pytest.approx(ASYM.b, abs=1e-3)
    # 16 sizes leave enough degrees of freedom: budgets whose shapes differ (their own law each) keep one each
    t = pd.concat([isoflop_table(KnownLaw(E=1.8, A=1500.0 * 3 ** i, B=400.0 / 2 ** i, alpha=0.5, beta=0.25), [C],
                                 sizes_per_budget=16, span=100, noise=0.001, seed=i)
                   for i, C in enumerate(np.geomspace(1e18, 1e22, 5))], ignore_index=True)
    assert (fit(t).points["profile"] == "per budget").all()


def test_three_sizes_per_budget_bootstrap_is_defined_and_covers():
    """The CPU demo's design, 4 budgets over one decade x 3 sizes, 1% noise: the run bootstrap was undefined for
    most resamples (a budget left with < 3 sizes); with shared profiles nearly every resample gives an exponent
    and the 90% interval covers the truth in most seeds."""
    cover, undefined = 0, []
    for seed in range(8):
        t = isoflop_table(ASYM, np.geomspace(1e18, 1e19, 4), sizes_per_budget=3, span=10, noise=0.01, seed=seed,
                          jitter_dex=0.05)
        f = fit(t, FitConfig(n_bootstrap=100, seed=seed, processes=1))
        undefined.append(np.isnan(f.n_opt.samples[:, 1]).mean())
        lo, hi = f.n_opt.a_ci
        cover += lo <= ASYM.a <= hi
    assert max(undefined) < 0.1 and cover >= 6


def test_sizes_off_a_shared_grid_and_unequal_budgets():
    """Each budget its own sizes (random, not on one lattice) and its own count (4..25): the exponent is recovered."""
    rng = np.random.default_rng(0)
    parts = []
    for i, (C, n) in enumerate(zip(np.geomspace(1e18, 1e22, 5), (25, 4, 11, 7, 18))):
        p = isoflop_table(CHINCHILLA, [C], sizes_per_budget=n, span=10 ** rng.uniform(1, 2.5), noise=0.0,
                          shift_dex=rng.uniform(-0.3, 0.3), jitter_dex=0.1, seed=i)
        parts.append(p.assign(run_id=[f"b{i}r{j}" for j in range(len(p))]))
    t = pd.concat(parts, ignore_index=True)
    for method in ("shape", "shared"):
        assert fit(t, method=method).n_opt.a == pytest.approx(CHINCHILLA.a, abs=2e-3), method


@pytest.mark.parametrize("name", ["chinchilla", "llama3"])
def test_public_data_within_003_of_the_authors(name):
    """bench/data holds digitised public isoFLOP points; the default approach 2 agrees with the authors' N_opt
    exponent within 0.03 (bench/README.md, "Public isoFLOP data", has the full comparison)."""
    sys.path.insert(0, str(BENCH))
    import public_isoflop as pub
    file, a_pub, *_ = pub.PUBLISHED[name]
    runs = pub.load(BENCH / "data" / file)
    f = fit(runs, FitConfig(n_col="params_total", c_col="flops", n_bootstrap=0))
    assert abs(f.n_opt.a - a_pub) <= 0.03


def test_shape_interval_is_the_basic_bootstrap_interval():
    """The shape methods' exponent interval reflects the bootstrap percentiles about the estimate (and laws.json
    keeps it so); other methods keep the percentiles."""
    t = isoflop_table(ASYM, np.geomspace(1e18, 1e22, 5), sizes_per_budget=20, span=100, noise=0.01, seed=1)
    f = fit(t, FitConfig(n_bootstrap=100, seed=1, processes=1))
    q = np.nanquantile(f.n_opt.samples[:, 1], [0.05, 0.95])
    assert f.n_opt.a_ci == pytest.approx((2 * f.n_opt.a - q[1], 2 * f.n_opt.a - q[0]))
    assert f.n_opt.a_ci[0] < ASYM.a < f.n_opt.a_ci[1]
    from analysis import lawfile
    saved = lawfile._power_content(f)["n_opt"]
    assert saved["a_interval_basic"] is True and saved["a_interval"] == pytest.approx(list(f.n_opt.a_ci))
    p = fit(t, FitConfig(n_bootstrap=30, seed=1, processes=1), method="parabola")
    assert p.n_opt.a_ci == pytest.approx(tuple(np.nanquantile(p.n_opt.samples[:, 1], [0.05, 0.95])))
