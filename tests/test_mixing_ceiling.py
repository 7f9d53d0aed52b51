"""The Spearman ceiling of a mixture design (analysis/laws/mixing_ceiling.py): Moran's expectation of the sample
Spearman against a simulation with known spread and noise (and the wrong formulas it must tell apart), the range and
the seeds needed, and the ceiling read off a fitted law's k-fold check on runs with known seed noise."""
import math

import numpy as np
import pandas as pd
import pytest

from analysis.laws import mixing_ceiling as mc
from analysis.laws.mixing import LOSS_PREFIX, W_PREFIX, MixingConfig, fit

SIMS = 20000


def simulated_mean(spread, noise, n, law=0.0, seed=0):
    """Mean Spearman of (truth + noise) against (truth + law error) over SIMS designs, normal truth: the reference."""
    rng = np.random.default_rng(seed)
    t = rng.standard_normal((SIMS, n)) * spread
    m = t + noise * rng.standard_normal((SIMS, n))
    p = t + law * rng.standard_normal((SIMS, n))
    return float(mc._spearman_rows(m, p).mean())


CASES = [(1.0, 0.5, 17, 0.0), (1.0, 0.3, 8, 0.0), (0.02, 0.01, 40, 0.0), (1.0, 0.4, 17, 0.3), (1.0, 1.0, 12, 0.0)]


@pytest.mark.parametrize("spread,noise,n,law", CASES)
def test_expected_spearman_matches_a_simulation_with_known_spread_and_noise(spread, noise, n, law):
    sim = simulated_mean(spread, noise, n, law)
    r = mc.correlation(spread ** 2, noise ** 2, law ** 2)
    got = mc.expected_spearman(r, n)
    assert got == pytest.approx(sim, abs=0.004)                 # the simulation's standard error is <= 0.0015
    c = mc.ceiling(spread, noise, n, law_sd=law)
    assert c.expected == got and c.lo < sim < c.hi
    # the wrong formulas this test must reject: the large-n limit, Pearson's r, and the reliability R itself
    # (no square root) are each further from the simulation than the tolerance, in every case but the noisiest
    # (spread = noise, where the large-n limit and r happen to come close), so the test fails on any of them
    wrong = {"large n": 6 / math.pi * math.asin(r / 2), "pearson": r,
             "reliability": mc.expected_spearman(spread ** 2 / (spread ** 2 + noise ** 2), n) if law == 0 else -1}
    if noise < spread:
        assert all(abs(v - sim) > 0.012 for v in wrong.values()), wrong


def test_the_range_holds_its_level_of_simulated_designs():
    c = mc.ceiling(1.0, 0.5, 17, level=0.9)
    rng = np.random.default_rng(7)
    t = rng.standard_normal((SIMS, 17))
    rho = mc._spearman_rows(t + 0.5 * rng.standard_normal((SIMS, 17)), t)
    inside = np.mean((rho >= c.lo) & (rho <= c.hi))
    assert inside == pytest.approx(0.9, abs=0.015)
    assert c.p_target == pytest.approx(np.mean(rho >= 0.9), abs=0.02)
    assert c.reliability == pytest.approx(0.8) and c.r == pytest.approx(math.sqrt(0.8))


def test_seeds_for_the_target_are_the_fewest_that_reach_it():
    k = mc.seeds_for(1.0, 0.8, 17, target=0.9)
    assert k is not None and k > 1
    at = [mc.expected_spearman(mc.correlation(1.0, 0.64 / j), 17) for j in (k - 1, k)]
    assert at[0] < 0.9 <= at[1]
    assert mc.seeds_for(1.0, 0.8, 17, law_sd=0.5) is None         # the law's own noise caps it below 0.9
    c = mc.ceiling(1.0, 0.8 / math.sqrt(2), 17, seeds=2)
    assert c.seed_noise == pytest.approx(0.8) and c.seeds_for_target == k


def test_bad_input_names_the_fix():
    with pytest.raises(ValueError, match="at least 3"):
        mc.expected_spearman(0.5, 2)
    with pytest.raises(ValueError, match="seed replicates"):
        mc.ceiling(1.0, float("nan"), 10)
    with pytest.raises(ValueError, match=">= 0"):
        mc.correlation(-1.0, 1.0)


# ------------------------------------------------------------------------------------------ from a fitted law
DOMS = ["a", "b", "c"]
T = np.array([[-1.2, -0.1, 0.05], [-0.2, -1.5, -0.1], [0.0, -0.2, -0.8]])
C0 = np.array([2.0, 2.5, 1.8])


def ye_runs(n_mix, concentration, noise, seeds=(0, 1), seed=0):
    """Runs of a known Ye law (3 domains), each mixture at every seed with independent additive noise of sd `noise`
    on every domain's loss; the objective (uniform average) then has noise sd noise / sqrt(3)."""
    rng = np.random.default_rng(seed)
    W = np.vstack([rng.dirichlet(np.full(3, concentration), n_mix), np.eye(3)])
    rows = []
    for i, w in enumerate(W):
        L = C0 + np.exp(T @ w)
        for s in seeds:
            y = L + noise * rng.standard_normal(3)
            rows.append({"run_id": f"m{i}-s{s}", "seed": s, **{W_PREFIX + d: w[j] for j, d in enumerate(DOMS)},
                         **{LOSS_PREFIX + d: y[j] for j, d in enumerate(DOMS)}})
    return pd.DataFrame(rows)


def truth(W):
    return (C0[None] + np.exp(np.atleast_2d(W) @ T.T)).mean(1)


FAST = MixingConfig(n_bootstrap=100, recommend_resamples=10)


def test_from_heldout_measures_the_noise_and_spread_and_blames_the_design():
    noise = 0.03
    runs = ye_runs(30, 2.0, noise)
    law = fit(runs, "uniform", law="ye", config=FAST)
    c = mc.from_heldout(law)
    run_noise = noise / math.sqrt(3)
    assert c.noise_dof == 33 and c.seeds == 2
    assert c.seed_noise == pytest.approx(run_noise, rel=0.3)         # chi2 on 33 dof: +-20% at 90%
    W = runs[[W_PREFIX + d for d in DOMS]].to_numpy()[::2]
    true_spread = np.std(truth(W[:30]), ddof=1)
    assert c.spread_sd == pytest.approx(true_spread, rel=0.15)
    rho = float(law.cv.set_index("family").loc["ye", "spearman"])
    assert c.lo <= rho <= c.hi                                       # the right law: within its design's ceiling
    assert "within what an exact law reaches" in mc.verdict(rho, c)
    assert "misranks" in mc.verdict(c.lo - 0.1, c)
    assert "unknown" in mc.verdict(rho, mc.from_heldout(fit(runs[runs.seed == 0], "uniform", law="ye", config=FAST)))


def test_a_wider_design_has_a_higher_predicted_ceiling():
    law = fit(ye_runs(30, 2.0, 0.05), "uniform", law="ye", config=FAST)
    rng = np.random.default_rng(3)
    narrow, wide = rng.dirichlet(np.full(3, 20.0), 24), rng.dirichlet(np.full(3, 1.0), 24)
    c_n, c_w = mc.for_design(law, narrow), mc.for_design(law, wide)
    assert c_w.expected > c_n.expected + 0.1
    for W, c in ((narrow, c_n), (wide, c_w)):
        assert c.spread_sd == pytest.approx(np.std(truth(W), ddof=1), rel=0.15)    # the predicted spread is the true one
        assert c.n == 24 and c.seeds == 1
    assert mc.for_design(law, wide, seeds=4).expected > c_w.expected


def test_the_report_states_the_ceiling_beside_the_measured_spearman():
    from analysis.mixing_report import blocks
    runs = ye_runs(20, 2.0, 0.03)
    out = blocks(runs, FAST, figures=True)
    paras = [b[1] for b in out if b[0] == "para"]
    ceiling = [p for p in paras if p.startswith("**Spearman ceiling.**")]
    assert len(ceiling) == 1 and "an exact law expects" in ceiling[0] and "reliability" in ceiling[0]
    assert "mixture_ceiling" in [b[1] for b in out if b[0] == "figure"]
    one_seed = [b[1] for b in blocks(runs[runs.seed == 0], FAST, figures=False) if b[0] == "para"]
    assert any(p.startswith("**Spearman ceiling.** The Spearman ceiling is unknown") for p in one_seed)


def test_a_few_outlying_mixtures_do_not_lift_the_ceiling_on_the_designs_own_spacing():
    truth = np.r_[np.linspace(0.0, 0.1, 16), 3.0, 4.0]        # the variance is the two outliers'; the bulk is tight
    c = mc.ceiling(np.std(truth, ddof=1), 0.05, 18, truth=truth)
    assert c.conditional == pytest.approx(mc.simulate(truth, 0.05, seed=5).mean(), abs=0.01)
    assert c.conditional < c.expected - 0.1 and c.range == (c.cond_lo, c.cond_hi)
    assert "within" in mc.verdict(c.cond_lo + 0.01, c) and "misranks" in mc.verdict(c.cond_lo - 0.01, c)
    few = mc.ceiling(np.std(truth, ddof=1), 0.05, 18, truth=truth, noise_dof=3)
    assert few.lo_noisy < few.cond_lo - 0.05                      # 3 dof allow a noise 2.7x the estimate
    assert "would tell" in mc.verdict(few.cond_lo - 0.02, few)
    assert "misranks" in mc.verdict(few.lo_noisy - 0.02, few)
