"""analysis/diagnose.py: which recorded run properties a law's residuals track, on synthetic sweeps whose cause
is known (a step-dependent or a tokens-per-parameter penalty planted on analysis/synthetic.py's runs), and that
nothing is named when nothing was planted; and how the verdict's residual fix uses the diagnosis."""
import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis import diagnose, noise, verdict
from analysis.laws import approach3
from analysis.laws.common import FitConfig
from analysis.synthetic import FIXTURE_LAW, isoflop_table

CFG = FitConfig(n_col="params_nonembedding", c_col="flops", n_bootstrap=0)
BUDGETS = np.geomspace(1e15, 3e16, 5)
NOISE = 0.004


def sweep(seed: int = 0, steps_k: float = 0.0, tpp_k: float = 0.0, strength: float = 0.25,
          batches=(2 ** 16, 2 ** 17, 2 ** 18, 2 ** 19)) -> pd.DataFrame:
    """A 5-budget, 6-size isoFLOP sweep with 2 seeds at the smallest budget; each run's batch drawn from 4 sizes
    (so steps are not tokens in disguise), an lr, a corpus (epochs) and a depth. Planted: loss x exp(strength *
    log(K / x)) for runs with x = steps < steps_k, or x = tokens per parameter < tpp_k."""
    rng = np.random.default_rng(seed)
    r = isoflop_table(FIXTURE_LAW, BUDGETS, sizes_per_budget=6, span=12.0, noise=NOISE, seed=seed)
    r = pd.concat([r, isoflop_table(FIXTURE_LAW, BUDGETS[:1], sizes_per_budget=6, span=12.0, noise=NOISE,
                                    seed=seed + 100).assign(seed=1)], ignore_index=True)
    r["run_id"] = [f"r{i:03d}" for i in range(len(r))]
    batch = rng.choice(batches, len(BUDGETS) * 6)
    r["batch_tokens"] = np.concatenate([batch, batch[:6]])      # a replicate keeps its shape's batch
    r["steps"] = np.round(r["tokens"] / r["batch_tokens"])
    r["lr"] = 3e-3
    r["corpus_tokens_web"], r["w_web"] = 2e9, 1.0
    r["n_layers"] = np.round(np.log2(r["params_nonembedding"])).astype(int)
    for col, k in (("steps", steps_k), ("tpp", tpp_k)):
        if k:
            x = r["steps"] if col == "steps" else r["tokens"] / r["params_nonembedding"]
            r["loss"] *= np.exp(strength * np.log(k / x).clip(lower=0))
    return r


def fit(runs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return approach3.fit(runs, CFG, n_starts=2)


def run_diagnosis(runs, refit=True):
    law = fit(runs)
    nz = noise.estimate(runs)
    return diagnose.diagnose(runs, law.residuals, nz.sd if nz.measured else NOISE, CFG.n_col,
                             refit=fit if refit else None)


def test_properties_from_result_columns():
    r = sweep()
    p = diagnose.properties(r, CFG.n_col)
    assert {"steps", "tokens_per_param", "epochs", "lr", "depth", "off_optimum"} <= set(p.columns)
    np.testing.assert_allclose(p["tokens_per_param"], r["tokens"] / r["params_nonembedding"])
    np.testing.assert_allclose(p["epochs"], r["tokens"] / 2e9)
    assert "head_share" not in p          # no params_head column: not invented


def test_planted_step_penalty_is_named_with_its_threshold():
    d = run_diagnosis(sweep(steps_k=300))
    assert d.cause == "steps", (d.candidates, d.note, d.table[["key", "p", "p_abs"]])
    k, side = d.split("steps")
    assert side == "below" and 150 <= k <= 600, k
    r = d.refits["steps"]
    assert r.mean_left > 0 and r.share_above >= 0.8          # the left-out short runs sit above the refitted law
    assert "train.batch_tokens" in d.fix() and "optimizer steps" in d.finding()


def test_planted_tokens_per_param_penalty_is_named_not_steps():
    d = run_diagnosis(sweep(tpp_k=8))
    assert d.cause == "tokens_per_param", (d.candidates, d.note)
    k, side = d.split("tokens_per_param")
    assert side == "below" and 4 <= k <= 20, k
    assert "grid.shapes.tokens_per_param" in d.fix()
    assert d.one_batch is None and "rule out too few optimizer steps" not in d.fix()   # batches differ: separable


def test_one_batch_for_every_run_asks_for_the_rerun_that_separates_steps():
    """With one batch, a planted tokens-per-parameter penalty is still named, but its fix first asks for the
    controlled rerun at a quarter of the batch (a size-growing step penalty would look the same); a steps cause's
    fix needs no such rerun."""
    d = run_diagnosis(sweep(tpp_k=8, batches=(2 ** 17,)))
    assert d.cause == "tokens_per_param" and d.one_batch == 2 ** 17, (d.candidates, d.note)
    assert "grid.shapes.tokens_per_param" in d.fix() and "131,072 tokens" in d.fix()
    assert "a quarter of train.batch_tokens" in d.fix()
    d = run_diagnosis(sweep(steps_k=300, batches=(2 ** 17,)))
    assert d.one_batch == 2 ** 17 and "a quarter of train.batch_tokens" not in d.fix()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_planted_cause_names_nothing(seed):
    d = run_diagnosis(sweep(seed=seed))
    assert not d.named and d.fix() == ""
    assert d.note


def test_rank_tests_hold_their_level_on_pure_noise():
    """Residuals that are noise (no law, no fit): the Bonferroni-corrected tests name a candidate in at most a few
    of 40 draws (family-wise level 5%: about 2 expected)."""
    r = sweep()
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(40):
        res = pd.DataFrame({"run_id": r["run_id"], "residual": NOISE * rng.standard_normal(len(r))})
        hits += bool(diagnose.diagnose(r, res, NOISE, CFG.n_col).candidates)
    assert hits <= 5


def test_collinear_properties_are_named_together():
    """One batch size for every run: steps = tokens / batch, and epochs = tokens / corpus, rank alike."""
    d = run_diagnosis(sweep(steps_k=300, batches=(2 ** 18,)))
    assert d.named and {d.cause, *d.together} >= {"steps", "epochs"}, (d.cause, d.together, d.candidates)
    assert "cannot separate" in d.finding()


def test_too_few_runs_diagnose_nothing():
    r = sweep().head(6)
    d = diagnose.diagnose(r, pd.DataFrame({"run_id": r["run_id"], "residual": 0.1}), NOISE, CFG.n_col)
    assert not d.named and "too few" in d.note


def test_leave_one_budget_out_predicts_each_budget():
    r = sweep()
    lobo = diagnose.leave_one_budget_out(r, CFG.n_col, fit)
    assert set(lobo["run_id"]) == set(r["run_id"]) and lobo["budget"].nunique() == len(BUDGETS)
    assert np.sqrt(np.mean(lobo["lobo"] ** 2)) < 0.05        # a law that holds predicts held-out budgets


def _failing_verdict() -> verdict.Verdict:
    check = verdict.Check("residuals", verdict.FAIL, "residual RMS 6% of the loss is 18x the noise",
                          verdict.RESIDUAL_FIX, "approach 3")
    return verdict.Verdict(verdict.UNDETERMINED, [check, verdict.Check("coverage", verdict.OK, "fine")])


def test_verdict_fix_names_the_cause_only_when_diagnosed():
    named = run_diagnosis(sweep(steps_k=300))
    v = verdict.explain_residuals(_failing_verdict(), named)
    c = v.fired("residuals")[0]
    assert c.fix == named.fix() and "Diagnosis:" in c.message and v.diagnosis is named
    assert v.level == verdict.UNDETERMINED and len(v.checks) == 2
    unnamed = run_diagnosis(sweep(seed=1))
    c = verdict.explain_residuals(_failing_verdict(), unnamed).fired("residuals")[0]
    assert c.fix == verdict.RESIDUAL_FIX and "Diagnosis" not in c.message
    assert dataclasses.asdict(c)                      # still a plain Check


def test_report_names_the_cause_in_its_checks_and_section():
    """analysis.report on runs with a planted step penalty: the failed residual check's fix is the diagnosis's, and
    the residual section (tables, figure) follows the summary."""
    from analysis import diagnose_report, report, results
    from analysis.report_blocks import Figure, Heading
    r = sweep(steps_k=300).assign(family="dense", sweep="synthetic")
    ctx = report.build_context(results.Results(runs=r, curves=pd.DataFrame()),
                               dataclasses.replace(CFG, n_bootstrap=20))
    failed = [c for c in ctx.verdict.failures if c.name == "residuals"]
    assert failed and failed[0].fix == ctx.verdict.diagnosis.fix() and "train.batch_tokens" in failed[0].fix
    blocks = diagnose_report.report_section(ctx)
    assert isinstance(blocks[0], Heading) and any(isinstance(b, Figure) for b in blocks)
    i = report.SECTIONS.index(report.section_summary)
    assert report.SECTIONS[i + 1] is diagnose_report.report_section
