"""Where in the held-out documents a task's items come from: several items per document, distinct documents first.

A domain's held-out split can hold few documents (the demo corpus: 16 code files, 31 licence texts), so one item
per document would leave tasks of 15-30 items, whose accuracies are noise. Instead every document offers many
cut points; items take one cut from each document (in a seeded random order) before a second from any, and cuts
of one document are at least `min_gap` characters apart, so items share no text. Items from one document are
not independent: the reported standard errors, binomial over items, are then somewhat optimistic.
"""
from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence

import numpy as np


def spread(n_documents: int, cuts: Callable[[int], Sequence], rng: np.random.Generator,
           position: Callable[[object], int] = lambda c: c[0], min_gap: int = 512) -> Iterator[tuple[int, object]]:
    """(document, cut) pairs: round after round over the documents (seeded order), each round taking one more
    cut from every document that still has one at least min_gap characters from those it gave. A document's
    cuts are tried in a seeded random order, each at most once (cost linear in the number of cuts)."""
    order = rng.permutation(n_documents).tolist()
    queues: dict[int, Iterator] = {}
    taken: dict[int, list[int]] = {}
    while order:
        still = []
        for i in order:
            if i not in queues:
                options = list(cuts(i))
                queues[i] = iter([options[k] for k in rng.permutation(len(options))])
            near = taken.setdefault(i, [])
            for cut in queues[i]:
                p = position(cut)
                k = bisect.bisect(near, p)
                if (k == 0 or p - near[k - 1] >= min_gap) and (k == len(near) or near[k] - p >= min_gap):
                    near.insert(k, p)
                    still.append(i)
                    yield i, cut
                    break
        order = still
