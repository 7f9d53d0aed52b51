"""Arithmetic multiple choice: "Compute 37 + 45.\nAnswer:" with the true result and three near misses.

The question is worded as in the corpus' generated math domain (harness.data.mathgen), with
small operands so that it separates models at tiny scale: a model that has learnt to add puts more
probability on " 82" than on " 83", " 72" or " 81"; a model that has not is at chance (1/4). All
choices of one question have the same number of digits, so no choice is a prefix of another and
none is favoured by its length.
"""
from __future__ import annotations

import numpy as np

from harness.downstream_tasks.pool import shuffled

OPS = ("+", "-", "*")
TEMPLATE = "Compute {a} {op} {b}.\nAnswer:"  # as harness.data.mathgen writes it; choices are " <n>"


def _question(rng: np.random.Generator, op: str) -> tuple[str, int]:
    if op == "+":
        a, b = (int(x) for x in rng.integers(0, 100, size=2))
        return TEMPLATE.format(a=a, op=op, b=b), a + b
    if op == "-":
        a, b = sorted((int(x) for x in rng.integers(0, 100, size=2)), reverse=True)
        return TEMPLATE.format(a=a, op=op, b=b), a - b
    a, b = int(rng.integers(2, 10)), int(rng.integers(2, 20))
    return TEMPLATE.format(a=a, op=op, b=b), a * b


def _near_misses(rng: np.random.Generator, answer: int, k: int = 3) -> list[int]:
    """k distinct wrong answers with the digit count of `answer`: off by one, two, ten, or random."""
    lo, hi = (0, 9) if answer < 10 else (10 ** (len(str(answer)) - 1), 10 ** len(str(answer)) - 1)
    pool = {answer + d for d in (-1, 1, -2, 2, -10, 10, -11, 11)}
    pool = sorted(x for x in pool if lo <= x <= hi and x != answer)
    picked = [int(x) for x in rng.permutation(pool)[:k]]
    while len(picked) < k:  # few near misses in range (e.g. answer 0): fill with random same-width numbers
        x = int(rng.integers(lo, hi + 1))
        if x != answer and x not in picked:
            picked.append(x)
    return picked


def arith_docs(n_docs: int, seed: int = 1234, ops: tuple[str, ...] = OPS) -> list[dict]:
    """n_docs questions {"context", "choices", "gold"}; a pure function of (n_docs, seed, ops)."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n_docs):
        context, answer = _question(rng, ops[i % len(ops)])
        docs.append(shuffled(context, [f" {x}" for x in [answer] + _near_misses(rng, answer)], rng))
    return docs


def arith_em_docs(n_docs: int, seed: int = 1234, ops: tuple[str, ...] = OPS) -> list[dict]:
    """n_docs questions {"context", "answer", "until"} scored by exact match of a greedy answer: the model
    writes the result itself (no choices to pick from), and its answer ends at the line's end."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n_docs):
        context, answer = _question(rng, ops[i % len(ops)])
        docs.append({"context": context, "answer": f" {answer}", "until": ["\n"]})
    return docs
