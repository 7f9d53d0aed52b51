"""Next-line code completion by log-likelihood, built from held-out documents of a code domain.

A question is the start of a held-out source file cut at the end of a line (the next line's indentation
included in the context), and four candidate next lines: the file's own next line and three lines of other
files of the domain (stripped of their indentation, at least `min_line_chars` long). A model that has learnt
the language's structure and the file's names picks the true line; chance is 1/4. Lines differ in length, so
the headline metric is acc_norm (log-likelihood per character), as for the cloze tasks.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np

from harness.downstream_tasks.cloze import window
from harness.downstream_tasks.pool import spread

INDENT = re.compile(r"[ \t]*")


def _lines(text: str, min_line_chars: int, max_line_chars: int) -> list[tuple[int, int, int]]:
    """(line start, content start after the indentation, line end) of each usable line."""
    out, start = [], 0
    for line in text.split("\n"):
        content = start + INDENT.match(line).end()
        end = start + len(line)
        if min_line_chars <= end - content <= max_line_chars:
            out.append((start, content, end))
        start = end + 1
    return out


def code_docs(documents: Sequence[str], n_docs: int, seed: int = 1234, min_context_chars: int = 64,
              max_context_chars: int = 1024, min_line_chars: int = 8, max_line_chars: int = 100,
              n_choices: int = 4) -> list[dict]:
    """Up to n_docs questions {"context", "choices", "gold"}, spread over the documents (harness.downstream_tasks.pool)."""
    rng = np.random.default_rng(seed)
    lines = functools.cache(lambda i: _lines(documents[i], min_line_chars, max_line_chars))
    docs = []
    for i, (_, content, end) in spread(len(documents), lambda i: [ln for ln in lines(i) if ln[0] >= min_context_chars],
                                       rng):
        if len(docs) == n_docs:
            break
        text = documents[i]
        choices = [text[content:end]]
        for _ in range(100 * n_choices):   # distractors: a random usable line of a random other document
            if len(choices) == n_choices:
                break
            j = int(rng.integers(len(documents)))
            if j == i or not lines(j):
                continue
            _, a, b = lines(j)[int(rng.integers(len(lines(j))))]
            if documents[j][a:b] not in choices:
                choices.append(documents[j][a:b])
        if len(choices) < n_choices:
            continue
        order = rng.permutation(n_choices)
        docs.append({"context": window(text, content, max_context_chars), "choices": [choices[k] for k in order],
                     "gold": int(np.flatnonzero(order == 0)[0])})
    return docs
