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
