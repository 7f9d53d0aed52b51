"""Bits per byte on held-out documents of one domain (text_<domain>): pieces of held-out documents, each
scored token by token once after an eod, as in training. No accuracy: the continuous metric only."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.downstream_tasks.pool import spread


def text_docs(documents: Sequence[str], n_docs: int, seed: int = 1234, min_chars: int = 64,
              max_chars: int = 2000) -> list[dict]:
    """Up to n_docs held-out texts {"text"}: pieces of max_chars characters (whole pieces, or a document's shorter
    remainder of at least min_chars), spread over the documents (harness.downstream_tasks.pool)."""
    rng = np.random.default_rng(seed)

    def pieces(i: int) -> list[int]:
        n = len(documents[i])
        return [a for a in range(0, n, max_chars) if min(n, a + max_chars) - a >= min_chars]
    return [{"text": documents[i][a:a + max_chars]}
            for _, (i, a) in zip(range(n_docs), spread(len(documents), pieces, rng, lambda a: a, max_chars))]
