"""Approach 1 (envelope of training curves): recovers the N_opt exponent from synthetic curves."""
import os

import numpy as np
import pytest

from analysis.laws import approach1
from analysis.laws.common import FitConfig, FitError
from analysis.synthetic import CHINCHILLA, curves_table, isoflop_table

os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")


def sweep(noise=0.002, seed=0):
    runs = isoflop_table(CHINCHILLA, np.geomspace(1e18, 1e22, 5), sizes_per_budget=9, span=16, noise=0.0, seed=seed)
    return runs, curves_table(CHINCHILLA, runs, points_per_run=24, noise=noise, seed=seed)


def test_recovers_n_opt_exponent_from_curves():
    """Tolerance 0.03: the envelope is a step function of the discrete sizes swept."""
    runs, curves = sweep()
    fit = approach1.fit(runs, curves, FitConfig(n_bootstrap=0))
    assert fit.n_opt.a == pytest.approx(CHINCHILLA.a, abs=0.03)
    assert fit.d_opt.a == pytest.approx(CHINCHILLA.b, abs=0.03)
    # every envelope point is a real run's curve value at that C
    assert fit.points["loss"].between(curves["loss"].min() * 0.99, curves["loss"].max() * 1.01).all()


def test_envelope_is_the_minimum_over_runs():
    runs, curves = sweep()
    C, loss, tokens, N = approach1.loss_table(runs, curves, FitConfig(), n_grid=200, min_cover=2)
    env = approach1.envelope(C, loss, tokens, N)
    np.testing.assert_allclose(env["loss"], np.min(loss, axis=0))
    sub = np.array([0, 3, 7])
    assert (approach1.envelope(C, loss, tokens, N, sub)["run"].isin(sub)).all()


def test_bootstrap_interval_covers_truth():
    runs, curves = sweep(noise=0.005, seed=1)
    fit = approach1.fit(runs, curves, FitConfig(n_bootstrap=200, seed=0))
    lo, hi = fit.n_opt.a_ci
    assert lo < CHINCHILLA.a < hi


def test_runs_without_curves_are_an_error():
    runs, curves = sweep()
    with pytest.raises(FitError, match="curves"):
        approach1.fit(runs, curves[curves["run_id"].isin(runs["run_id"][:2])], FitConfig(n_bootstrap=0))
