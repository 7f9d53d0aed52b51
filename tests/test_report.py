"""analysis.report on the fixture sweep: files written, figures embedded, sections pluggable and skippable."""
import os
import re
import warnings
from pathlib import Path

import pytest

from analysis import report, report_blocks, results
from analysis.laws.common import FitConfig

FIXTURE = Path(__file__).parent / "fixtures" / "sweep_small"
os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")
FIGURES = {"isoflop", "optimal_vs_compute", "tokens_per_param", "loss_surface", "residuals", "domain_losses"}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.main([str(FIXTURE), "--out", str(out), "--bootstrap", "60", "--budgets", "1e16", "1e18", "1e22"])
    return out


def test_report_files_and_figures(written):
    md, page = (written / "report.md").read_text(), (written / "report.html").read_text()
    assert {p.stem for p in (written / "figures").glob("*.png")} == FIGURES
    assert len(re.findall(r'src="data:image/png;base64,', page)) == len(FIGURES)      # self-contained
    assert "<img" in page and 'src="figures/' not in page
    for heading in ("Summary", "Sweep and conventions", "Fitted laws", "IsoFLOP profiles", "Compute-optimal allocation",
                    "Loss surface", "Extrapolation check", "Recommendations", "Per-domain losses"):
        assert f"## {heading}" in md and f"<h2>{heading}" in page, heading
    assert "non-embedding parameters" in md and "6ND" in md                           # conventions stated
    assert "refused" in md                                                             # 1e22 is 1e6x past the sweep
    assert "Inference-aware optimum" in md and "Data-constrained" in md and "held out the largest budget" in md


def test_sections_are_pluggable_and_skip_when_columns_are_absent(tmp_path, monkeypatch):
    monkeypatch.setattr(report_blocks, "SECTIONS", list(report_blocks.SECTIONS))   # the registry
    calls = []

    def section_moe(ctx):
        calls.append(1)
        if "n_experts" not in ctx.runs or (ctx.runs["n_experts"] == 0).all():
            return None                                                 # dense sweep: skipped
        return [report.Heading("MoE")]

    def section_hello(ctx):
        return [report.Heading("Hello"), report.Para(f"{len(ctx.runs)} runs")]

    report.register(section_moe, after=report.section_fits)
    report.register(section_hello)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = results.load(FIXTURE)
        res.runs = res.runs.drop(columns=[c for c in res.runs if c.startswith("loss_")])   # no per-domain losses
        ctx = report.build_context(res, FitConfig(n_bootstrap=0))
        md, _ = report.render(ctx, tmp_path, "t")
    text = md.read_text()
    assert calls and "## MoE" not in text and "## Hello" in text and "35 runs" in text
    assert "## Per-domain losses" not in text
    assert text.index("## Fitted laws") < text.index("## IsoFLOP")


def test_report_on_too_small_a_sweep_says_why(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = results.load(FIXTURE)
        res.runs = res.runs.head(4)
        ctx = report.build_context(res, FitConfig(n_bootstrap=0))
        md, page = report.render(ctx, tmp_path, "tiny")
    text = md.read_text()
    assert "No loss surface could be fitted" in text and "at least 8" in text
    assert "approach 2 not fitted" in text


def summary_and_recommendations(md: str) -> tuple[str, str]:
    return md.split("## Summary")[1].split("## ")[0], md.split("## Recommendations")[1].split("\n## ")[0]


def test_an_unconstrained_law_is_not_determined_and_gets_no_recommendation(tmp_path):
    """Losses that only fit with a steep N exponent (alpha ~ 3: the runs span 8x in N): the verdict leads the
    summary, names the implausible exponent, says what to add to the sweep, and no advice follows anywhere."""
    import numpy as np

    from analysis.synthetic import KnownLaw, random_table
    steep = random_table(KnownLaw(E=2.0, A=4e9, B=400.0, alpha=3.0, beta=0.3), 40, n_range=(1e3, 8e3),
                         d_range=(1e6, 1e8), noise=0.002, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = results.load(FIXTURE)
        res.runs = steep.assign(sweep="steep", params_total=steep["params_nonembedding"] * 1.1)
        ctx = report.build_context(res, FitConfig(n_bootstrap=0))
        md, _ = report.render(ctx, tmp_path, "steep")
    text = md.read_text()
    summary, recs = summary_and_recommendations(text)
    assert summary.lstrip().startswith("**Verdict: not determined**") and np.isfinite(ctx.a3.alpha)
    assert "alpha = 3.04 lies outside 0.05-2" in summary and "To determine the law, add to the sweep" in summary
    assert "python sweep.py +grid=steep 'grid.shapes.budgets=[" in summary and "sweep.dry_run=true" in summary
    assert "No recommendation: the law is not determined" in recs
    for advice in ("should grow faster", "recommends about", "Inference-aware", "Data-constrained", "Going off"):
        assert advice not in text, advice


def test_the_fixture_report_is_weakly_determined_for_want_of_replicates(written):
    """The fixture law is pinned (5 budgets over 100x, 7 sizes each) but was run with one seed: the one caveat is
    the unmeasured noise, and the summary proposes the replicates that would measure it."""
    text = (written / "report.md").read_text()
    summary, recs = summary_and_recommendations(text)
    assert summary.lstrip().startswith("**Verdict: weakly determined** (0 failed, 1 caveat(s)")
    assert "**Caveat** (residuals, approach 3)" in summary and "'grid.seeds=[0,1]'" in summary
    assert recs.lstrip().startswith("**Weakly determined:**") and "**Caution:**" not in text


def test_the_direction_is_stated_only_where_its_interval_supports_it(tmp_path):
    """With seed replicates the verdict is 'determined'; the summary states that model size should grow faster
    only for the law whose a-interval lies above 0.5, and says it cannot tell for a = 0.5 exactly."""
    import numpy as np

    from analysis.synthetic import KnownLaw, isoflop_table
    said = {}
    for name, (alpha, beta) in {"size": (0.25, 0.5), "equal": (0.35, 0.35)}.items():
        runs = isoflop_table(KnownLaw(E=1.7, A=400.0, B=400.0, alpha=alpha, beta=beta), np.geomspace(1e17, 1e20, 5),
                             sizes_per_budget=7, noise=0.004, seed=3, replicates=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = results.load(FIXTURE)
            res.runs, res.curves = runs, res.curves.iloc[:0]
            ctx = report.build_context(res, FitConfig(n_bootstrap=60, processes=1))
            blocks = report.section_summary(ctx)
        said[name] = " ".join(b.text for b in blocks if isinstance(b, report.Para))
        assert ctx.verdict.level == "determined", ctx.verdict.table()
        lo, hi = ctx.a3.ci("a")
        assert ("should grow faster than" in said[name]) == (not lo <= 0.5 <= hi)
    assert "model size should grow faster than data" in said["size"]
    assert "cannot tell whether model size or data should grow faster" in said["equal"]


def test_the_fixture_report_has_no_caution(written):
    assert "**Caution:**" not in (written / "report.md").read_text()


def test_report_writes_its_laws_and_says_where_its_conventions_come_from(written):
    from analysis import lawfile
    laws = lawfile.load(written / "laws.json")                     # validated on load
    assert laws.surface is not None and laws.surface.samples.shape == (60, 5)
    assert laws.verdict["level"] == "weakly determined"                   # the report's verdict travels with it
    assert set(laws.power) == {"approach 1", "approach 2"} and laws.config.n_col == "params_nonembedding"
    assert "(FitConfig's default: no run's grid.json records the conventions" in (written / "report.md").read_text()


def test_an_explicit_convention_is_stated_as_an_override():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = results.load(FIXTURE)
    ctx = report.Context(res, res.fit_config(n_col="params_total", n_bootstrap=0))
    text = report.section_data(ctx)[1].text
    assert "N = total parameters (`params_total`)" in text
    assert "(override: n_col=params_total instead of the sweep's params_nonembedding (FitConfig's default" in text


def test_the_report_names_the_corpus_hash_and_flags_mixed_corpora():
    import pandas as pd

    from analysis.report import corpus_setting
    one = pd.DataFrame({"corpus": ["demo", "demo"], "corpus_sha256": ["0cd4" * 16, "0cd4" * 16]})
    assert corpus_setting(one) == f"Corpus: demo (corpus sha256 {'0cd4' * 16})."
    mixed = one.assign(corpus_sha256=["0cd4" * 16, "beef" * 16])
    assert "**mixed**" in corpus_setting(mixed) and "beef" in corpus_setting(mixed)
    assert "unknown" in corpus_setting(pd.DataFrame({"corpus": ["demo"]}))   # results from before the hash
