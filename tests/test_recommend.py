"""Recommendations from a loss surface: optimum, off-optimum costs, inference-aware, data-constrained, bad requests."""
import os
from pathlib import Path

import numpy as np
import pytest

from analysis import recommend as R
from analysis import results
from analysis.laws import approach3
from analysis.laws.approach3 import LossSurface
from analysis.laws.common import FitConfig, FitWarning
from analysis.synthetic import CHINCHILLA, FIXTURE_LAW, isoflop_table

os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")
FIXTURE = Path(__file__).parent / "fixtures" / "sweep_small"


@pytest.fixture
def law():
    return LossSurface.known(**CHINCHILLA.__dict__, c_range=(1e18, 1e22))


def test_recommend_budget_matches_the_closed_form(law):
    rec = R.recommend(law, budget=5.76e23)   # Gopher budget: the rounded published constants give ~32B params, 3T tokens
    assert rec.n_opt == pytest.approx(CHINCHILLA.n_opt(5.76e23))
    assert rec.d_opt * rec.n_opt * 6 == pytest.approx(5.76e23, rel=1e-9)
    assert rec.tokens_per_param == pytest.approx(rec.d_opt / rec.n_opt)
    assert any("outside the fitted range" in w for w in rec.warnings)   # 5.76e23 is 58x past 1e22: warned


def test_recommend_target_loss_inverts_budget(law):
    rec = R.recommend(law, budget=1e20)
    back = R.recommend(law, target_loss=rec.loss)
    assert back.budget == pytest.approx(1e20, rel=1e-6)


def test_bad_requests_warn_or_refuse(law):
    with pytest.warns(FitWarning, match="orders of magnitude"):
        R.recommend(law, budget=1e24)                      # 100x past the range: a number, with a warning
    with pytest.raises(R.ExtrapolationError, match="outside the fitted range"):
        R.recommend(law, budget=1e27)                      # 1e5x: refused
    assert R.recommend(law, budget=1e27, allow_far=True).n_opt > 0
    with pytest.raises(ValueError, match="unreachable"):
        R.recommend(law, target_loss=1.5)                  # below E = 1.69
    with pytest.raises(ValueError, match="exactly one"):
        R.recommend(law)
    few = LossSurface.known(**CHINCHILLA.__dict__, n_runs=9)
    with pytest.warns(FitWarning, match="9 runs"):
        R.recommend(few, budget=1e20)
    tab = R.table(law, [1e20, 1e30])
    assert np.isfinite(tab.loc[0, "N_opt"]) and np.isnan(tab.loc[1, "N_opt"])
    assert tab.loc[1, "warnings"].startswith("refused")


def test_off_optimum_costs(law):
    off = R.off_optimum(law, 1e21, size_factors=(2, 1, 0.5, 0.25))
    at_opt = off[off["size_factor"] == 1].iloc[0]
    assert at_opt["loss_penalty"] == pytest.approx(0, abs=1e-12) and at_opt["extra_compute"] == pytest.approx(0, abs=1e-9)
    others = off[off["size_factor"] != 1]
    assert (others["loss_penalty"] > 0).all() and (others["extra_compute"] > 0).all()
    # a smaller model trained longer costs more compute the further it is from the optimum
    small = off[off["size_factor"] < 1].sort_values("size_factor")
    assert small["extra_compute"].is_monotonic_decreasing


def test_inference_aware_optimum(law):
    target = float(law.loss_opt(1e21))
    none = R.inference_optimal(law, target, inference_tokens=0)
    assert none["N"] == pytest.approx(float(law.n_opt(1e21)), rel=1e-3)     # no inference: Chinchilla
    heavy = R.inference_optimal(law, target, inference_tokens=1e13)
    assert heavy["N"] < none["N"] and heavy["tokens_per_param"] > none["tokens_per_param"]
    assert 0 < heavy["saving"] < 1
    assert law.predict(heavy["N"], heavy["D"]) == pytest.approx(target, abs=1e-9)


def test_data_constrained(law):
    C = 1e21
    free = R.data_constrained(law, C, unique_tokens=1e15)
    assert free["N"] == pytest.approx(free["unconstrained_N"], rel=1e-3) and free["epochs"] < 1
    scarce = R.data_constrained(law, C, unique_tokens=float(law.d_opt(C)) / 8)
    assert scarce["epochs"] > 1 and scarce["N"] > scarce["unconstrained_N"]   # scarce data: spend compute on N
    assert scarce["loss"] > scarce["unconstrained_loss"]
    U = 1e9
    assert R.effective_tokens(5e8, U) == 5e8
    assert R.effective_tokens(1e20, U) == pytest.approx(U * (1 + R.R_STAR_D))           # repeats saturate
    assert R.effective_tokens(2e9, U) == pytest.approx(U + U * 15.4 * (1 - np.exp(-1 / 15.4)))
    with pytest.warns(FitWarning, match="epochs"):
        R.data_constrained(law, C, unique_tokens=1e6)


# ---- bootstrap intervals of the off-optimum, inference-aware and data-constrained quantities
def three_quantities(law):
    """{name: (value, lo, hi)} for every interval the three analyses report, at 10x the largest swept budget."""
    C = 10 * law.c_range[1]
    out = {}
    off = R.off_optimum(law, C)
    for _, row in off.iterrows():
        for k in R.OFF_KEYS:
            out[f"off {row['size_factor']:g} {k}"] = (row[k], row[f"{k}_lo"], row[f"{k}_hi"])
    inf = R.inference_optimal(law, float(law.loss_opt(C)), inference_tokens=10 * float(law.d_opt(C)))
    out.update({f"inference {k}": (inf[k], *inf[f"{k}_ci"]) for k in R.INFERENCE_KEYS})
    dc = R.data_constrained(law, C, float(law.d_opt(C)) / 8, allow_far=True)
    out.update({f"data {k}": (dc[k], *dc[f"{k}_ci"]) for k in R.DATA_KEYS})
    return out


@pytest.fixture(scope="module")
def fixture_law():
    """The committed sweep, fitted with the default config: 1000 seeded resamples."""
    law = approach3.fit(results.load(FIXTURE).runs)
    assert law.samples.shape == (1000, 5)
    return law


def test_intervals_on_the_fixture_sweep_are_finite_ordered_and_contain_the_estimate(fixture_law):
    q = three_quantities(fixture_law)
    assert len(q) == 5 * len(R.OFF_KEYS) + len(R.INFERENCE_KEYS) + len(R.DATA_KEYS)
    for name, (v, lo, hi) in q.items():
        assert not np.isnan([v, lo, hi]).any(), name
        assert lo <= hi, name
        tol = 1e-9 * max(abs(v), 1e-12)
        assert lo - tol <= v <= hi + tol, f"{name}: {v} outside [{lo}, {hi}]"
        if not name.startswith("off 1 ") and np.isfinite(v):
            assert hi - lo > 1e-6 * abs(v), f"{name}: degenerate interval"    # real spread, not the point repeated
    # the optimum itself costs nothing on every resample; a 10x smaller model never reaches its loss on some
    assert q["off 1 extra_compute"][1:] == pytest.approx((0, 0), abs=1e-9)
    assert q["off 0.1 extra_compute"][2] == np.inf


def test_intervals_evaluate_each_resampled_law(fixture_law):
    """The vectorised evaluation over all resamples agrees with the scalar analysis run on each resampled surface."""
    C = 10 * fixture_law.c_range[1]
    target, T, U = float(fixture_law.loss_opt(C)), 10 * float(fixture_law.d_opt(C)), float(fixture_law.d_opt(C)) / 8
    laws = R._resampled(fixture_law)
    inf_all = R._inference(laws, target, T, fixture_law.c_range[0])
    dc_all = R._data_constrained(laws, C, U, R.R_STAR_D)
    off_all = R._off(laws, C, 0.5)
    surfaces = fixture_law.sample_surfaces()
    for i in np.linspace(0, len(surfaces) - 1, 12).astype(int):
        s = surfaces[i]
        if s.E < target:
            inf = R.inference_optimal(s, target, T)
            assert inf["N"] == pytest.approx(inf_all["N"][i], rel=1e-6)
            assert inf["saving"] == pytest.approx(inf_all["saving"][i], rel=1e-6, abs=1e-9)
        dc = R.data_constrained(s, C, U, allow_far=True)
        assert dc["N"] == pytest.approx(dc_all["N"][i], rel=1e-6) and dc["loss"] == pytest.approx(dc_all["loss"][i])
        off = R.off_optimum(s, C, size_factors=(0.5,)).iloc[0]
        assert off["extra_compute"] == pytest.approx(off_all["extra_compute"][i])
        assert np.isnan(dc["N_ci"]).all()           # a law without resamples reports no interval, not a fake one


def test_intervals_shrink_when_the_fit_has_less_noise():
    budgets = np.geomspace(1e15, 1e18, 4)
    cfg = FitConfig(n_bootstrap=200, seed=1)
    noisy, clean = (approach3.fit(isoflop_table(FIXTURE_LAW, budgets, sizes_per_budget=8, span=64, noise=n, seed=2),
                                  cfg) for n in (0.02, 0.002))
    qn, qc = three_quantities(noisy), three_quantities(clean)
    for name in ("off 0.5 loss_penalty", "off 0.25 extra_compute", "inference N", "inference saving", "data N",
                 "data loss"):
        wn, wc = qn[name][2] - qn[name][1], qc[name][2] - qc[name][1]
        assert 0 < wc < 0.5 * wn, f"{name}: width {wc:.3g} with 0.2% noise vs {wn:.3g} with 2%"
