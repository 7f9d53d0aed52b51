"""The mixture grid's Dirichlet design (RegMix): samples centred on the natural token proportions, a count tied
to the number of domains, plus the pure, uniform and natural mixtures; a missing corpus is an error naming the fix."""
import numpy as np
import pytest

from sweeps import grids

NAT = {"a": 0.6, "b": 0.3, "c": 0.08, "d": 0.02}
BASE = {"kind": "dirichlet", "center": "natural", "natural": NAT, "samples": None, "samples_per_domain": 4,
        "concentration": [0.5, 5.0], "seed": 0, "include_pure": True, "include_uniform": True,
        "include_natural": True}


def test_count_rule_and_extras():
    mixes = grids.mixtures(BASE, list(NAT), errors := [])
    assert not errors
    weights = [dict(m.weights) for m in mixes]
    assert len(mixes) == 4 * 4 + 4 + 2                      # samples_per_domain x K + pure + uniform + natural
    assert {"a": 1.0} in weights and {d: 0.25 for d in NAT} in weights
    assert any(w == pytest.approx(NAT) for w in weights)
    for w in weights:
        assert sum(w.values()) == pytest.approx(1, abs=1e-9)


def test_samples_are_centred_on_the_natural_mixture():
    cfg = {**BASE, "samples": 2000, "include_pure": False, "include_uniform": False, "include_natural": False}
    W = np.array([[dict(m.weights).get(d, 0.0) for d in NAT] for m in grids.mixtures(cfg, list(NAT), [])])
    np.testing.assert_allclose(W.mean(0), list(NAT.values()), atol=0.02)
    assert W[:, 0].min() < 0.2 and W[:, 0].max() > 0.95        # the concentration range spreads them widely
    again = grids.mixtures(cfg, list(NAT), [])
    assert [m.weights for m in again][:5] == [m.weights for m in grids.mixtures(cfg, list(NAT), [])][:5]


def test_natural_centre_without_a_corpus_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("SCALEMIX_DATA", str(tmp_path))
    errors = []
    assert grids.mixtures({**BASE, "natural": None, "corpus": "nowhere"}, list(NAT), errors) == []
    assert "is not built here" in errors[0] and "center=uniform" in errors[0]


SPREAD = {**BASE, "select": "spread", "samples_per_domain": 6, "include_pure": False, "include_uniform": False,
          "include_natural": False}


def _weights(cfg, doms):
    errors = []
    mixes = grids.mixtures(cfg, doms, errors)
    assert not errors
    return np.array([[dict(m.weights).get(d, 0.0) for d in doms] for m in mixes])


@pytest.mark.parametrize("K", [4, 5, 12, 20])
def test_spread_design_is_seeded_counted_and_evenly_spaced(K):
    """select=spread: samples_per_domain x K mixtures, the same for a draw seed and different for another; their
    Hellinger distances from natural evenly spaced between the candidates' SPREAD_QUANTILES (nearest candidates, the
    sparse top of the pool the least even: each step within 0.6 of the target step), where iid samples of the same
    seed crowd (a largest gap over twice the spread design's)."""
    doms = [f"d{i:02d}" for i in range(K)]
    nat = dict(zip(doms, np.random.default_rng(K).dirichlet(np.full(K, 2.0))))
    cfg = {**SPREAD, "natural": nat}
    W = _weights(cfg, doms)
    assert W.shape == (6 * K, K)
    np.testing.assert_allclose(W.sum(1), 1, atol=1e-5)
    assert (W >= 0).all()
    np.testing.assert_array_equal(W, _weights(cfg, doms))
    assert np.abs(W - _weights({**cfg, "seed": 1}, doms)).max() > 0.05
    c = np.array(list(nat.values()))
    s = np.sort(grids.hellinger_from(c, W))
    step = (s[-1] - s[0]) / (len(s) - 1)
    assert step > 0 and np.abs(np.diff(s) - step).max() < 0.6 * step
    s_iid = np.sort(grids.hellinger_from(c, _weights({**cfg, "select": "iid"}, doms)))
    assert np.diff(s_iid).max() > 2 * np.diff(s).max()


def test_spread_applies_around_the_uniform_centre_too():
    """center=uniform with select=spread: Hellinger distances from the uniform mixture evenly spaced (it silently
    drew iid samples before, whatever select said); select=iid draws what the uniform sampler always drew."""
    doms = [f"d{i}" for i in range(6)]
    cfg = {"kind": "dirichlet", "center": "uniform", "alpha": 1.0, "samples": None, "samples_per_domain": 6,
           "include_pure": False, "include_uniform": False, "include_natural": False, "seed": 0}
    W = _weights({**cfg, "select": "spread"}, doms)
    assert W.shape == (36, 6)
    s = np.sort(grids.hellinger_from(np.full(6, 1 / 6), W))
    step = (s[-1] - s[0]) / (len(s) - 1)
    assert step > 0 and np.abs(np.diff(s) - step).max() < 0.6 * step
    iid = _weights({**cfg, "select": "iid"}, doms)
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(iid, [rng.dirichlet(np.ones(6)) for _ in range(36)], atol=1e-5)   # 6 decimals kept
    s_iid = np.sort(grids.hellinger_from(np.full(6, 1 / 6), iid))
    assert np.diff(s_iid).max() > 2 * np.diff(s).max()


def test_spread_design_spans_the_candidates_not_their_extremes():
    """The design's distances lie within the candidates' 2%-98% quantiles, hence never the most lopsided candidate,
    and reach near both ends of that range."""
    rng = np.random.default_rng(0)
    c = np.array([0.4, 0.3, 0.2, 0.1])
    P = np.array([rng.dirichlet(5 * c) for _ in range(2000)])
    s = grids.hellinger_from(c, P)
    lo, hi = np.quantile(s, grids.SPREAD_QUANTILES)
    d = np.sort(grids.hellinger_from(c, grids.spread_subset(P, c, 40)))
    assert lo - 1e-3 <= d[0] <= lo + 1e-3 and hi - 1e-3 <= d[-1] <= hi + 1e-3
    assert d[-1] < s.max() - 1e-3
    assert grids.hellinger_from(c, c[None])[0] == pytest.approx(0, abs=1e-6)
    assert grids.hellinger_from(c, np.eye(4)[3:])[0] == pytest.approx(np.sqrt(1 - np.sqrt(0.1)))


def test_iid_select_keeps_the_old_draws_and_a_bad_select_names_the_fix():
    """select=iid (the code's default, as configs before it) draws exactly what the sampler drew before select existed
    (the stored CSV's designs are re-derived from it), checked against the first draw's first sample; a misspelled
    select is an error naming the choices."""
    first = _weights({**BASE, "include_pure": False, "include_uniform": False, "include_natural": False}, list(NAT))[0]
    rng = np.random.default_rng(0)
    c = np.exp(rng.uniform(np.log(0.5), np.log(5.0)))
    np.testing.assert_allclose(first, rng.dirichlet(c * 4 * np.array(list(NAT.values()))), atol=1e-6)
    errors = []
    assert grids.mixtures({**BASE, "select": "even"}, list(NAT), errors) == []
    assert "grid.mixtures.select='even'" in errors[0] and "spread" in errors[0] and "iid" in errors[0]


@pytest.mark.parametrize("cfg", [{**BASE, "center": "uniform"}, {"kind": "simplex", "step": 0.5},
                                 {"kind": "list", "list": [{"a": 1.0}]}])
def test_a_bad_select_is_refused_whatever_the_design(cfg):
    """grid.mixtures.select is checked for every kind and centre, not only where it applies (Dirichlet around natural):
    a misspelled value (`grid.mixtures.select=sprd`) was silently ignored under center=uniform or kind=simplex."""
    errors = []
    assert grids.mixtures({**cfg, "select": "sprd"}, list(NAT), errors) == []
    assert "grid.mixtures.select='sprd'" in errors[0] and "spread" in errors[0] and "iid" in errors[0]
    errors = []
    assert grids.mixtures({**cfg, "select": "spread"}, list(NAT), errors) and not errors
