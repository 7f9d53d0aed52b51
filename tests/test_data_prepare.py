"""Corpus preparation: the tiny preset, manifest, held-out hygiene, bring-your-own data, bad inputs."""
from __future__ import annotations

import bz2
import gzip
import json

import numpy as np
import pytest

from harness.data import tokenizer as tk
from harness.data.corpus import Corpus, CorpusError
from harness.data.mixture import MixtureStream
from harness.data.prepare import PrepareError, load_recipe, main, prepare, scaled
from harness.data.shards import read_shard
from harness.spec import DataSpec


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Corpus:
    out = tmp_path_factory.mktemp("corpus") / "tiny"
    prepare(scaled(load_recipe("tiny"), 0.3), out, tmp_path_factory.mktemp("cache"), workers=2, progress=False)
    return Corpus(out)


def docs_of(tokens: np.ndarray, eod: int) -> list[bytes]:
    t = np.asarray(tokens)
    cuts = np.flatnonzero(t == eod)
    return [t[a + 1:b].tobytes() for a, b in zip(np.r_[-1, cuts[:-1]], cuts)]


def test_tiny_manifest_records_sources_licences_counts_and_tokenizer(tiny):
    m = tiny.manifest
    assert set(m["domains"]) == {"code", "docs", "prose", "math"}
    assert m["tokenizer_sha256"] == tk.sha256_file(tiny.path / "tokenizer.json")
    assert m["vocab_size"] == 1024 and m["eod_id"] == 0
    for name, d in m["domains"].items():
        assert d["source"] and d["licence"] and d["bytes"] > 0 and 0 <= d["duplicate_rate"] < 1
        assert d["train_tokens"] == len(tiny.train(name)) > 10_000
        assert d["heldout_tokens"] == len(tiny.heldout(name)) > 0
        assert d["train_documents"] + d["heldout_documents"] == d["documents"]
        assert tiny.train(name)[-1] == tiny.eod_id  # every document ends with eod
    tok = tk.load(tiny.path / "tokenizer.json")
    first = docs_of(tiny.train("math"), 0)[0]
    assert tok.decode(np.frombuffer(first, dtype=np.uint16).tolist()).startswith("Worksheet")


def test_a_swapped_tokenizer_is_refused(tiny, tmp_path):
    import shutil
    copy = tmp_path / "tiny"
    shutil.copytree(tiny.path, copy)
    (copy / "tokenizer.json").write_text((copy / "tokenizer.json").read_text().replace("<|endoftext|>", "<|eod|>"))
    with pytest.raises(CorpusError, match="differs from the manifest"):
        Corpus(copy)


def test_heldout_documents_never_appear_in_training_batches(tiny):
    T, B = 128, 16
    s = MixtureStream(tiny, DataSpec(), batch_size=B, seq_len=T, seed=0)
    steps = int(s.windows.sum() // B) + 2  # a full epoch of every domain
    rows = np.concatenate([s.batch(i).inputs.numpy().astype(np.uint16) for i in range(steps)])
    row_bytes = b"|".join(r.tobytes() for r in rows)
    for d in tiny.domains:
        train_docs, held_docs = set(docs_of(tiny.train(d), 0)), docs_of(tiny.heldout(d), 0)
        assert not train_docs & set(held_docs)  # the split is by document: no document on both sides
        eod = np.array([0], dtype=np.uint16).tobytes()
        for doc in held_docs:  # a held-out document short enough to fit a row never shows up in one
            if 8 < len(doc) // 2 < T - 2:
                assert eod + doc + eod not in row_bytes


def test_byo_text_directory_with_compressed_files_and_duplicates(tmp_path):
    src = tmp_path / "mine"
    src.mkdir()
    text = "The quick brown fox jumps over the lazy dog, again and again, document number {0}.\n" * 5
    for i in range(30):
        (src / f"a{i}.txt").write_text(text.format(i))
    (src / "dup.txt").write_text(text.format(0))  # an exact duplicate of a0.txt
    with gzip.open(src / "b.jsonl.gz", "wt") as f:
        for i in range(30):
            f.write(json.dumps({"text": text.format(100 + i), "id": i}) + "\n")
    with bz2.open(src / "c.txt.bz2", "wt") as f:
        f.write(text.format("bz2"))
    recipe = {"name": "byo", "vocab_size": 300, "heldout_frac": 0.2,
              "domains": {"mine": {"sources": [{"kind": "text_dir", "path": str(src)}], "licence": "CC0"},
                          "math": {"sources": [{"kind": "math", "bytes": 20000}]}}}
    m = prepare(recipe, tmp_path / "out", tmp_path / "cache", workers=1, progress=False)
    d = m["domains"]["mine"]
    assert d["documents"] == 61 and d["duplicates"] == 1 and d["duplicate_rate"] == pytest.approx(1 / 62, abs=1e-6)
    assert d["licence"] == "CC0" and d["heldout_documents"] >= 1


def test_byo_pretokenized_nanogpt_shards(tmp_path):
    src = tmp_path / "toks"
    src.mkdir()
    rng = np.random.default_rng(0)
    docs = [rng.integers(1, 500, size=rng.integers(20, 80)).astype(np.uint16) for _ in range(200)]
    flat = np.concatenate([np.r_[d, 0].astype(np.uint16) for d in docs])
    flat.tofile(src / "train_000.bin")  # nanoGPT: a raw uint16 array, no header
    recipe = {"name": "pt", "vocab_size": 512, "eod_id": 0, "tokenizer": "my-tokenizer-v1", "heldout_frac": 0.1,
              "domains": {"web": {"kind": "tokens", "path": str(src), "dtype": "uint16"}}}
    prepare(recipe, tmp_path / "out", tmp_path / "cache", workers=1, progress=False)
    c = Corpus(tmp_path / "out")
    got = sorted(docs_of(c.train("web"), 0) + docs_of(c.heldout("web"), 0))
    assert got == sorted(d.tobytes() for d in docs) and c.vocab_size == 512
    assert read_shard(tmp_path / "out" / "web" / "train.bin").dtype == np.uint16


@pytest.mark.parametrize("case, match", [
    ("empty_dir", "no .txt or .jsonl files"),
    ("missing_dir", "not a directory"),
    ("corrupt_gz", "unreadable input file"),
    ("bad_jsonl", None),
    ("vocab_uint16", "does not fit in uint16"),
    ("token_out_of_vocab", "token id 900 >= vocab_size=512"),
    ("pretok_no_tokenizer", "set `tokenizer`"),
    ("unknown_kind", "source kind 'web' unknown"),
])
def test_bad_inputs_fail_before_any_work(tmp_path, case, match):
    d = tmp_path / "in"
    d.mkdir()
    dom = {"sources": [{"kind": "text_dir", "path": str(d)}]}
    recipe = {"name": "bad", "vocab_size": 300, "domains": {"x": dom}}
    if case == "missing_dir":
        dom["sources"][0]["path"] = str(tmp_path / "absent")
    elif case == "corrupt_gz":
        (d / "ok.txt").write_text("fine " * 50)
        (d / "broken.txt.gz").write_bytes(b"\x1f\x8b\x08\x00garbage-not-gzip")
    elif case == "bad_jsonl":
        (d / "a.jsonl").write_text(json.dumps({"body": "no text field"}) + "\n")
    elif case in ("vocab_uint16", "token_out_of_vocab", "pretok_no_tokenizer"):
        np.array([1, 2, 900, 0] * 10, dtype=np.uint16).tofile(d / "x.bin")
        recipe = {"name": "bad", "vocab_size": 70000 if case == "vocab_uint16" else 512, "eod_id": 0,
                  "tokenizer": "t" if case != "pretok_no_tokenizer" else None,
                  "domains": {"x": {"kind": "tokens", "path": str(d), "dtype": "uint16"}}}
    elif case == "unknown_kind":
        dom["sources"][0] = {"kind": "web"}
    if case == "bad_jsonl":  # found while reading, still before the tokenizer is trained
        with pytest.raises(ValueError, match="needs a string `text` field"):
            prepare(recipe, tmp_path / "out", tmp_path / "cache", workers=1, progress=False)
        return
    with pytest.raises(PrepareError, match=match):
        prepare(recipe, tmp_path / "out", tmp_path / "cache", workers=1, progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_reports_errors_and_unknown_presets(capsys, tmp_path):
    assert main(["corpus=no_such_preset"]) == 2
    assert "presets" in capsys.readouterr().err
    assert main(["corpus=tiny", f"out={tmp_path}/t", "colour=blue"]) == 2
    assert "colour: unknown argument" in capsys.readouterr().err


def test_pinned_debian_package_uses_only_that_version_from_the_cache(tmp_path, monkeypatch):
    from harness.data import apt
    assert apt.split_pin("dict-wn=1:3.0-37") == ("dict-wn", "1:3.0-37") and apt.split_pin("x") == ("x", None)
    assert apt.deb_version("dict-wn_1%3a3.0-37_all.deb") == "1:3.0-37"
    root = tmp_path / "root" / "dict-wn"
    root.mkdir(parents=True)
    (root / ".done").write_text("dict-wn_1%3a3.0-36_all.deb")   # an older version unpacked earlier
    monkeypatch.setattr(apt.shutil, "which", lambda _: None)    # as on a machine without apt
    assert apt.fetch_packages(["dict-wn=1:3.0-36"], tmp_path) == {"dict-wn": root}
    assert apt.fetch_packages(["dict-wn"], tmp_path) == {"dict-wn": root}
    with pytest.raises(apt.AptError, match=r"\['dict-wn=1:3.0-37'\] are not in the cache"):
        apt.fetch_packages(["dict-wn=1:3.0-37"], tmp_path)
