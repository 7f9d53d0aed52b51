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


def test_summary_leads_with_a_caution_when_the_law_is_unconstrained(tmp_path):
    """Losses that only fit with a steep N exponent (alpha ~ 3: the runs span 8x in N) put the
    implausible-exponent note at the top of the summary; the fixture's report has none."""
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
    summary = md.read_text().split("## Summary")[1].split("## ")[0]
    assert "**Caution:** approach 3: alpha = 3.04 lies outside 0.05-2" in summary and np.isfinite(ctx.a3.alpha)


def test_the_fixture_report_has_no_caution(written):
    assert "**Caution:**" not in (written / "report.md").read_text()
