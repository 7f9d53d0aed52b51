"""The report's fits and isoFLOP sections: both approach-3 searches and their agreement, the vertex method,
the per-budget bracketing table, the other methods' exponents and the slices note."""
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt

from analysis import report, results
from analysis.laws.common import FitConfig

FIXTURE = Path(__file__).parent / "fixtures" / "sweep_small"
os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")


def text(blocks) -> str:
    return "\n".join(getattr(b, "text", "") or getattr(b, "caption", "") for b in blocks)


def test_fits_and_isoflop_sections_show_both_searches_and_the_vertex_method():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctx = report.build_context(results.load(FIXTURE), FitConfig(n_bootstrap=0))
        fits = report.section_fits(ctx)
        iso = report.section_isoflop(ctx)
    table = next(b for b in fits if isinstance(b, report.Table))
    assert "approach 3 (VP)" in table.df["approach"].tolist()
    s = text(fits)
    assert "variable-projection search" in s and "The two searches agree" in s
    s = text(iso)
    assert "law's own shape" in s and "parabola" in s and "window" in s
    assert "IsoFLOP slices from training curves" in s          # the fixture's runs are cosine: said why, or used
    per_budget = next(b for b in iso if isinstance(b, report.Table)).df
    assert {"sizes_below", "sizes_above", "bracketed"} <= set(per_budget.columns)
    plt.close("all")
