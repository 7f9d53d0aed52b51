"""A rebuilt corpus (another tokenizer) keeps the run ids, so finished results must not pass as done
on it, and runs from two tokenizers must not be mixed into one fit."""
from __future__ import annotations

import json

import pytest
from harness_util import make_corpus, runtime, tiny_spec

from analysis.results import load
from harness.spec import SpecError
from harness.train import run
from sweeps.status import run_status


def rebuild_with_other_tokenizer(corpus):
    mf = corpus / "manifest.json"
    m = json.loads(mf.read_text())
    m["tokenizer_sha256"] = "f" * 64
    mf.write_text(json.dumps(m))


def test_finished_run_on_a_rebuilt_corpus_is_refused_not_reused(tmp_path):
    corpus = make_corpus(tmp_path / "c")
    spec = tiny_spec(corpus, steps=4)
    run_dir = tmp_path / "runs" / "s" / spec.run_id
    first = run(spec, runtime(), run_dir)
    assert run(spec, runtime(), run_dir) == first            # same corpus: returned as done
    assert run_status(run_dir, spec.run_id, retries=1, tokenizer_sha256=first["tokenizer_sha256"]).state == "done"
    rebuild_with_other_tokenizer(corpus)
    with pytest.raises(SpecError, match="rebuilt"):
        run(spec, runtime(), run_dir)
    st = run_status(run_dir, spec.run_id, retries=1, tokenizer_sha256="f" * 64)
    assert st.state == "failed" and "rebuilt" in st.reason
    assert json.loads((run_dir / "result.json").read_text()) == first   # nothing was overwritten


def test_results_from_two_tokenizers_are_not_mixed(tmp_path):
    for i, sha in enumerate(["a" * 64, "a" * 64, "b" * 64]):
        d = tmp_path / f"r{i}"
        d.mkdir()
        (d / "result.json").write_text(json.dumps({"run_id": f"r{i}", "loss": 3.0, "tokenizer_sha256": sha}))
    with pytest.raises(ValueError, match="2 different tokenizers"):
        load(tmp_path)
    assert len(load(tmp_path, allow_mixed_tokenizers=True).runs) == 3
