"""The MoE law: recovers known parameters, holds what a table cannot identify, and its recommendations
(compute-optimal allocation, dense-equivalent size, compute multiplier) agree with their definitions."""
import numpy as np
import pandas as pd
import pytest

from analysis.laws.common import FitConfig, FitError
from analysis.laws.moe import PARAMS, default_config, fit, synthetic_runs

KNOWN = dict(c=1.8, a=150.0, g=250.0, gamma=0.6, delta=0.12, alpha=0.33, b=900.0, beta=0.35)
NO_BOOT = FitConfig(n_col="params_active_nonembedding", n_bootstrap=0)


@pytest.fixture(scope="module")
def law():
    return fit(synthetic_runs(KNOWN, noise=0.003, seed=1), NO_BOOT)


def test_recovers_known_parameters(law):
    assert law.converged and law.held == ()
    for p, tol in dict(c=0.03, alpha=0.05, beta=0.05, delta=0.15, gamma=0.3).items():
        assert getattr(law, p) == pytest.approx(KNOWN[p], rel=tol), (p, law.params)
    # the coefficients trade off with the exponents; what must be right is the law itself
    table = synthetic_runs(KNOWN, noise=0.0)
    truth = table["loss"].to_numpy()
    from analysis.laws.moe import experts_and_granularity
    E, G = experts_and_granularity(table)
    pred = law.predict(table["params_active_nonembedding"], table["tokens"], E, G)
    assert np.max(np.abs(pred / truth - 1)) < 0.004


def test_noiseless_fit_is_exact():
    law = fit(synthetic_runs(KNOWN, noise=0.0), NO_BOOT)
    for p in PARAMS:
        assert getattr(law, p) == pytest.approx(KNOWN[p], rel=1e-3), (p, law.params)


def test_recommendations_match_their_definitions(law):
    C, E, G = 1e19, 16, 2
    r = law.recommend(C, E, G)
    assert r["N_opt"] * r["D_opt"] * law.k == pytest.approx(C, rel=1e-9)
    # N_opt minimises the predicted loss along the isoFLOP line C = k N D
    ns = r["N_opt"] * np.geomspace(0.5, 2, 201)
    losses = law.predict(ns, C / (law.k * ns), E, G)
    assert ns[np.argmin(losses)] == pytest.approx(r["N_opt"], rel=0.01)
    # dense-equivalent: the dense model of that size has the MoE's loss at the same D
    assert law.predict(r["dense_equivalent_N"], r["D_opt"]) == pytest.approx(r["loss"], rel=1e-9)
    assert r["dense_equivalent_N"] > r["N_opt"]                        # experts help (delta > 0, g > 0)
    # compute multiplier: a compute-optimal dense model needs that much more compute for the same loss
    assert law.loss_opt(C * r["compute_multiplier"]) == pytest.approx(r["loss"], rel=1e-6)
    assert r["compute_multiplier"] > 1
    dense = law.recommend(C)
    assert dense["dense_equivalent_N"] == pytest.approx(dense["N_opt"]) and dense["compute_multiplier"] == \
        pytest.approx(1, rel=1e-6)


def test_unidentifiable_parameters_are_held():
    table = synthetic_runs(KNOWN, granularities=(2,), noise=0.002)    # with dense rows: G in {1, 2}
    with pytest.warns(UserWarning, match="held gamma = 0.58"):
        law = fit(table, NO_BOOT)
    assert law.held == ("gamma",) and law.gamma == 0.58
    assert law.delta == pytest.approx(KNOWN["delta"], rel=0.3)
    moe_only = synthetic_runs(KNOWN, granularities=(2,), noise=0.002).query("family == 'moe'")
    with pytest.warns(UserWarning, match="held g = 0"):
        law = fit(moe_only, NO_BOOT)
    assert law.held == ("g", "gamma") and law.g == 0.0
    dense_only = synthetic_runs(KNOWN, experts=(), noise=0.002)
    with pytest.warns(UserWarning, match="held"):
        law = fit(dense_only, NO_BOOT)
    assert set(law.held) == {"g", "gamma", "delta"}
    assert law.alpha == pytest.approx(KNOWN["alpha"], rel=0.1)


def test_bootstrap_intervals_cover_the_truth():
    cfg = FitConfig(n_col="params_active_nonembedding", n_bootstrap=40, processes=1, seed=3)
    law = fit(synthetic_runs(KNOWN, noise=0.003, seed=2), cfg)
    assert law.samples.shape == (40, 8)
    lo, hi = law.ci("alpha")
    assert lo < law.alpha < hi and hi - lo < 0.1
    r = law.recommend(1e19, 8, 1)
    lo, hi = r["tokens_per_param_ci"]
    assert lo <= r["tokens_per_param"] <= hi


def test_bad_tables_are_refused():
    with pytest.raises(FitError, match="n_experts"):
        fit(synthetic_runs(KNOWN).drop(columns=["n_experts"]), NO_BOOT)
    with pytest.raises(FitError, match="at least"):
        fit(synthetic_runs(KNOWN).head(5), NO_BOOT)
    assert default_config().n_col == "params_active_nonembedding"
    nan_row = synthetic_runs(KNOWN).assign(loss=lambda t: t["loss"].where(t.index > 0, np.nan))
    assert fit(nan_row, NO_BOOT).n_runs == len(nan_row) - 1
    assert isinstance(nan_row, pd.DataFrame)


def test_report_section_compares_dense_and_moe_at_equal_compute(tmp_path):
    from analysis.laws.moe_report import observed_best, section
    runs = synthetic_runs(KNOWN, noise=0.003, seed=4)
    cfg = FitConfig(n_col="params_active_nonembedding", n_bootstrap=20, processes=1)
    md = section(runs, config=cfg, fig_dir=tmp_path / "figures")
    assert md.startswith("## Mixture of experts against dense at equal compute")
    assert "| dense |" in md and "| E32 G4 |" in md and "compute multiplier" in md
    assert (tmp_path / "figures" / "moe_vs_dense.png").stat().st_size > 10_000
    # observed: at every budget the best MoE beats dense under this law (g, delta > 0)
    obs = observed_best(runs, cfg)
    for _, at_c in obs.groupby("C"):
        assert at_c.iloc[0]["config"] != "dense"
    assert "No MoE runs" in section(runs.query("family == 'dense'"), config=cfg)


def test_registered_report_section_renders_in_the_report(tmp_path):
    from analysis import report
    from analysis.laws import moe_report
    from analysis.results import Results
    assert moe_report.report_section in report.SECTIONS
    runs = synthetic_runs(KNOWN, noise=0.003, seed=5)
    ctx = report.Context(Results(runs, pd.DataFrame()), FitConfig(n_bootstrap=0))   # N convention: non-embedding
    md, page = report.render(ctx, tmp_path, "MoE sweep")
    text = md.read_text()
    assert "## Mixture of experts against dense at equal compute" in text and "compute multiplier" in text
    assert "params_active_nonembedding" in text                                    # the section counts active N
    assert (tmp_path / "figures" / "moe_vs_dense.png").exists() and "the MoE law (lines)" in page.read_text()
    dense = report.Context(Results(runs.query("family == 'dense'"), pd.DataFrame()), FitConfig(n_bootstrap=0))
    assert moe_report.report_section(dense) is None


def test_cli_report_includes_the_moe_section(tmp_path):
    """`python -m analysis.report` (run as __main__) keeps plugged-in sections: a second copy of the
    module once made their blocks fail its isinstance checks, dropping the MoE section silently."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    runs = synthetic_runs(KNOWN, noise=0.003, seed=5)
    for i, row in enumerate(runs.to_dict("records")):
        d = tmp_path / "sweep" / f"run{i:03d}"
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({"run_id": f"run{i:03d}", **row}, default=float))
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "analysis.report", str(tmp_path / "sweep"), "--bootstrap", "0",
                          "--out", str(tmp_path / "rep")], cwd=repo, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "## Mixture of experts against dense at equal compute" in (tmp_path / "rep" / "report.md").read_text()


def test_chinchilla_sections_fit_only_the_dense_runs_of_an_moe_sweep():
    from analysis import report
    from analysis.results import Results
    runs = synthetic_runs(KNOWN, noise=0.003, seed=5)
    ctx = report.build_context(Results(runs, pd.DataFrame()),
                               FitConfig(n_col="params_active_nonembedding", n_bootstrap=0))
    n_dense = int((runs["family"] == "dense").sum())
    assert 0 < n_dense < len(runs)
    assert ctx.a3.n_runs == n_dense and len(ctx.runs) == n_dense
    assert moe_report_section_sees_all(ctx, runs)


def moe_report_section_sees_all(ctx, runs) -> bool:
    from analysis.laws import moe_report
    blocks = moe_report.report_section(ctx)
    return blocks is not None and any(f"({len(runs)} runs)" in getattr(b, "caption", "") for b in blocks)


def test_an_unconstrained_moe_law_is_flagged_once_before_its_recommendation():
    """A table that only fits with alpha ~ 3 (synthetic runs from such a law) gets the implausible-exponent
    note, and the report section leads its recommendation with it (not repeated as a plain warning)."""
    from analysis.laws.moe_report import section
    steep = {**KNOWN, "alpha": 3.0, "a": 1e14, "g": 1e14}
    runs = synthetic_runs(steep, sizes=(1e4, 3e4, 8e4), noise=0.002, seed=2)
    law = fit(runs, NO_BOOT)
    notes = [w for w in law.warnings if "lies outside 0.05-2" in w]
    assert law.alpha > 2 and len(notes) == 1 and notes[0].startswith("MoE law: alpha = ")
    md = section(runs, law=law, config=NO_BOOT)
    assert md.count("lies outside 0.05-2") == 1
    assert md.index("**Caution:** MoE law: alpha") < md.index("the law prefers")
    assert not [w for w in fit(synthetic_runs(KNOWN, noise=0.003, seed=1), NO_BOOT).warnings if "lies outside" in w]


def test_a_report_fits_the_moe_law_once(tmp_path, monkeypatch):
    """build_context fits the MoE law (the verdict judges it) and the MoE section shows that same law; a fit that
    failed there is reported by the section with its reason, not attempted again."""
    from analysis import report
    from analysis.laws import moe, moe_report
    from analysis.results import Results
    calls = []

    def counted(*a, **kw):
        calls.append(1)
        return fit(*a, **kw)

    monkeypatch.setattr(moe, "fit", counted)
    monkeypatch.setattr(moe_report, "fit", counted)
    runs = synthetic_runs(KNOWN, noise=0.003, seed=5)
    ctx = report.build_context(Results(runs, pd.DataFrame()), FitConfig(n_bootstrap=0))
    assert len(calls) == 1 and ctx.fits["moe"].config.n_col == "params_active_nonembedding"
    report.render(ctx, tmp_path, "MoE sweep")
    assert len(calls) == 1
    assert f"MoE law parameters ({ctx.fits['moe'].n_runs} runs)" in (tmp_path / "report.md").read_text()

    failed = report.Context(Results(runs, pd.DataFrame()), FitConfig(n_bootstrap=0),
                            failures={"moe": "MoE law: 3 usable run(s)"})
    text = [b.text for b in moe_report.report_section(failed) if hasattr(b, "text")]
    assert "The MoE law was not fitted: MoE law: 3 usable run(s)" in text and len(calls) == 1
