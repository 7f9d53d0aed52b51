"""Domains whose sources are too large to hold in memory (parquet, MDS: harness.data.sources.STREAMED).

harness.data.prepare.collect keeps every document of a domain in memory until it is tokenized. A
streamed domain is read three times instead, and never held:
  1. scan: each document's fate (empty, duplicate, train, held out: one byte per document) and the
     domain's counts, deduplicating against the domains before it exactly as collect does;
  2. sample: the train documents the tokenizer is trained on (the first tokenizer_sample_bytes of them);
  3. encode: the documents again, in chunks of about 1 MB, through the tokenizer processes, appended to
     the train and held-out shards as they come (harness.data.shards.ShardWriter).
The order of documents, the byte budget, the held-out split, the fallbacks of a tiny domain and the
tokenizer sample are collect's, so the corpus is byte-identical to the one the same text builds through
collect (tests/test_columnar.py). Throughput of each pass goes to the manifest's domain entry
(`stream`) and a progress bar to stderr.
"""
from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.data import sources
from harness.data.shards import ShardWriter

EMPTY, DUPLICATE, TRAIN, HELDOUT = 0, 1, 2, 3
CHUNK_CHARS = 1_000_000   # as prepare.encode_groups: a job of about 1 MB keeps a worker busy
JOBS_IN_FLIGHT = 4        # per worker: bounds the text held while the pool encodes


def is_streamed(spec: dict) -> bool:
    return bool(spec.get("sources")) and all(s.get("kind") in sources.STREAMED for s in spec["sources"])


def documents(spec: dict, cache: Path) -> Iterator[tuple[str, str]]:
    """The domain's documents in collect's order: round-robin over its sources."""
    gens = [sources.documents(s, cache) for s in spec["sources"]]
    while gens:
        for g in list(gens):
            doc = next(g, None)
            if doc is None:
                gens.remove(g)
                continue
            yield doc


@dataclass
class StreamedDocs:
    """What collect's DomainDocs says of a domain, without the texts; `train` is the tokenizer's sample only."""
    spec: dict
    fate: bytearray = field(default_factory=bytearray)
    documents: int = 0
    duplicates: int = 0
    bytes: int = 0
    empty: list = field(default_factory=list)
    train: list = field(default_factory=list)
    heldout: tuple = ()
    seconds: dict = field(default_factory=dict)

    def count(self, fate: int) -> int:
        return self.fate.count(fate)


def scan(name: str, spec: dict, frac: float, seen: set, cache: Path, progress: bool, sample_bytes: float,
         admit, is_heldout, error) -> StreamedDocs:
    """Pass 1 and 2 (the fates, then the tokenizer sample); `admit`, `is_heldout` and `error(list)` are prepare's
    (its deduplication and split, and its PrepareError)."""
    from tqdm import tqdm
    t0 = time.time()
    budget = float(spec.get("max_bytes", float("inf")))
    out, best, last_held = StreamedDocs(spec), None, None
    bar = tqdm(unit="B", unit_scale=True, desc=f"scan {name}", disable=not progress, file=sys.stderr)
    for ident, text in documents(spec, cache) if budget > 0 else ():
        if not text.strip():
            out.fate.append(EMPTY)
            out.empty.append(ident)
            continue
        data = text.encode("utf-8", errors="replace")
        if (h := admit(data, seen, out)) is None:
            out.fate.append(DUPLICATE)
            continue
        bar.update(len(data))
        held = is_heldout(h, frac)
        if held:
            last_held = len(out.fate)
        if best is None or h < best[0]:
            best = (h, len(out.fate))
        out.fate.append(HELDOUT if held else TRAIN)
        if out.bytes >= budget:
            break
    bar.close()
    if out.documents < 2:
        raise error([f"domains.{name}: {out.documents} non-empty document(s) found; a domain needs at least 2 "
                     "(one to train on, one held out)"])
    if out.empty:
        print(f"warning: domains.{name}: {len(out.empty)} empty document(s) skipped", file=sys.stderr)
    if not out.count(HELDOUT):   # collect's fallbacks for a tiny domain
        out.fate[best[1]] = HELDOUT
    elif not out.count(TRAIN):
        out.fate[last_held] = TRAIN
    out.seconds["scan_s"] = time.time() - t0
    t1, used = time.time(), 0
    for (_, text), fate in zip(documents(spec, cache), out.fate):
        if used >= sample_bytes:
            break
        if fate == TRAIN:
            out.train.append(text)
            used += len(text)
    out.seconds["sample_s"] = time.time() - t1
    return out


def _jobs(docs: StreamedDocs, cache: Path, eod: int, dtype) -> Iterator[tuple[int, tuple]]:
    """(fate, encode job) in document order: runs of one split, about CHUNK_CHARS each."""
    cur, size, cur_fate = [], 0, None
    for (_, text), fate in zip(documents(docs.spec, cache), docs.fate):
        if fate not in (TRAIN, HELDOUT):
            continue
        if cur and (fate != cur_fate or size >= CHUNK_CHARS):
            yield cur_fate, (cur, eod, dtype)
            cur, size = [], 0
        cur.append(text)
        cur_fate, size = fate, size + len(text)
    if cur:
        yield cur_fate, (cur, eod, dtype)


def encode(name: str, docs: StreamedDocs, pool, workers: int, encode_chunk, out_dir: Path, cache: Path, eod: int,
           dtype, progress: bool) -> dict[str, int]:
    """Pass 3: tokens of the train and held-out documents appended to out_dir/{train,heldout}.bin; their counts."""
    from tqdm import tqdm
    t0 = time.time()
    writers = {TRAIN: ShardWriter(out_dir / "train.bin", dtype), HELDOUT: ShardWriter(out_dir / "heldout.bin", dtype)}
    bar = tqdm(unit="char", unit_scale=True, desc=f"tokenize {name}", disable=not progress,
               file=sys.stderr)
    # the pool's feeder thread pulls jobs as the workers take them; the semaphore holds it to JOBS_IN_FLIGHT
    # per worker ahead of the writer, so the text in flight stays bounded without a barrier between batches
    ahead = threading.Semaphore(JOBS_IN_FLIGHT * max(1, workers))
    fates: deque = deque()

    stop = threading.Event()

    def feed():
        for fate, job in _jobs(docs, cache, eod, dtype):
            ahead.acquire()
            if stop.is_set():   # the writer failed: end the feed, so the pool can be closed
                return
            fates.append(fate)
            yield job

    results = pool.imap(encode_chunk, feed()) if pool is not None else map(encode_chunk, feed())
    try:
        for raw, n_chars in results:
            writers[fates.popleft()].write(np.frombuffer(raw, dtype=dtype))
            ahead.release()
            bar.update(n_chars)
    finally:
        stop.set()
        ahead.release()
    bar.close()
    counts = {"train": writers[TRAIN].close(), "heldout": writers[HELDOUT].close()}
    docs.seconds["tokenize_s"] = time.time() - t0
    return counts
