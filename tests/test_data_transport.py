"""Corpus transport: pack -> unpack gives byte-identical shards; corrupt, partial or mismatched input is refused."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.data import transport as tr
from harness.data.prepare import prepare

ROOT = Path(__file__).resolve().parents[1]
FILES = ("manifest.json", "tokenizer.json")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("text")
    rng = np.random.default_rng(0)
    words = ["Straße", "naïve", "код", "数据", "the", "corpus", "shard", "token", "\t", "  ", "emoji 🙂", "x=1;"]
    for i in range(60):
        body = " ".join(rng.choice(words, size=int(rng.integers(30, 200))))
        if i == 7:
            body += " a literal <|endoftext|> inside a document, and\u00a0odd\u2028spaces"
        (src / f"doc{i}.txt").write_text(f"Document {i}.\n{body}\n")
    recipe = {"name": "carry", "vocab_size": 320, "heldout_frac": 0.2,
              "domains": {"text": {"sources": [{"kind": "text_dir", "path": str(src)}], "licence": "CC0"},
                          "math": {"sources": [{"kind": "math", "bytes": 30000}]}}}
    out = tmp_path_factory.mktemp("data") / "carry"
    prepare(recipe, out, tmp_path_factory.mktemp("cache"), workers=1, progress=False)
    return out


def shard_files(c: Path) -> dict[str, bytes]:
    return {str(p.relative_to(c)): p.read_bytes() for p in sorted(c.rglob("*")) if p.is_file()}


def test_manifest_records_every_shard_hash(corpus):
    m = json.loads((corpus / "manifest.json").read_text())
    for d in m["domains"].values():
        assert len(d["train_sha256"]) == 64 and len(d["heldout_sha256"]) == 64
    assert tr.corpus_problems(corpus) == []


@pytest.mark.parametrize("form", ["text", "tokens"])
def test_round_trip_gives_byte_identical_corpus(corpus, tmp_path, form):
    idx = tr.pack(corpus, tmp_path / "c.tar.xz", form=form, workers=1, preset=1, log=lambda *_: None)
    assert {s["form"] for s in idx["streams"]} == {form}
    assert idx["pack"]["files"] == [str(tmp_path / "c.tar.xz")]
    out = tr.unpack([tmp_path / "c.tar.xz"], tmp_path / "got", workers=1, log=lambda *_: None)
    assert shard_files(out) == shard_files(corpus)


def test_split_parts_in_any_order_and_a_missing_or_corrupt_part_is_named(corpus, tmp_path):
    idx = tr.pack(corpus, tmp_path / "c.tar.xz", workers=1, preset=1, part_mib=0.004, log=lambda *_: None)
    parts = [Path(p) for p in idx["pack"]["files"]]
    assert len(parts) >= 3 and not (tmp_path / "c.tar.xz").exists()
    assert all(p.stat().st_size <= 0.004 * tr.MIB for p in parts)
    out = tr.unpack(parts[::-1], tmp_path / "got", workers=1, log=lambda *_: None)
    assert shard_files(out) == shard_files(corpus)
    with pytest.raises(tr.TransportError, match=r"part\(s\) \[2\] of .* missing"):
        tr.unpack([p for p in parts if ".part2of" not in p.name], tmp_path / "x", workers=1)
    raw = bytearray(parts[1].read_bytes())
    raw[-100] ^= 0xFF
    parts[1].write_bytes(bytes(raw))
    with pytest.raises(tr.TransportError, match="part 2 of .* is corrupt"):
        tr.unpack(parts, tmp_path / "x", workers=1)
    assert not (tmp_path / "x").exists()


def test_a_corrupt_or_truncated_archive_is_refused(corpus, tmp_path):
    tr.pack(corpus, tmp_path / "c.tar.xz", workers=1, preset=1, log=lambda *_: None)
    raw = (tmp_path / "c.tar.xz").read_bytes()
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x01
    for name, data in [("flipped", bytes(flipped)), ("cut", raw[:len(raw) * 2 // 3])]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(tr.TransportError, match="corrupt or incomplete"):
            tr.unpack([tmp_path / name], tmp_path / "x", workers=1)
    assert not (tmp_path / "x").exists()
    r = subprocess.run([sys.executable, "-m", "harness.data.transport", "unpack", str(tmp_path / "cut"),
                        "--out", str(tmp_path / "x")], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 1 and "corrupt or incomplete" in r.stderr and not (tmp_path / "x").exists()


def test_shards_that_encode_differently_on_the_receiver_are_refused(corpus, tmp_path, monkeypatch):
    tr.pack(corpus, tmp_path / "c.tar.xz", form="text", workers=1, preset=1, log=lambda *_: None)
    from harness.data import encode
    real = encode.encode_groups
    monkeypatch.setattr(encode, "encode_groups", lambda *a, **k: [np.r_[g[:-2], g[-1:]] for g in real(*a, **k)])
    with pytest.raises(tr.TransportError, match=r"(?s)rebuilt shards differ from the manifest.*text/train.bin"):
        tr.unpack([tmp_path / "c.tar.xz"], tmp_path / "x", workers=1)
    assert not (tmp_path / "x").exists()


def test_verify_catches_a_modified_shard(corpus, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)
    raw = bytearray((copy / "math" / "train.bin").read_bytes())
    raw[-3] ^= 0x01
    (copy / "math" / "train.bin").write_bytes(bytes(raw))
    assert any("math/train.bin" in p for p in tr.corpus_problems(copy))
    with pytest.raises(tr.TransportError, match="differs from its manifest"):
        tr.pack(copy, tmp_path / "c.tar.xz", workers=1)


def test_unpack_needs_neither_yaml_nor_hydra_nor_tqdm(corpus, tmp_path):
    """The GPU machine has numpy and tokenizers but not the config stack: unpack in a process that cannot import them
    (the text form, which encodes there)."""
    idx = tr.pack(corpus, tmp_path / "c.tar.xz", form="text", workers=1, preset=1, part_mib=0.004,
                  log=lambda *_: None)
    parts = idx["pack"]["files"]
    assert len(parts) > 1
    code = ("import sys\nfor m in ('yaml', 'hydra', 'omegaconf', 'tqdm', 'submitit', 'pandas', 'scipy'): "
            "sys.modules[m] = None\nfrom harness.data.transport import main\n"
            "sys.exit(main(['unpack', *sys.argv[2:], '--out', sys.argv[1], '--workers', '2']))")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "got"), *parts], cwd=ROOT, capture_output=True,
                       text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert shard_files(tmp_path / "got") == shard_files(corpus)
