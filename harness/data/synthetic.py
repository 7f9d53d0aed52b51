"""A tiny generated corpus for tests: each domain is a distinct, learnable token process."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.data.shards import dtype_for_vocab, write_shard


def make_synthetic_corpus(path: str | Path, domains=("alpha", "beta", "gamma"), vocab_size: int = 256,
                          train_tokens: int = 200_000, heldout_tokens: int = 20_000, seed: int = 0) -> Path:
    """Write a corpus directory whose domains are order-1 Markov chains with different tables.

    Documents end with eod_id = vocab_size - 1, as in a real prepared corpus.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    eod = vocab_size - 1
    manifest = {"name": path.name, "vocab_size": vocab_size, "eod_id": eod,
                "tokenizer_sha256": "synthetic", "domains": {}}
    for i, dom in enumerate(domains):
        (path / dom).mkdir(parents=True, exist_ok=True)
        # a sparse transition table: each token has 4 likely successors, different per domain
        succ = rng.integers(0, vocab_size - 1, size=(vocab_size, 4))
        for split, n in (("train", train_tokens), ("heldout", heldout_tokens)):
            toks = np.empty(n, dtype=np.int64)
            t = int(rng.integers(0, vocab_size - 1))
            choice = rng.integers(0, 4, size=n)
            ends = rng.random(n) < 1 / 200
            for j in range(n):
                if ends[j]:
                    toks[j] = eod
                    t = int(rng.integers(0, vocab_size - 1))
                else:
                    t = int(succ[t, choice[j]])
                    toks[j] = t
            write_shard(path / dom / f"{split}.bin", toks.astype(dtype_for_vocab(vocab_size)))
        manifest["domains"][dom] = {"train_tokens": train_tokens, "heldout_tokens": heldout_tokens,
                                    "source": f"synthetic Markov chain #{i}", "licence": "CC0"}
    (path / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return path
