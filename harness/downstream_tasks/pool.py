"""Where in the held-out documents a task's items come from: several items per document, distinct documents first.

A domain's held-out split can hold few documents (the demo corpus: 16 code files, 31 licence texts), so one item
per document would leave tasks of 15-30 items, whose accuracies are noise. Instead every document offers many
cut points; items take one cut from each document (in a seeded random order) before a second from any, and cuts
of one document are at least `min_gap` characters apart, so items share no text. Items from one document are
not independent: the reported standard errors, binomial over items, are then somewhat optimistic.

An item's wrong choices are drawn from other documents (`multiple_choice`), and every task shuffles its choices the
same way (`shuffled`), so the gold position is uniform and a pure function of the seed.
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


def multiple_choice(context: str, true: str, *, document: int, n_documents: int,
                    distractor: Callable[[int], str | None], n_choices: int, rng: np.random.Generator) -> dict | None:
    """The item {"context", "choices", "gold"}: `true` and n_choices - 1 distinct wrong choices, each
    distractor(j) of a random document j other than `document` (None where j has nothing to offer), shuffled;
    None when 100 * n_choices draws found too few."""
    choices = [true]
    for _ in range(100 * n_choices):
        if len(choices) == n_choices:
            break
        j = int(rng.integers(n_documents))
        if j == document:
            continue
        candidate = distractor(j)
        if candidate is not None and candidate not in choices:
            choices.append(candidate)
    if len(choices) < n_choices:
        return None
    return shuffled(context, choices, rng)


def shuffled(context: str, choices: Sequence[str], rng: np.random.Generator) -> dict:
    """{"context", "choices", "gold"} with choices[0] the true one, the choices in a seeded random order."""
    order = rng.permutation(len(choices))
    return {"context": context, "choices": [choices[k] for k in order], "gold": int(np.flatnonzero(order == 0)[0])}
