"""The power law in effective data (y = E + (sum_j C_j w_j)^-alpha per target) as a candidate of law="auto": fitted
exactly on noiseless runs generated from it, picked by auto and its parameters recovered on noisy ones, weighed but
not picked on runs from the other families, its vectorised fit the per-target least-squares optimum, its float32
resamples giving float64's intervals, and too few mixtures refused with the fix."""
import warnings

import numpy as np
import pytest
from scipy.optimize import least_squares

import analysis.laws.mixing as mixing
from analysis.laws.common import FitError
from analysis.laws.mixing import MixingConfig, Power, fit, synthetic_power_table, synthetic_ye_table

K = 4
NO_BOOT = MixingConfig(n_bootstrap=0)


def truth(P, W):
    return P["E"][None] + (np.atleast_2d(W) @ np.exp(P["logC"]).T) ** -P["alpha"][None]


def arrays(table):
    doms = mixing.domains_of(table)
    return table[[f"w_{d}" for d in doms]].to_numpy(float), table[[f"loss_{d}" for d in doms]].to_numpy(float)


def test_noiseless_power_runs_are_fitted_exactly():
    table, P = synthetic_power_table(40, K, noise=0.0, seed=0)
    law = fit(table, "uniform", config=NO_BOOT)
    assert law.family == "power", law.cv
    th = law.params["theta"][0]
    np.testing.assert_allclose(th[:, 0], P["E"], atol=1e-6)
    np.testing.assert_allclose(th[:, 1:1 + K], P["logC"], atol=1e-5)
    np.testing.assert_allclose(th[:, -1], P["alpha"], atol=1e-6)


def test_auto_picks_the_power_law_and_recovers_it_with_intervals():
    table, P = synthetic_power_table(80, K, noise=0.001, seed=1)
    law = fit(table, "uniform", config=MixingConfig(n_bootstrap=200, recommend_resamples=0))
    cv = law.cv.set_index("family")["mean_rel_error"]
    assert law.family == "power", law.cv                       # the held-out check prefers the true law
    assert cv["power"] < 0.75 * cv.drop("power").min()         # measured 0.32-0.61 over seeds 0-3
    th = law.params["theta"][0]
    # stated tolerances at 0.1% noise and 80 mixtures (measured worst over seeds 0-3: 0.19, 0.087, 0.68, all on
    # seed 1's 4th target, whose fit has a lower error than the truth: E, alpha and the C_j trade off at this noise):
    # E within 0.25 (floors 1.5-3), alpha within 0.12 (0.2-0.6), log C_j within 0.8
    assert np.max(np.abs(th[:, 0] - P["E"])) < 0.25
    assert np.max(np.abs(th[:, -1] - P["alpha"])) < 0.12
    assert np.max(np.abs(th[:, 1:1 + K] - P["logC"])) < 0.8
    W = np.random.default_rng(9).dirichlet(np.ones(K), 50)
    true = truth(P, W).mean(1)
    assert np.max(np.abs(law.predict(W) / true - 1)) < 0.002
    lo, hi = law.interval(W)
    assert np.mean((lo <= true) & (true <= hi)) >= 0.7          # 90% intervals; allows model-free slack


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_on_ye_runs_the_power_law_is_weighed_and_never_beats_the_truth_beyond_a_tie(seed):
    # Ye's synthetic truth (small transfers) is close to a power law: the two tie within the noise (held-out error
    # power / ye 0.98-1.02 over seeds 0-3, 60 and 120 mixtures; power was lower on seeds 1 and 3 at 60)
    table, _ = synthetic_ye_table(60, K, noise=0.002, seed=seed)
    law = fit(table, "uniform", config=NO_BOOT)
    cv = law.cv.set_index("family")["mean_rel_error"]
    assert "power" in cv                                        # it was a candidate (fails if auto ignores it)
    assert cv["power"] > 0.97 * cv["ye"]
    assert law.family == "ye", law.cv                          # a tie within POW_MARGIN keeps the runner-up
    if cv.index[0] == "power":
        assert "a tie keeps the ye law" in law.cv_summary()


def test_the_vectorised_fit_is_the_least_squares_optimum():
    table, _ = synthetic_power_table(60, 6, noise=0.003, seed=2)
    W, Y = arrays(table)
    m = Power()
    th = m.fit(W, Y, None, np.ones((1, len(W))))["theta"][0]
    lo, hi = m._bounds(6)
    for t in range(Y.shape[1]):
        def resid(x, y=Y[:, t]):
            return m._terms(x, W)[0] - y
        ours = 0.5 * np.sum(resid(th[t]) ** 2)
        ref = least_squares(resid, th[t], bounds=(lo, hi), method="trf", x_scale="jac", xtol=1e-14, ftol=1e-14,
                            gtol=1e-14)
        assert ours <= ref.cost * (1 + 1e-6) + 1e-15, (t, ours, ref.cost)   # scipy, from our optimum, finds no lower


def test_float32_resamples_give_the_float64_intervals(monkeypatch):
    table, _ = synthetic_power_table(120, 6, noise=0.003, seed=3)
    W = np.random.default_rng(4).dirichlet(np.ones(6), 30)
    cfg = MixingConfig(n_bootstrap=100, recommend_resamples=0)
    out = {}
    for dt in (np.float64, np.float32):
        monkeypatch.setattr(mixing, "POW_BOOT_DTYPE", dt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law = fit(table, "uniform", law="power", config=cfg)
        out[dt] = np.array(law.interval(W))
    width = out[np.float64][1] - out[np.float64][0]
    # measured 0.007 of the width at most on 500 x 17 (200 resamples); here the same bound with room
    assert np.max(np.abs(out[np.float32] - out[np.float64]) / width) < 0.05


def test_too_few_mixtures_for_the_power_law_names_the_fix():
    table, _ = synthetic_power_table(K + 2, K, noise=0.0, seed=0)      # K + 2 mixtures: as many as its parameters
    with pytest.raises(FitError, match=r"power: 6 mixtures, needs more than its 6 parameters.*Add mixtures"):
        fit(table, "uniform", law="power", config=NO_BOOT)
    assert mixing.n_params("power", K) == K + 2
    assert "power" in mixing.FAMILIES
    assert mixing.form("power").startswith("y = E + (sum C_j w_j)^-alpha")


@pytest.mark.parametrize("make, seed", [(synthetic_power_table, 2), (synthetic_ye_table, 0)])
def test_folds_started_at_the_full_fit_fit_as_well_as_cold_started_ones(monkeypatch, make, seed):
    """k-fold fits of the power law from the full data's fit (FOLD_WARM_START) instead of the grid starts: a fit's
    training error per target at most 2% above the cold-started fit's (measured here: +1.0% at most on Ye's runs, where
    most targets end lower, down to -1.5%: the cold start's 100 steps stop short; +0.7% at most on the power law's,
    most equal to 1e-12), the k-fold held-out error within 0.5% of the cold folds' (measured -0.19% and +0.09%) and
    auto's choice and ranking the same (bench/README.md, "auto faster")."""
    table, _ = make(60, 6, noise=0.003, seed=seed)
    W, Y = arrays(table)
    S = (np.zeros(len(W)), np.zeros(len(W)))
    full = Power()
    full.fit(W, Y, S, np.ones((1, len(W))))
    worse = 0.0
    for f in range(3):
        M = np.ones((1, len(W)))
        M[0, np.random.default_rng(f).choice(len(W), 12, replace=False)] = 0
        cold, warm = Power(), Power()
        warm.warm = full.theta0
        err = [(M[0] * (m._terms(m.fit(W, Y, S, M)["theta"][0], W)[0] - Y.T) ** 2).sum(-1) for m in (cold, warm)]
        worse = max(worse, (err[1] / err[0] - 1).max())
    assert worse < 0.02, worse
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        laws = [fit(table, "uniform", config=NO_BOOT)]
        monkeypatch.setattr(mixing, "FOLD_WARM_START", False)
        laws.append(fit(table, "uniform", config=NO_BOOT))
    warm_cv, cold_cv = (law.cv.set_index("family")["mean_rel_error"] for law in laws)
    assert laws[0].family == laws[1].family and list(laws[0].cv["family"]) == list(laws[1].cv["family"])
    assert abs(warm_cv["power"] / cold_cv["power"] - 1) < 0.005, (warm_cv, cold_cv)


@pytest.mark.parametrize("family, make", [("power", synthetic_power_table), ("ye", synthetic_ye_table)])
def test_resamples_in_chunks_on_threads_are_the_resamples_in_one_block(monkeypatch, family, make):
    """Ye's and the power law's resamples stepped in chunks of a few resamples on 2 threads (BOOT_CHUNK, _in_chunks)
    give the same fits as all of a block's resamples stepped together on one thread: the problems are independent."""
    table, _ = make(80, 5, noise=0.003, seed=1)
    cfg = MixingConfig(n_bootstrap=50, recommend_resamples=0)
    out = []
    for chunk, threads in ((2 ** 40, 1), (3 * 5 * 80, 2)):
        monkeypatch.setattr(mixing, "BOOT_CHUNK", chunk)
        monkeypatch.setattr(mixing, "ADD_BOOT_THREADS", threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law = fit(table, "uniform", law=family, config=cfg)
        out.append(np.concatenate([np.ravel(v) for v in law.boot.values()]))
    np.testing.assert_allclose(out[1], out[0], rtol=1e-12, atol=0)
    assert np.ptp(out[0].reshape(50, -1), 0).max() > 1e-3          # the resamples did move
