"""Corpus build throughput and peak memory from parquet and MDS sources vs the same text as .jsonl.

    python bench/columnar_bench.py [--mb 60] [--workers 2]

Writes --mb MB of generated text (documents of 0.5-8 kB drawn from the Python stdlib's source text, so the
BPE has real structure) as one .jsonl file, as parquet (row groups of 1000 rows, 4 files) and as an
uncompressed MDS dataset (64 MiB shards, written here in the format harness.data.columnar reads, which
tests/test_columnar.py checks against the streaming library's own writer), then builds the same
one-domain corpus from each, each build in its own process, and prints one JSON line per source: wall
seconds, MB/s of text, the manifest's per-pass seconds, and the process' peak RSS (the .jsonl path holds
every document until it is tokenized; the streamed ones should not grow with the corpus).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def texts(mb: float, seed: int = 0) -> list[str]:
    src = "".join(p.read_text(errors="replace") for p in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")))
    rng = np.random.default_rng(seed)
    out, total = [], 0
    while total < mb * 1e6:
        n = int(rng.integers(500, 8000))
        start = int(rng.integers(0, len(src) - n))
        out.append(src[start:start + n])
        total += n
    return out


def write_mds(docs: list[str], path: Path, shard_bytes: int = 1 << 26) -> None:
    """An uncompressed MDS dataset with one `text` (str) column (the layout harness/data/columnar.py describes)."""
    path.mkdir(parents=True)
    config = json.dumps({"column_encodings": ["str"], "column_names": ["text"], "column_sizes": [None],
                         "compression": None, "format": "mds", "hashes": [], "size_limit": shard_bytes,
                         "version": 2}, sort_keys=True).encode()
    shards, cur = [], []

    def flush():
        samples = [np.array([len(b)], np.uint32).tobytes() + b for b in cur]
        offsets = np.cumsum([0] + [len(s) for s in samples]).astype(np.uint32) + 4 + 4 * (len(samples) + 1) + len(config)
        data = np.uint32(len(samples)).tobytes() + offsets.tobytes() + config + b"".join(samples)
        name = f"shard.{len(shards):05d}.mds"
        (path / name).write_bytes(data)
        shards.append({**json.loads(config), "raw_data": {"basename": name, "bytes": len(data), "hashes": {}},
                       "samples": len(samples), "zip_data": None})

    size = 0
    for d in docs:
        b = d.encode()
        if cur and size + len(b) > shard_bytes:
            flush()
            cur, size = [], 0
        cur.append(b)
        size += len(b) + 4
    if cur:
        flush()
    (path / "index.json").write_text(json.dumps({"shards": shards, "version": 2}))


def build(source: dict, out: Path, workers: int) -> dict:
    from harness.data.prepare import prepare
    recipe = {"name": "bench", "vocab_size": 4096, "heldout_frac": 0.01, "domains": {"d": {"sources": [source]}}}
    t = time.time()
    m = prepare(recipe, out, out.parent / "cache", workers=workers, progress=False)
    wall = time.time() - t
    dom = m["domains"]["d"]
    # this process holds the documents (the .jsonl path) or not (streamed); the tokenizer processes (children)
    # hold their span caches either way
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"source": source["kind"], "mb": round(dom["bytes"] / 1e6, 1), "wall_s": round(wall, 1),
            "mb_per_s": round(dom["bytes"] / 1e6 / wall, 2), "build": m["build"], "stream": dom.get("stream"),
            "train_tokens": dom["train_tokens"], "peak_rss_mb": round(rss / 1024), "peak_rss_workers_mb": round(rss_children / 1024),
            "workers": workers}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, default=60)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--one", help=argparse.SUPPRESS)   # internal: build one source (JSON) in this process
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(json.dumps(build(json.loads(a.one), Path(a.out), a.workers)))
        return
    import pyarrow as pa
    import pyarrow.parquet as pq
    with tempfile.TemporaryDirectory(prefix="scalemix-columnar-") as tmp:
        tmp = Path(tmp)
        docs = texts(a.mb)
        (tmp / "jsonl").mkdir()
        (tmp / "jsonl" / "d.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
        (tmp / "pq").mkdir()
        for i in range(4):
            part = docs[i * len(docs) // 4:(i + 1) * len(docs) // 4]
            pq.write_table(pa.table({"text": part}), tmp / "pq" / f"part-{i}.parquet", row_group_size=1000)
        write_mds(docs, tmp / "mds")
        del docs
        for src in ({"kind": "text_dir", "path": str(tmp / "jsonl")}, {"kind": "parquet", "path": str(tmp / "pq")},
                    {"kind": "mds", "path": str(tmp / "mds")}):
            r = subprocess.run([sys.executable, __file__, "--one", json.dumps(src), "--out", str(tmp / "out" / src["kind"]),
                                "--workers", str(a.workers)], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
            print(r.stdout.strip() or r.stderr[-2000:], flush=True)
        same = len({(tmp / "out" / k / "d" / "train.bin").read_bytes() for k in ("text_dir", "parquet", "mds")}) == 1
        print(json.dumps({"train_bin_identical": same}))


if __name__ == "__main__":
    main()
