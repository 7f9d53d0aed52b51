"""A generated math domain: arithmetic and elementary algebra worked in plain text.

Each document is a short worksheet of problems with answers, drawn from a seeded generator,
so the domain has any size and is identical on every machine. Licence: CC0 (generated).
"""
from __future__ import annotations

import math
import random
from collections.abc import Iterator
from fractions import Fraction


def _int(r: random.Random, digits: int) -> int:
    return r.randint(10 ** (digits - 1) if digits > 1 else 0, 10 ** digits - 1)


def _arith(r: random.Random) -> str:
    a, b = _int(r, r.randint(1, 5)), _int(r, r.randint(1, 5))
    op = r.choice("+-*")
    if op == "*":
        a, b = _int(r, r.randint(1, 3)), _int(r, r.randint(1, 3))
    val = {"+": a + b, "-": a - b, "*": a * b}[op]
    return f"Compute {a} {op} {b}.\nAnswer: {val}"


def _division(r: random.Random) -> str:
    b = r.randint(2, 99)
    a = r.randint(b, 99999)
    q, rem = divmod(a, b)
    return f"Divide {a} by {b}.\nAnswer: {a} = {b} * {q} + {rem}, so the quotient is {q} and the remainder is {rem}."


def _fraction(r: random.Random) -> str:
    x = Fraction(r.randint(1, 20), r.randint(2, 20))
    y = Fraction(r.randint(1, 20), r.randint(2, 20))
    op = r.choice("+-*/")
    val = {"+": x + y, "-": x - y, "*": x * y, "/": x / y}[op]
    return f"Simplify {x} {op} {y}.\nAnswer: {val}"


def _gcd(r: random.Random) -> str:
    k = r.randint(1, 30)
    a, b = k * r.randint(1, 60), k * r.randint(1, 60)
    return (f"Find the greatest common divisor and least common multiple of {a} and {b}.\n"
            f"Answer: gcd({a}, {b}) = {math.gcd(a, b)}; lcm({a}, {b}) = {a * b // math.gcd(a, b)}")


def _linear(r: random.Random) -> str:
    x = r.randint(-20, 20)
    a = r.choice([i for i in range(-9, 10) if i])
    b = r.randint(-50, 50)
    c = a * x + b
    return (f"Solve for x: {a}x {'+' if b >= 0 else '-'} {abs(b)} = {c}.\n"
            f"Answer: {a}x = {c - b}, so x = {x}.")


def _poly(r: random.Random) -> str:
    p, q = r.randint(-9, 9), r.randint(-9, 9)
    s, t = p + q, p * q
    sign = lambda v: f"+ {v}" if v >= 0 else f"- {-v}"
    return (f"Expand (x {sign(p)})(x {sign(q)}).\n"
            f"Answer: x^2 {sign(s)}x {sign(t)}")


def _sequence(r: random.Random) -> str:
    a, d, n = r.randint(-20, 20), r.randint(-9, 9), r.randint(5, 8)
    terms = [a + i * d for i in range(n)]
    return (f"What comes next in the sequence {', '.join(map(str, terms))}?\n"
            f"Answer: {a + n * d} (the difference is {d}).")


def _base(r: random.Random) -> str:
    v, b = r.randint(1, 5000), r.choice([2, 8, 16])
    digits = {2: bin, 8: oct, 16: hex}[b](v)[2:]
    return f"Write {v} in base {b}.\nAnswer: {digits}"


def _word(r: random.Random) -> str:
    name = r.choice(["Ada", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goro", "Hana"])
    item = r.choice(["apples", "books", "coins", "stamps", "marbles"])
    a, b, c = r.randint(2, 50), r.randint(2, 30), r.randint(2, 9)
    return (f"{name} has {a} {item}, buys {b} more, then gives away a {c}th share of them, rounded down. "
            f"How many are left?\nAnswer: {a} + {b} = {a + b}; {a + b} // {c} = {(a + b) // c}; "
            f"{a + b} - {(a + b) // c} = {a + b - (a + b) // c}.")


PROBLEMS = (_arith, _division, _fraction, _gcd, _linear, _poly, _sequence, _base, _word)


def math_documents(total_bytes: int, seed: int = 0) -> Iterator[str]:
    """Worksheets of 8-24 problems until about `total_bytes` of text."""
    r = random.Random(seed)
    made, n = 0, 0
    while made < total_bytes:
        n += 1
        lines = [f"Worksheet {n}"]
        for i in range(r.randint(8, 24)):
            lines.append(f"Problem {i + 1}. " + r.choice(PROBLEMS)(r))
        doc = "\n\n".join(lines) + "\n"
        made += len(doc)
        yield doc
