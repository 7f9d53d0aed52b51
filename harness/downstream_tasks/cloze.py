"""Next-words cloze per domain, built from held-out documents of the corpus.

A question is the start of a held-out document (cut at a word boundary) and four candidate
continuations of `n_words` words: the document's own next words, and spans of the same number of
words taken from three other documents of the same domain. A model that has learnt the domain's
local structure picks the true continuation; chance is 1/4. Choices differ in length, so the
headline metric is lm-eval's `acc_norm` (log-likelihood per character).

Held-out documents are never trained on, and the questions are a pure function of the corpus and
the seed, so every run of a sweep answers the same questions. A document gives several questions
(harness.downstream_tasks.pool) when the domain has fewer documents than questions asked for.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

import numpy as np

from harness.downstream_tasks.pool import multiple_choice, spread

WORD = re.compile(r"\s+\S+")


class HeldoutDocuments(Sequence[str]):
    """The documents of the first `max_tokens` held-out tokens (split at eod), decoded on first use."""

    def __init__(self, tokens: np.ndarray, eod_id: int, decode: Callable[[list[int]], str],
                 max_tokens: int = 4_000_000):
        self.tokens = np.asarray(tokens[:max_tokens])
        ends = np.flatnonzero(self.tokens == eod_id)
        starts, stops = np.concatenate([[0], ends + 1]), np.concatenate([ends, [len(self.tokens)]])
        self.bounds = [(int(a), int(b)) for a, b in zip(starts, stops) if b > a]
        self.decode = decode
        self.texts: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.bounds)

    def __getitem__(self, i: int) -> str:
        if i not in self.texts:
            a, b = self.bounds[i]
            self.texts[i] = self.decode(self.tokens[a:b].tolist())
        return self.texts[i]


def _spans(text: str, n_words: int, max_chars: int) -> list[tuple[int, int]]:
    """(start, end) of every run of n_words whitespace-led words, at most max_chars long."""
    words = [m.span() for m in WORD.finditer(text)]
    out = []
    for i in range(len(words) - n_words + 1):
        start, end = words[i][0], words[i + n_words - 1][1]
        if end - start <= max_chars:
            out.append((start, end))
    return out


def cloze_docs(documents: Sequence[str], n_docs: int, seed: int = 1234, n_words: int = 4,
               min_context_chars: int = 64, max_context_chars: int = 1024,
               max_continuation_chars: int = 80, n_choices: int = 4) -> list[dict]:
    """Up to n_docs questions {"context", "choices", "gold"}, spread over the documents (harness.downstream_tasks.pool).

    The context is the document's text before the cut, at most max_context_chars of it (starting at a word)."""
    rng = np.random.default_rng(seed)
    spans = functools.cache(lambda i: _spans(documents[i], n_words, max_continuation_chars))
    docs = []
    for i, (start, end) in spread(len(documents), lambda i: [s for s in spans(i) if s[0] >= min_context_chars], rng):
        if len(docs) == n_docs:
            break
        text = documents[i]
        true = text[start:end]
        lead = true[: len(true) - len(true.lstrip())]  # the same leading whitespace for every choice

        def distractor(j: int, lead: str = lead) -> str | None:  # a random span of another document
            if not spans(j):
                return None
            a, b = spans(j)[int(rng.integers(len(spans(j))))]
            return lead + documents[j][a:b].lstrip()

        item = multiple_choice(window(text, start, max_context_chars), true, document=i, n_documents=len(documents),
                               distractor=distractor, n_choices=n_choices, rng=rng)
        if item is not None:
            docs.append(item)
    return docs


def window(text: str, end: int, max_chars: int) -> str:
    """text[:end], or its last max_chars characters starting at a word (after a whitespace) when longer."""
    if end <= max_chars:
        return text[:end]
    start = end - max_chars
    m = re.search(r"\s", text[start:end])
    return text[start + m.end() if m else start:end]
