"""Mixing laws across sizes (issue 13): the fixed-shape grid crosses depths and token counts; a size law's
held-out check covers every size; the optimum's path over N and D recovers the known optimum's move; the
report's confirmation says plainly whether the recommendation beats uniform and natural beyond the seed noise."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis import mixing_report as mr
from analysis.laws.common import FitError
from analysis.laws.mixing import (
    MixingConfig,
    fit,
    heldout_by_size,
    heldout_summary,
    joint_truth,
    synthetic_joint_table,
)
from sweeps import grids
from sweeps.schema import GRID, check

SIZES = [(2e3, 4e4), (2e3, 1.6e5), (8e3, 4e4), (8e3, 1.6e5)]


@pytest.fixture(scope="module")
def joint_case():
    table, P = synthetic_joint_table(12, 3, SIZES, noise=0.002, seed=2, kind="joint")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        law = fit(table, "uniform", law="joint", config=MixingConfig(n_bootstrap=4, folds=3, recommend_resamples=4))
    return table, P, law


def test_fixed_shapes_cross_depths_and_tokens():
    rungs = grids.ladder_rungs({"rule": {"aspect": 8, "head_dim": 8, "ffn_multiple": 8}, "depths": [1, 2, 3],
                                "seq_len": 128, "vocab_size": 2048, "family": "dense"}, errs := [])
    assert not errs
    shapes = grids.fixed_shapes({"depth": [1, 3], "tokens": [1000, 4000.0, 9000]}, rungs, errs)
    assert not errs
    assert [(s.rung.depth, s.tokens) for s in shapes] == [(1, 1000), (1, 4000), (1, 9000), (3, 1000), (3, 4000),
                                                          (3, 9000)]
    assert [(s.rung.depth, s.tokens) for s in grids.fixed_shapes({"depth": 2, "tokens": 500}, rungs, [])] == [(2, 500)]
    grids.fixed_shapes({"depth": [2, 7], "tokens": 500}, rungs, errs)
    assert "[7] not in model.depths=[1, 2, 3]" in errs[0]
    # the schema takes a value or a list, and checks each element
    out: list[str] = []
    check({"shapes": {"depth": [1, 0], "tokens": [5, -1]}}, GRID, "grid", out)
    assert any("grid.shapes.depth[1]" in e for e in out) and any("grid.shapes.tokens[1]" in e for e in out)
    out = []
    check({"shapes": {"depth": 2, "tokens": 1e5}}, GRID, "grid", out)
    assert out == []


def test_heldout_check_covers_every_size(joint_case):
    table, P, law = joint_case
    pred = heldout_by_size(law)
    non_pure = table[table[[c for c in table if c.startswith("w_")]].max(axis=1) < 1]
    assert sorted(pred["run_id"]) == sorted(non_pure["run_id"])        # each interior run held out exactly once
    summ = heldout_summary(pred)
    assert len(summ) == len(SIZES) and (summ["mixtures"] == 9).all()
    assert summ["mean_rel_error"].max() < 0.01                        # the law's own form: within 1% everywhere
    one_size = table[np.isclose(table["tokens"], 4e4) & np.isclose(table["params_nonembedding"], 2e3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ye = fit(one_size, "uniform", law="ye", config=MixingConfig(n_bootstrap=0, folds=3))
    with pytest.raises(FitError, match="describes one size"):
        heldout_by_size(ye)


def test_optimum_path_follows_the_true_optimum(joint_case):
    """Without a trust region the size law's optimum is within 0.5% of the true optimum on the whole simplex at each
    D (the law is the truth's family, so its extrapolation is safe); with the default trust region, within 0.5% of
    the true optimum over the sampled mixtures' convex hull."""
    from analysis.laws.mixing import hull_distance
    table, P, law = joint_case
    grid = np.array([[a, b, max(1 - a - b, 0.0)] for a in np.linspace(0, 1, 41) for b in np.linspace(0, 1, 41)
                     if a + b <= 1 + 1e-9])
    sampled = law.sampled_mixtures()
    in_hull = np.array([hull_distance(w, sampled) < 1e-9 for w in grid])
    for trust, region in ((None, np.ones(len(grid), bool)), ("hull", in_hull)):
        path = mr.optimum_table(law, [(8e3, 4e4), (8e3, 6.4e5)], trust=trust)
        W = np.array([[path[f"w_{d}"].iloc[i] for d in law.domains] for i in range(2)])
        np.testing.assert_allclose(W.sum(1), 1, atol=1e-6)
        for i, (N, D) in enumerate([(8e3, 4e4), (8e3, 6.4e5)]):
            truth = joint_truth(P, W[i], N, D).mean()
            best = joint_truth(P, grid[region], N, D).mean(1).min()
            assert truth <= best * 1.005, (trust, N, D)               # within 0.5% of the true optimum there
            if trust == "hull":
                assert hull_distance(W[i], sampled) < 1e-6
        if trust is None:                                              # (in the hull both sit on its edge)
            assert np.abs(W[1] - W[0]).max() > 0.05                    # and the optimum moved with D
    text = mr.moves_text(path, law.domains)
    assert text.startswith("How the optimum moves: from D = 4e+04 to 6.4e+05") and ("beyond" in text or "within" in text)


def test_verdict_is_plain():
    rng = np.random.default_rng(0)
    groups = {"recommended": 5.90 + 0.01 * rng.standard_normal(3), "uniform": 6.00 + 0.01 * rng.standard_normal(3),
              "natural": 6.05 + 0.01 * rng.standard_normal(3)}
    assert mr.verdict_text(mr.verdicts(pd.DataFrame(), groups)) == \
        "the recommended mixture beats uniform and natural by more than the seed noise."
    groups["recommended"] = groups["uniform"] + 0.001
    assert mr.verdict_text(mr.verdicts(pd.DataFrame(), groups)) == \
        "the recommended mixture beats natural by more than the seed noise, but NOT uniform."
    one = {k: v[:1] for k, v in groups.items()}
    assert "no verdict" in mr.verdict_text(mr.verdicts(pd.DataFrame(), one))


def test_report_blocks_show_sizes_and_a_pending_confirmation(joint_case, tmp_path):
    table, P, law = joint_case
    sweep = tmp_path / "mix"
    sweep.mkdir()
    (sweep / "confirmation_mixtures.json").write_text(json.dumps({
        "mixtures": {"recommended": {"d00": 0.2, "d01": 0.3, "d02": 0.5}}, "law": "joint", "fitted_runs": len(table),
        "N": 8e3, "D": 4.8e5, "confirm_dir": "mix_confirm"}))
    runs = table.assign(run_id=table["run_id"])
    cfg = MixingConfig(n_bootstrap=4, folds=3, recommend_resamples=4)
    out = mr.blocks(runs, cfg, figures=False, sweep_dir=sweep)
    heads = [b[1] for b in out if b[0] == "heading"]
    assert heads == ["Data mixture", "Data mixture across sizes", "Data mixture: confirmation at a larger size"]
    tables = [b for b in out if b[0] == "table"]
    per_size = next(t[1] for t in tables if "held-out mixtures" in t[1].columns)
    assert len(per_size) == len(SIZES)
    path = next(t[1] for t in tables if "predicted objective" in t[1].columns)
    assert len(path) == len(SIZES) + 1 and path["D"].iloc[-1] == "4.8e+05"   # the confirmation's size added
    assert "Not run yet" in out[-1][1] and "fitted on 48 runs" in out[-1][1]
