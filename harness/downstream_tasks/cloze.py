"""Next-words cloze per domain, built from held-out documents of the corpus.

A question is the start of a held-out document (cut at a word boundary) and four candidate
continuations of `n_words` words: the document's own next words, and spans of the same number of
words taken from three other documents of the same domain. A model that has learnt the domain's
local structure picks the true continuation; chance is 1/4. Choices differ in length, so the
headline metric is lm-eval's `acc_norm` (log-likelihood per character).

Held-out documents are never trained on, and the questions are a pure function of the corpus and
the seed, so every run of a sweep answers the same questions.
"""
from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

WORD = re.compile(r"\s+\S+")


def heldout_documents(tokens: np.ndarray, eod_id: int, decode: Callable[[list[int]], str],
                      max_tokens: int = 4_000_000) -> list[str]:
    """Texts of the documents in the first `max_tokens` held-out tokens (split at eod)."""
    tokens = np.asarray(tokens[:max_tokens])
    ends = np.flatnonzero(tokens == eod_id)
    starts = np.concatenate([[0], ends + 1])
    stops = np.concatenate([ends, [len(tokens)]])
    return [decode(tokens[a:b].tolist()) for a, b in zip(starts, stops) if b > a]


def _spans(text: str, n_words: int, max_chars: int) -> list[tuple[int, int]]:
    """(start, end) of every run of n_words whitespace-led words, at most max_chars long."""
    words = [m.span() for m in WORD.finditer(text)]
    out = []
    for i in range(len(words) - n_words + 1):
        start, end = words[i][0], words[i + n_words - 1][1]
        if end - start <= max_chars:
            out.append((start, end))
    return out


def cloze_docs(documents: list[str], n_docs: int, seed: int = 1234, n_words: int = 4,
               min_context_chars: int = 64, max_context_chars: int = 1024,
               max_continuation_chars: int = 80, n_choices: int = 4) -> list[dict]:
    """Up to n_docs questions {"context", "choices", "gold"} from distinct documents."""
    rng = np.random.default_rng(seed)
    spans = [_spans(t, n_words, max_continuation_chars) for t in documents]
    # a question needs a cut inside [min, max] context chars; any span of a document can be a distractor
    cuts = [[s for s in sp if min_context_chars <= s[0] <= max_context_chars] for sp in spans]
    askable = [i for i, c in enumerate(cuts) if c]
    donors = [i for i, sp in enumerate(spans) if sp]
    if len(donors) < n_choices:
        return []
    docs = []
    for i in rng.permutation(askable)[:n_docs]:
        text = documents[i]
        start, end = cuts[i][int(rng.integers(len(cuts[i])))]
        true = text[start:end]
        lead = true[: len(true) - len(true.lstrip())]  # the same leading whitespace for every choice
        choices = [true]
        for _ in range(100 * n_choices):  # resample the rare distractor equal to a chosen one
            if len(choices) == n_choices:
                break
            j = int(rng.choice(donors))
            if j == i:
                continue
            a, b = spans[j][int(rng.integers(len(spans[j])))]
            candidate = lead + documents[j][a:b].lstrip()
            if candidate not in choices:
                choices.append(candidate)
        if len(choices) < n_choices:
            continue
        order = rng.permutation(n_choices)
        docs.append({"context": text[:start], "choices": [choices[k] for k in order],
                     "gold": int(np.flatnonzero(order == 0)[0])})
    return docs
