"""The demo corpus is the same on every machine running this code: its recipe reads only pinned, shipped text
(and generated arithmetic), so another Python, other pip packages or other apt packages cannot change it."""
from __future__ import annotations

import json
import lzma
import sys
import types

import pytest

from harness.data import pinned, sources
from harness.data.prepare import PrepareError, load_recipe, prepare, recipe_errors

# kinds whose documents are a function of this repository's code alone
MACHINE_FREE = {"pinned", "math"}


def small(recipe: dict, max_bytes: float = 60e3) -> dict:
    """The recipe with each domain capped and a small vocabulary, so that a build takes a second or two."""
    r = json.loads(json.dumps(recipe))
    for d in r["domains"].values():
        d["max_bytes"] = max_bytes
        for s in d["sources"]:
            if s["kind"] == "math":
                s["bytes"] = max_bytes
    r.update(vocab_size=300, tokenizer_sample_bytes=max_bytes)
    return r


def other_machine(monkeypatch, tmp_path):
    """Another Python and other installed packages: every machine-dependent source now reads different files."""
    stdlib, site = tmp_path / "stdlib", tmp_path / "site"
    for d in (stdlib, site):
        d.mkdir()
    (stdlib / "extra.py").write_text("def other_python():\n    return 'a module this machine has and that one lacks'\n")
    (stdlib / "LICENSE.txt").write_text("Another interpreter's licence, long enough to be a document of its own.\n")
    (site / "README.md").write_text("# An extra package\n\nInstalled by pip on this machine only; its docs differ.\n")
    (site / "LICENSE").write_text("An extra package's licence text, found only on this machine, not that one.\n")
    monkeypatch.setattr(sources, "_stdlib", lambda: stdlib)
    monkeypatch.setattr(sources, "_site_dirs", lambda: [site])
    topics = types.ModuleType("pydoc_data.topics")
    topics.topics = {"other": "Another Python patch version's pydoc topic, worded differently from this one's."}
    monkeypatch.setitem(sys.modules, "pydoc_data.topics", topics)


def build(recipe: dict, tmp_path, name: str) -> dict:
    return prepare(recipe, tmp_path / name, tmp_path / "cache", workers=1, progress=False)


def test_the_demo_recipe_reads_only_pinned_text_whose_files_match_their_pins():
    recipe = load_recipe("demo")
    kinds = {s["kind"] for d in recipe["domains"].values() for s in d["sources"]}
    assert kinds <= MACHINE_FREE, f"the demo corpus would depend on the machine through {kinds - MACHINE_FREE}"
    assert recipe_errors(recipe) == []
    # the tokenizer too: another `tokenizers` version could train other merges from the same text
    tok = recipe["tokenizer"]
    assert pinned.sha256_file(pinned.resolve(tok["file"])) == tok["sha256"]
    for d in recipe["domains"].values():
        for s in d["sources"]:
            if s["kind"] == "pinned":
                assert pinned.sha256_file(pinned.resolve(s["file"])) == s["sha256"]
                assert pinned.resolve(s["file"]).stat().st_size < 1e6   # the repository ships it: small


def test_the_demo_corpus_hash_is_the_same_on_another_machine_and_a_machine_dependent_recipe_is_not(
        tmp_path, monkeypatch):
    demo = small(load_recipe("demo"))
    # a control: the same domains, but docs from the installed packages, as the demo recipe once had
    local = json.loads(json.dumps(demo))
    local["domains"]["docs"]["sources"] = [{"kind": "pydoc_topics"}, {"kind": "site_docs"}]
    here = build(demo, tmp_path, "here")["corpus_sha256"]
    here_local = build(local, tmp_path, "here_local")["corpus_sha256"]
    with monkeypatch.context() as m:
        other_machine(m, tmp_path)
        there = build(demo, tmp_path, "there")
        there_local = build(local, tmp_path, "there_local")["corpus_sha256"]
    assert there["corpus_sha256"] == here and len(here) == 64
    assert here_local != there_local, "the fake machine did not change a machine-dependent source: the test is void"
    assert set(there["domains"]["code"]) >= {"text_sha256", "train_sha256", "heldout_sha256"}


def test_a_pinned_file_that_changed_is_refused_before_any_work(tmp_path):
    recipe = small(load_recipe("demo"))
    src = recipe["domains"]["code"]["sources"][0]
    copy = tmp_path / "code.jsonl.xz"
    lines = lzma.decompress(pinned.resolve(src["file"]).read_bytes()).splitlines(keepends=True)
    copy.write_bytes(lzma.compress(b"".join(lines[:-1])))       # one document fewer
    src["file"] = str(copy)
    with pytest.raises(PrepareError, match=r"domains\.code: pinned source .*code\.jsonl\.xz: sha256 .* is not the "
                                           r"recipe's"):
        prepare(recipe, tmp_path / "out", tmp_path / "cache", workers=1, progress=False)
    assert not (tmp_path / "out").exists()
    src["file"] = str(tmp_path / "missing.jsonl.xz")
    assert any("is missing" in e for e in recipe_errors(recipe))
