"""L-BFGS-B on many problems at once (analysis/lbfgs.py) gives each problem scipy.optimize.minimize's own iterates,
bit for bit; so approach 3's bootstrap gives the same samples as one minimize() per resample, whatever the number of
processes or the chunking, and as the scalar objective the fit used before."""
import os

import numpy as np
import pytest
import scipy
from scipy.optimize import minimize

from analysis import lbfgs
from analysis.bootstrap import parallel_map, resample_weights
from analysis.laws import approach3
from analysis.laws.common import FitConfig
from analysis.synthetic import FIXTURE_LAW, isoflop_table

os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")


def _objective_1d(theta, logN, logD, logL, w):
    """approach3.objective as it was before objective_rows (one problem, 1-D arrays): the reference."""
    e, a, b, al, be = theta
    t1, t2 = a - al * logN, b - be * logD
    m = np.maximum(np.maximum(t1, t2), e)
    x1, x2, x3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(e - m)
    s = x1 + x2 + x3
    r = m + np.log(s) - logL
    c = np.clip(r, -approach3.HUBER_DELTA, approach3.HUBER_DELTA)
    f = (w * c * (r - 0.5 * c)).sum()
    g = w * c / s
    g1, g2 = g * x1, g * x2
    return float(f), np.array([(g * x3).sum(), g1.sum(), g2.sum(), -(g1 * logN).sum(), -(g2 * logD).sum()])


def _problem(n_runs=5, seed=0):
    """A small noisy isoFLOP table's (log N, log D, log L), centred as the fit centres them."""
    t = isoflop_table(FIXTURE_LAW, np.geomspace(1e15, 1e18, 4), sizes_per_budget=n_runs, noise=0.01, seed=seed)
    logN, logD, logL = (np.log(t[c].to_numpy(float)) for c in ("params_nonembedding", "tokens", "loss"))
    return logN, logD, logL


def test_the_fast_path_is_in_use():
    """The driver calls the L-BFGS-B core of scipy >= 1.15 (older ones fall back to minimize(), same numbers)."""
    if tuple(int(v) for v in scipy.__version__.split(".")[:2]) < (1, 15):
        pytest.skip(f"scipy {scipy.__version__}: the driver needs >= 1.15")
    assert lbfgs.available()


def test_objective_rows_equal_the_scalar_objective_bit_for_bit():
    logN, logD, logL = _problem()
    rng = np.random.default_rng(1)
    theta = np.column_stack([rng.normal(0, 1, 64), rng.normal(8, 4, 64), rng.normal(10, 4, 64),
                             rng.uniform(0, 2, 64), rng.uniform(0, 2, 64)])
    w = resample_weights(len(logN), 64, seed=2)
    f, g = approach3.objective_rows(theta, logN, logD, logL, w)
    for k in range(64):
        f1, g1 = _objective_1d(theta[k], logN, logD, logL, w[k])
        assert f[k] == f1 and np.array_equal(g[k], g1)
        assert approach3.objective(theta[k], logN, logD, logL, w[k])[0] == f1


def test_minimize_many_reproduces_minimize_per_problem():
    """Approach 3's problems from grid starts far from the optimum: same x, f, iterations and evaluations as
    minimize() of the scalar objective, problem by problem (some converge, some stop at maxiter)."""
    logN, logD, logL = _problem()
    cN, cD = logN - logN.mean(), logD - logD.mean()
    w = resample_weights(len(logN), 24, seed=3)
    starts = approach3.centre(approach3.grid_points()[::188][:24], logN.mean(), logD.mean())
    for options in (approach3.LBFGS_OPTIONS, {**approach3.LBFGS_OPTIONS, "maxiter": 15}):
        got = lbfgs.minimize_many(lambda th, rows: approach3.objective_rows(th, cN, cD, logL, w[rows]), starts,
                                  options)
        stopped = 0
        for k in range(len(starts)):
            ref = minimize(_objective_1d, starts[k], args=(cN, cD, logL, w[k]), jac=True, method="L-BFGS-B",
                           options=options)
            assert np.array_equal(got["x"][k], ref.x), k
            assert (got["fun"][k], got["nit"][k], got["nfev"][k], got["success"][k]) == (
                ref.fun, ref.nit, ref.nfev, ref.success)
            stopped += ref.nit == options["maxiter"]
        if options["maxiter"] == 15:
            assert stopped > 0         # the maxiter branch was exercised


def test_minimize_many_refuses_unknown_options():
    with pytest.raises(ValueError, match="maxcorr"):
        lbfgs.minimize_many(lambda th, rows: (th.sum(1), np.ones_like(th)), np.zeros((1, 2)), {"maxcorr": 5})


def _old_bootstrap(logN, logD, logL, theta_full, cfg):
    """Approach 3's bootstrap as it was: one minimize() of the scalar objective a resample."""
    W = resample_weights(len(logN), cfg.n_bootstrap, cfg.seed)
    grid = approach3.grid_points()
    best = grid[np.argmin(approach3.huber(approach3.log_pred(grid, logN, logD) - logL) @ W.T, axis=0)]
    mN, mD = logN.mean(), logD.mean()
    cN, cD = logN - mN, logD - mD
    out = []
    for w, g in zip(W, best):
        starts = [approach3.centre(s, mN, mD) for s in (theta_full, g)]
        start = min(starts, key=lambda s: _objective_1d(s, cN, cD, logL, w)[0])
        res = minimize(_objective_1d, start, args=(cN, cD, logL, w), jac=True, method="L-BFGS-B",
                       options=approach3.LBFGS_OPTIONS)
        out.append(approach3.centre(res.x, mN, mD, -1))
    return approach3.theta_to_params(np.array(out))


def test_bootstrap_is_the_same_serial_parallel_and_as_before(monkeypatch):
    logN, logD, logL = _problem(n_runs=4, seed=5)
    theta, _ = approach3.fit_theta(logN, logD, logL, np.ones(len(logN)))
    cfg = FitConfig(n_bootstrap=24, seed=7)
    before = _old_bootstrap(logN, logD, logL, theta, cfg)
    serial = approach3.bootstrap(logN, logD, logL, theta, FitConfig(n_bootstrap=24, seed=7, processes=1))
    parallel = approach3.bootstrap(logN, logD, logL, theta, FitConfig(n_bootstrap=24, seed=7, processes=2))
    assert np.array_equal(serial, before)
    assert np.array_equal(parallel, before)
    monkeypatch.setattr(lbfgs, "available", lambda: False)          # another scipy: one minimize() a resample
    assert np.array_equal(approach3.bootstrap(logN, logD, logL, theta, cfg), before)


def _sum_rows(items):
    return [float(np.sum(x)) for x in items]


@pytest.mark.parametrize("processes", [1, 2])
def test_parallel_map_batched_keeps_order(processes):
    items = [np.arange(k, k + 3) for k in range(11)]
    assert parallel_map(_sum_rows, items, processes=processes, batched=True) == [3.0 * k + 3 for k in range(11)]
    assert parallel_map(_sum_rows, [], processes=processes, batched=True) == []


@pytest.mark.parametrize("search", ["grid", "vp"])
def test_fits_from_several_starts_are_the_same_as_one_start_at_a_time(search, monkeypatch):
    """fit_theta (8 grid starts) and fit_theta_vp (3 profile starts) run their starts together: the same optimum,
    objective and message as running them one after another (the fallback)."""
    logN, logD, logL = _problem(n_runs=5, seed=6)
    w = np.ones(len(logN))
    fit = approach3.fit_theta if search == "grid" else approach3.fit_theta_vp
    together = fit(logN, logD, logL, w)
    monkeypatch.setattr(lbfgs, "available", lambda: False)
    alone = fit(logN, logD, logL, w)
    assert np.array_equal(together[0], alone[0])
    assert (together[1].fun, together[1].success, together[1].message, together[1].nit) == (
        alone[1].fun, alone[1].success, alone[1].message, alone[1].nit)
