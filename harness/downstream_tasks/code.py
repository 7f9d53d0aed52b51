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
from harness.downstream_tasks.pool import multiple_choice, spread

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

    def distractor(j: int) -> str | None:  # a random usable line of another document
        if not lines(j):
            return None
        _, a, b = lines(j)[int(rng.integers(len(lines(j))))]
        return documents[j][a:b]

    docs = []
    for i, (_, content, end) in spread(len(documents), lambda i: [ln for ln in lines(i) if ln[0] >= min_context_chars],
                                       rng):
        if len(docs) == n_docs:
            break
        text = documents[i]
        item = multiple_choice(window(text, content, max_context_chars), text[content:end], document=i,
                               n_documents=len(documents), distractor=distractor, n_choices=n_choices, rng=rng)
        if item is not None:
            docs.append(item)
    return docs
