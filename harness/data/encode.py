"""Text -> token ids with worker processes, each a tokenizer.DocumentEncoder: how a corpus is tokenized
(harness.data.prepare) and how a transported one is rebuilt (harness.data.transport).

Imports only numpy and `tokenizers` (tqdm only with progress=True), so a machine without the
project's config stack can rebuild a corpus.
"""
from __future__ import annotations

import os
import sys
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from harness.data import tokenizer as tk

_worker_encoder: tk.DocumentEncoder | None = None


def _init_worker(path: str, cache: bool = True) -> None:
    global _worker_encoder
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _worker_encoder = tk.DocumentEncoder(tk.load(Path(path)), cache=cache)


def _encode_chunk(args) -> tuple[bytes, int]:
    texts, eod, dtype = args
    return _worker_encoder.encode_docs(texts, eod, dtype).tobytes(), sum(len(t) for t in texts)


def encode_all(texts: list[str], pool, eod: int, dtype, desc: str, progress: bool) -> np.ndarray:
    """All texts' ids, each followed by eod, in order; the pool's processes share the work."""
    return encode_groups([texts], pool, eod, dtype, desc, progress)[0]


def encode_groups(groups: list[list[str]], pool, eod: int, dtype, desc: str, progress: bool) -> list[np.ndarray]:
    """encode_all of each group, as one stream of chunks, so that no worker idles where a group ends."""
    jobs, owner = [], []
    for g, texts in enumerate(groups):
        cur, size = [], 0
        for t in texts:  # chunks of about 1 MB keep the workers busy and the progress bar moving
            cur.append(t)
            size += len(t)
            if size >= 1_000_000:
                jobs.append((cur, eod, dtype))
                owner.append(g)
                cur, size = [], 0
        if cur:
            jobs.append((cur, eod, dtype))
            owner.append(g)
    parts: list[list[np.ndarray]] = [[] for _ in groups]
    bar = _bar(sum(len(t) for texts in groups for t in texts), desc, progress)
    results = pool.imap(_encode_chunk, jobs) if pool is not None else map(_encode_chunk, jobs)
    for (raw, n), g in zip(results, owner):
        parts[g].append(np.frombuffer(raw, dtype=dtype))
        bar.update(n)
    bar.close()
    return [np.concatenate(p) if p else np.zeros(0, dtype=dtype) for p in parts]


def encoder_pool(tok_path: Path, workers: int, cache: bool = True):
    """`workers` tokenizer processes (None: encode in this process); cache=False encodes with the
    library alone (tokenizer.DocumentEncoder; for benchmarks and tests)."""
    if workers <= 1:
        _init_worker(str(tok_path), cache)
        return None
    ctx = get_context("fork" if sys.platform == "linux" else "spawn")
    return ctx.Pool(workers, initializer=_init_worker, initargs=(str(tok_path), cache))


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, desc: str, progress: bool):
    if not progress:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, unit="char", unit_scale=True, desc=desc, file=sys.stderr)
