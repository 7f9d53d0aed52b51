"""Bootstrap helpers and power laws: seeded draws, weights equal draws, parallel map keeps order."""
import numpy as np
import pytest

from analysis.bootstrap import parallel_map, resample_indices, resample_weights
from analysis.laws.common import FitConfig, PowerLaw


def test_weights_are_the_multiplicities_of_the_index_draws():
    idx = resample_indices(30, 50, seed=4)
    w = resample_weights(30, 50, seed=4)
    assert w.sum(axis=1).tolist() == [30] * 50
    for i in range(50):
        np.testing.assert_array_equal(np.bincount(idx[i], minlength=30), w[i])
    assert not np.array_equal(resample_indices(30, 50, seed=5), idx)


def _square(x):
    return x * x


def test_parallel_map_matches_serial_and_keeps_order():
    items = list(range(103))
    assert parallel_map(_square, items, processes=2) == [x * x for x in items]


def test_power_law_fit_and_interval():
    x = np.geomspace(1e18, 1e22, 6)
    law = PowerLaw.fit(x, 3.0 * x ** 0.5)
    assert law.a == pytest.approx(0.5) and law.k == pytest.approx(3.0)
    law.samples = np.column_stack([np.log(3.0) + np.zeros(100), np.linspace(0.45, 0.55, 100)])
    lo, hi = law.interval(1e20)
    assert lo[0] < law(1e20) < hi[0]


def test_fit_config_lists_every_error():
    errs = FitConfig(n_col="x", c_col="y", ci_level=2).errors()
    assert len(errs) == 3 and any("n_col" in e for e in errs) and any("c_col" in e for e in errs)
