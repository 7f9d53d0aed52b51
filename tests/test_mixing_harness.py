"""Mixture runs are comparable: a run evaluates every domain's held-out set whatever it trained on, and its
result row carries the corpus's per-domain token counts, from which analysis derives the natural mixture."""
import json

import numpy as np
import pytest
from harness_util import make_corpus, runtime, tiny_spec

from analysis import results
from analysis.laws.mixing import corpus_tokens, natural_proportions
from harness.spec import RunSpec
from harness.train import run


def test_a_single_domain_run_is_scored_on_every_domain(tmp_path):
    corpus = make_corpus(tmp_path / "data" / "syn")
    d = tiny_spec(corpus, steps=3).to_dict()
    d["data"]["weights"] = [["alpha", 0.0], ["beta", 1.0], ["gamma", 0.0]]
    row = run(RunSpec.from_dict(d), runtime(), tmp_path / "runs" / "r1")
    domains = ("alpha", "beta", "gamma")
    assert [row[f"w_{x}"] for x in domains] == [0.0, 1.0, 0.0]
    assert all(np.isfinite(row[f"loss_{x}"]) for x in domains)          # held-out loss on domains it never saw
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert {x: row[f"corpus_tokens_{x}"] for x in domains} == {x: manifest["domains"][x]["train_tokens"]
                                                               for x in domains}
    table = results.load(tmp_path / "runs").runs
    nat = natural_proportions(table, list(domains))
    total = sum(manifest["domains"][x]["train_tokens"] for x in domains)
    assert nat["alpha"] == pytest.approx(manifest["domains"]["alpha"]["train_tokens"] / total)
    assert corpus_tokens(table, list(domains))["gamma"] == manifest["domains"]["gamma"]["train_tokens"]
