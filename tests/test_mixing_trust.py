"""The mixture recommender presents only what its evidence supports: the optimum stays in the region the law was
fitted on (the sampled mixtures' convex hull, or their per-domain ranges), the predicted gain over uniform and
natural comes with an interval that also holds the law's held-out error, and a gain that interval cannot tell from
zero gives "no recommendation"."""
import numpy as np
import pytest

from analysis.laws.mixing import MixingConfig, fit, hull_distance, synthetic_ye_table

CFG = MixingConfig(n_bootstrap=100, recommend_resamples=5)


def near_natural_table(seed=0, noise=0.002, n=28):
    """A Ye-law truth whose optimum is pure d0 (each domain's own data helps, d0 helps every domain most), sampled
    only near uniform (Dirichlet with every concentration 30), so d0 never exceeds ~0.45 in the runs."""
    K = 4
    t = np.full((K, K), -0.2)
    t[:, 0] = -1.5
    P = {"c": np.full(K, 2.0), "t": t, "domains": [f"d{i:02d}" for i in range(K)]}
    table, _ = synthetic_ye_table(n, K, noise=noise, seed=seed, params=P, concentration=30.0)
    table = table.iloc[:-K].reset_index(drop=True)                 # no pure mixtures: the samples are the region
    return table, P


def test_hull_distance():
    P = np.array([[0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]])
    assert hull_distance(np.array([1 / 3, 1 / 3, 1 / 3]), P) == pytest.approx(0, abs=1e-9)
    assert hull_distance(np.array([1.0, 0.0, 0.0]), P) == pytest.approx(1.0)     # to (0.5, 0.5, 0) or (0.5, 0, 0.5)


def test_the_optimum_stays_where_the_law_was_fitted():
    table, P = near_natural_table()
    law = fit(table, "uniform", law="ye", config=CFG)
    S = law.sampled_mixtures()
    free = law.recommend(trust=None)
    assert free.weights["d00"] > 0.9                                # the law's own optimum: far past the samples
    assert free.hull_distance > 0.5 and any("no trust region" in w for w in free.warnings)
    assert len(S) == 24                                             # <= HULL_MAX: the hull is searched
    hull = law.recommend()
    w = np.array(list(hull.weights.values()))
    assert hull.trust == "hull" and hull_distance(w, S) < 1e-6
    assert w[0] == pytest.approx(S[:, 0].max(), abs=0.02)           # as far toward d0 as the samples go
    box = law.recommend(trust="box")
    wb = np.array(list(box.weights.values()))
    assert np.all(wb >= S.min(0) - 1e-9) and np.all(wb <= S.max(0) + 1e-9)
    assert box.trust_range["d00"] == pytest.approx((S[:, 0].min(), S[:, 0].max()))
    with pytest.raises(ValueError, match="trust='convex'.*'hull'"):
        law.recommend(trust="convex")
    with pytest.raises(ValueError, match="inside the sampled region.*trust=None"):
        law.recommend(bounds={"d00": (0.9, 1.0)})                   # the samples never reach 0.9 of d0


def test_a_clear_gain_is_recommended_with_intervals():
    table, P = near_natural_table(seed=1)
    law = fit(table, "uniform", law="ye", config=CFG)
    rec = law.recommend()
    assert rec.supported and rec.verdict.startswith("recommended: ")
    assert np.isfinite(rec.gap_error) and rec.gap_error > 0
    for name in ("uniform",):
        b = rec.baselines[name]
        assert b["gain"] > 0 and b["gain_ci"][0] > 0
        assert b["gain_ci"][0] <= b["gain_boot_ci"][0] and b["gain_ci"][1] >= b["gain_boot_ci"][1]   # wider
        truth = lambda w: float((P["c"] + np.exp(P["t"] @ w)).mean())
        true_gain = truth(np.full(4, 0.25)) - truth(np.array(list(rec.weights.values())))
        assert b["gain_ci"][0] <= true_gain <= b["gain_ci"][1]


def test_a_gain_within_the_noise_gives_no_recommendation():
    """A truth where the mixture does not matter: whatever the law's optimum, its gain is noise."""
    K = 4
    P = {"c": np.full(K, 2.0), "t": np.zeros((K, K)), "domains": [f"d{i:02d}" for i in range(K)]}
    table, _ = synthetic_ye_table(30, K, noise=0.01, seed=3, params=P)
    law = fit(table, "uniform", law="ye", config=CFG)
    rec = law.recommend()
    assert not rec.supported
    assert rec.verdict.startswith("no recommendation: predicted gain not distinguishable from zero")
    assert any(b["gain_ci"][0] <= 0 for b in rec.baselines.values())
    nob = fit(table, "uniform", law="ye", config=MixingConfig(n_bootstrap=0)).recommend()
    assert not nob.supported and "no bootstrap" in nob.verdict


def test_holdout_split_scores_unseen_mixtures_and_refuses_too_many():
    from analysis.laws.common import FitError
    from analysis.laws.mixing import split_check
    table, P = near_natural_table(seed=2, n=40)
    law, per, summary = split_check(table, 6, "uniform", law="ye", config=MixingConfig(n_bootstrap=0))
    assert summary["mixtures"] == 6 and summary["fitted_mixtures"] == 30 and len(law.table) == 30
    assert summary["mean_rel_error"] < 0.01 and summary["spearman"] > 0.5
    held = per[[c for c in per if c.startswith("w_")]].to_numpy()
    fitted = law.table[[c for c in law.table if c.startswith("w_")]].to_numpy()
    assert np.abs(held[:, None] - fitted[None]).max(-1).min() > 1e-6     # no held-out mixture was fitted
    with pytest.raises(FitError, match="n_heldout=40.*hold out between 1 and 35"):
        split_check(table, 40, "uniform")


def test_many_samples_search_the_hull_of_the_best_rated_and_never_leave_the_whole_hull():
    """More than HULL_MAX sampled mixtures: the hull of the HULL_MAX the law predicts best (inside the hull of all,
    so no extrapolation), said in a warning; the optimum lies in the whole hull and is at least as good as the best
    sampled mixture by the law."""
    from analysis.laws.mixing import HULL_MAX
    table, P = near_natural_table(n=60)
    law = fit(table, "uniform", law="ye", config=MixingConfig(n_bootstrap=20, recommend_resamples=2))
    S = law.sampled_mixtures()
    assert len(S) > HULL_MAX
    rec = law.recommend()
    w = np.array(list(rec.weights.values()))
    assert rec.trust == "hull" and hull_distance(w, S) < 1e-6
    assert any(f"the {HULL_MAX} of the {len(S)} sampled mixtures the law predicts best" in m for m in rec.warnings)
    assert rec.predicted <= law.predict(S).min() + 1e-6


def test_an_optimum_predicted_past_every_measured_run_by_more_than_the_law_errs_is_flagged():
    table, P = near_natural_table()
    law = fit(table, "uniform", law="ye", config=CFG)
    best = float(law.objective.value(table).min())
    gap = law.gap_error()
    assert law._beyond_measured(best - 0.5 * gap, gap, None, None) == ""
    msg = law._beyond_measured(best - 2 * gap, gap, None, None)
    assert "beats the best measured run" in msg and f"{best:.4g}" in msg
    assert law._beyond_measured(best - 2 * gap, float("nan"), None, None) == ""     # no held-out error: no claim


def test_a_confirmation_of_an_unsupported_candidate_never_calls_it_the_recommendation():
    import pandas as pd

    from analysis.mixing_report import as_candidate, verdict_text, verdicts
    cmp = pd.DataFrame({"mixture": ["recommended", "uniform", "natural"], "measured": [3.6, 3.8, 3.5]})
    groups = {"recommended": np.array([3.5, 3.7]), "uniform": np.array([3.7, 3.9]), "natural": np.array([3.4, 3.6])}
    same, kept = as_candidate(cmp, groups, {"supported": True})
    assert list(same["mixture"]) == list(cmp["mixture"]) and kept is groups
    lines = verdicts(same, kept)
    assert lines[1].startswith("recommended vs uniform")
    assert verdict_text(lines).startswith("the recommended mixture does NOT beat uniform or natural")
    cand, renamed = as_candidate(cmp, groups, {"supported": False})
    assert list(cand["mixture"]) == ["candidate", "uniform", "natural"] and list(renamed) == list(cand["mixture"])
    lines = verdicts(cand, renamed)
    assert lines[1].startswith("candidate vs uniform") and not any("recommended vs" in x for x in lines)
    assert verdict_text(lines) == ("the law's candidate (not recommended) does NOT beat uniform or natural by more "
                                   "than the seed noise.")
