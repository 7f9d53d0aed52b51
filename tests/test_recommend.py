"""Recommendations from a loss surface: optimum, off-optimum costs, inference-aware, data-constrained, bad requests."""
import numpy as np
import pytest

from analysis import recommend as R
from analysis.laws.approach3 import LossSurface
from analysis.laws.common import FitWarning
from analysis.synthetic import CHINCHILLA


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
