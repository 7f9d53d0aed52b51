"""Parquet/Arrow and MDS sources (harness.data.columnar), streamed into shards (harness.data.streamed).

tests/fixtures/mds_tiny/ was written by the `streaming` library itself (mosaicml-streaming 0.13.0's MDSWriter,
make.py beside it): `plain` uncompressed in one shard, `zstd_multi` zstd-compressed in 5 shards; both hold the
24 documents of docs.jsonl, in order.
"""
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.data import columnar
from harness.data.prepare import PrepareError, prepare

FIXTURE = Path(__file__).parent / "fixtures" / "mds_tiny"
WORDS = "the of and a to in is was for on with as by at from that this which be are or an it not".split()


def fixture_texts() -> list[str]:
    return [json.loads(x)["text"] for x in (FIXTURE / "docs.jsonl").read_text().splitlines()]


def more_texts(n: int = 160) -> list[str]:
    import random
    rng = random.Random(1)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 200))) + f"\nend {i}" for i in range(n)]
    texts[7] = texts[3]        # a duplicate (skipped, counted)
    texts[11] = "   \n "       # an empty document (skipped)
    return texts


def write_jsonl(texts, path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def write_parquet(texts, path: Path, column="text") -> Path:
    path.mkdir(parents=True)
    half = len(texts) // 2   # two files, small row groups: the reader crosses files and batches
    for i, part in enumerate((texts[:half], texts[half:])):
        table = pa.table({"id": list(range(len(part))), column: part})
        pq.write_table(table, path / f"part-{i:05d}.parquet", row_group_size=17)
    return path


def recipe(a: dict, b: dict, **over) -> dict:
    return {"name": "c", "vocab_size": 320, "heldout_frac": 0.1, "tokenizer_sample_bytes": 6000,
            "domains": {"a": {"sources": [a]}, "b": {"sources": [b], "max_bytes": 15000}}, **over}


def shards(corpus: Path) -> dict[str, bytes]:
    return {str(p.relative_to(corpus)): p.read_bytes() for p in sorted(corpus.rglob("*.bin"))} | \
        {"tokenizer.json": (corpus / "tokenizer.json").read_bytes()}


def test_mds_reader_reads_what_the_streaming_library_wrote():
    for name in ("plain", "zstd_multi"):
        assert [t for _, t in columnar.mds_documents(FIXTURE / name)] == fixture_texts()


@pytest.mark.parametrize("frac", [0.1, 0.02])
def test_mds_and_parquet_corpora_are_byte_identical_to_jsonl(tmp_path, frac):
    """At heldout_frac 0.02 none of domain a's 24 documents is held out by its hash: collect's tiny-domain
    fallback holds out the smallest-hash one; at 0.1, 3 are."""
    b = more_texts()
    jsonl = {"kind": "text_dir", "path": str(write_jsonl(fixture_texts(), tmp_path / "ja"))}
    jsonl_b = {"kind": "text_dir", "path": str(write_jsonl(b, tmp_path / "jb"))}
    ref = prepare(recipe(jsonl, jsonl_b, heldout_frac=frac), tmp_path / "ref", tmp_path / "cache", workers=1,
                  progress=False)
    assert ref["domains"]["a"]["heldout_documents"] == {0.1: 3, 0.02: 1}[frac]
    assert ref["domains"]["b"]["duplicates"] == 1 and ref["domains"]["b"]["bytes"] < sum(map(len, b))  # the cap bit
    variants = {
        "mds": ({"kind": "mds", "path": str(FIXTURE / "plain")},
                {"kind": "parquet", "path": str(write_parquet(b, tmp_path / "pb"))}),
        "mds_zstd_arrow": ({"kind": "mds", "path": str(FIXTURE / "zstd_multi")},
                           {"kind": "parquet", "path": str(tmp_path / "ab.arrow")}),
    }
    with pa.OSFile(str(tmp_path / "ab.arrow"), "wb") as f, pa.ipc.new_stream(f, pa.schema([("text", pa.string())])) as w:
        for i in range(0, len(b), 50):   # the Hugging Face datasets cache's layout: an Arrow stream of batches
            w.write_batch(pa.record_batch([pa.array(b[i:i + 50])], names=["text"]))
    for name, (a_src, b_src) in variants.items():
        m = prepare(recipe(a_src, b_src, heldout_frac=frac), tmp_path / name, tmp_path / "cache", workers=2 if name == "mds" else 1,
                    progress=False)
        assert shards(tmp_path / name) == shards(tmp_path / "ref"), name
        for d in ("a", "b"):
            keys = ("documents", "duplicates", "bytes", "train_documents", "heldout_documents", "train_tokens")
            assert {k: m["domains"][d][k] for k in keys} == {k: ref["domains"][d][k] for k in keys}
            assert m["domains"][d]["stream"]["mb_per_s"] > 0


def test_parquet_without_the_column_is_refused_before_anything_is_read(tmp_path):
    src = {"kind": "parquet", "path": str(write_parquet(more_texts(20), tmp_path / "p", column="content"))}
    with pytest.raises(PrepareError, match=r"no column 'text' \(columns: \['id', 'content'\]\); set the source's "):
        prepare(recipe(src, src), tmp_path / "out", tmp_path / "cache", workers=1, progress=False)
    assert not (tmp_path / "out").exists()
    ok = {**src, "column": "content"}
    columnar.check_parquet(Path(ok["path"]), "content")
    with pytest.raises(columnar.ColumnarError, match="column 'id' is int64, not text"):
        columnar.check_parquet(Path(ok["path"]), "id")


def test_mds_index_that_does_not_match_its_shards_is_refused(tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(FIXTURE / "zstd_multi", ds)
    (ds / "shard.00003.mds.zstd").unlink()
    with open(ds / "shard.00001.mds.zstd", "ab") as f:
        f.write(b"x")
    with pytest.raises(columnar.ColumnarError) as e:
        columnar.check_mds(ds, "text")
    assert "shard 3: shard.00003.mds.zstd is missing" in str(e.value)
    assert "shard 1: shard.00001.mds.zstd is" in str(e.value) and "index.json says" in str(e.value)
    plain = tmp_path / "plain"
    shutil.copytree(FIXTURE / "plain", plain)
    index = json.loads((plain / "index.json").read_text())
    index["shards"][0]["samples"] = 30
    (plain / "index.json").write_text(json.dumps(index))
    with pytest.raises(PrepareError, match="holds 24 samples, index.json says 30"):
        prepare(recipe({"kind": "mds", "path": str(plain)}, {"kind": "mds", "path": str(plain)}), tmp_path / "o",
                tmp_path / "cache", workers=1, progress=False)
    with pytest.raises(columnar.ColumnarError, match=r"no column 'body' \(columns: \['id', 'text'\]\)"):
        columnar.check_mds(FIXTURE / "plain", "body")
