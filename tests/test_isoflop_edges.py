"""Approach 2 on Porian-like isoFLOP slices (one run per size, each ending at its own tokens-per-parameter multiple,
sliced at 12 budgets 2x apart): budgets whose minimum lies outside the sizes present are left out of the exponents'
fit by default, and say so (approach2.EXTRAPOLATED; bench/README.md, "IsoFLOP: budgets whose minimum is at an edge")."""
import sys

import numpy as np
import pytest
from isoflop_util import BENCH, fit

from analysis.laws import approach2
from analysis.synthetic import CHINCHILLA

sys.path.insert(0, str(BENCH))
import isoflop_edges  # noqa: E402


def _inside(f):
    return f.points["inside"].astype(bool).to_numpy()


@pytest.mark.parametrize("seed", [0, 1])
def test_extrapolated_budgets_are_left_out_and_the_exponent_recovered(seed):
    # every run 40 tokens per parameter: from 1e17 up each budget's optimum lies below the smallest size whose run
    # reaches it, so the shape profile extrapolates there (the law's form holds: constant-lr slices)
    t = isoflop_edges.case_table(CHINCHILLA, np.full(16, 40.0), "constant", seed)
    f = fit(t)
    inside = _inside(f)
    assert (~inside).sum() >= 5 and inside.sum() >= approach2.MIN_INSIDE
    assert (f.points["in_fit"].to_numpy() == inside).all()
    assert any("left out of the exponents' fit" in w for w in f.warnings)
    assert "not used in the exponents' fit" in f.describe_method()
    # measured: 0.458 and 0.447 (truth 0.452; 9 budgets of 12 outside, 3 inside). The shared profile puts every vertex
    # on one power law, so "keep" gives the same exponent here: what differs is which budgets say they are used
    assert f.n_opt.a == pytest.approx(CHINCHILLA.a, abs=0.03)
    assert f.n_opt.a + f.d_opt.a == pytest.approx(1.0, abs=1e-6)


def test_wild_extrapolated_vertices_do_not_set_the_exponent():
    # mid-cosine slices (not the law's form), two runs a size: each budget fits its own profile, and those of the
    # budgets with their minimum outside the sizes present extrapolate far; with them in the fit (the old behaviour,
    # extrapolated="keep") the exponent was -1.17 for a truth of 0.452 (bench/README.md)
    t = isoflop_edges.case_table(CHINCHILLA, isoflop_edges.MULTIPLES["short"], "cosine", 1, replicates=2)
    default, keep = fit(t), fit(t, extrapolated="keep")
    assert (~_inside(default)).sum() >= 3
    assert abs(keep.n_opt.a - CHINCHILLA.a) > 0.5
    assert default.n_opt.a == pytest.approx(CHINCHILLA.a, abs=0.05)      # measured 0.422


def test_too_few_inside_keeps_every_budget():
    # every run 20 tokens per parameter: no budget's optimum has a size below it, so none is inside; leaving the
    # rest out would leave nothing: all are kept, and the warning says why
    t = isoflop_edges.case_table(CHINCHILLA, np.full(16, 20.0), "constant", 0)
    f = fit(t)
    assert _inside(f).sum() < approach2.MIN_INSIDE
    assert f.points["in_fit"].all()
    assert any("are kept in the exponents' fit" in w for w in f.warnings)


def test_extrapolated_setting_is_checked():
    t = isoflop_edges.case_table(CHINCHILLA, np.full(16, 40.0), "constant", 0)
    with pytest.raises(approach2.FitError, match="extrapolated='sometimes'"):
        fit(t, extrapolated="sometimes")
