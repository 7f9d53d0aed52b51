"""Contamination check: the token n-grams of every downstream item that also occur in the corpus' training shards.

    python -m harness.downstream_tasks.overlap <corpus> [--tasks suite] [--n 8] [--items 500] [--out DIR]

An item's text (context and correct answer; a text_<domain> piece) is tokenized with the corpus tokenizer, as the
shards are; its n-grams (n tokens) are hashed (a polynomial hash mod 2^64), and each domain's training tokens are
scanned with the same rolling hash in chunks (numpy, n passes per chunk). Per item: the fraction of its n-grams
found in training; per task: items, items with any n-gram found ("contaminated"), the mean overlap fraction.
Items shorter than n tokens cannot be checked and are counted as such. Held-out documents are never trained on,
but text repeats across documents (licence boilerplate, generated math with the arithmetic tasks' own template):
the check says how much of each task a model could have seen. Writes <out>/downstream_contamination.json, which
the report's downstream section shows (analysis/laws/downstream_report.py).
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

FILE = "downstream_contamination.json"
DEFAULT_N = 8                 # tokens: the arithmetic questions are ~10-15 tokens long, so 13 (GPT-3's) skips them
PRIME = np.uint64(1099511628211)
CHUNK = 1 << 23               # training tokens hashed at once (8M: ~64 MB per uint64 array)


def item_text(item: dict) -> str:
    if "text" in item:
        return item["text"]
    if "choices" in item:
        return item["context"] + item["choices"][item["gold"]]
    return item["context"] + item["answer"]


def ngram_hashes(tokens: np.ndarray, n: int) -> np.ndarray:
    """Hash of every n-gram of `tokens` (len - n + 1 values; empty when shorter than n), uint64 wrapping arithmetic."""
    t = np.asarray(tokens, dtype=np.uint64)
    if len(t) < n:
        return np.empty(0, np.uint64)
    h = np.zeros(len(t) - n + 1, np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * PRIME + t[j:len(t) - n + 1 + j] + np.uint64(1)
    return h


def found_in(train: Sequence[np.ndarray], wanted: np.ndarray, n: int) -> np.ndarray:
    """The hashes of `wanted` (sorted unique) that occur among the n-grams of the training arrays."""
    hit = np.zeros(len(wanted), bool)
    for tokens in train:
        for start in range(0, max(1, len(tokens) - n + 1), CHUNK):
            h = ngram_hashes(tokens[start:start + CHUNK + n - 1], n)
            hit[np.searchsorted(wanted, h[np.isin(h, wanted)])] = True
    return wanted[hit]


def overlap(items: dict[str, list[dict]], encode, train: Sequence[np.ndarray], n: int = DEFAULT_N) -> dict:
    """{task: {"items", "checked", "contaminated", "contaminated_frac", "over_half_frac", "mean_overlap",
    "per_item"}}: contaminated = any n-gram found (long items nearly always share a phrase with training);
    over_half = more than half of the item's n-grams found."""
    hashes = {t: [ngram_hashes(np.array(encode(item_text(it)), np.int64), n) for it in its] for t, its in items.items()}
    wanted = np.unique(np.concatenate([h for hs in hashes.values() for h in hs] or [np.empty(0, np.uint64)]))
    seen = found_in(train, wanted, n)   # sorted: membership by binary search (np.isin would sort it per item)

    def found(h: np.ndarray) -> np.ndarray:
        k = np.minimum(np.searchsorted(seen, h), max(len(seen) - 1, 0))
        return seen[k] == h if len(seen) else np.zeros(len(h), bool)
    out = {}
    for task, hs in hashes.items():
        per = [float(found(h).mean()) if len(h) else None for h in hs]
        checked = [p for p in per if p is not None]
        dirty = sum(p > 0 for p in checked)
        out[task] = {"items": len(hs), "checked": len(checked), "contaminated": dirty,
                     "contaminated_frac": dirty / len(checked) if checked else None,
                     "over_half_frac": sum(p > 0.5 for p in checked) / len(checked) if checked else None,
                     "mean_overlap": float(np.mean(checked)) if checked else None, "per_item": per}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from harness.downstream import as_corpus, load_tokenizer
    from harness.downstream_tasks import DEFAULT_ITEMS, build_suite, check_tasks

    p = argparse.ArgumentParser(prog="python -m harness.downstream_tasks.overlap", description=__doc__.split("\n")[0])
    p.add_argument("corpus", help="corpus name under the data root, or its path")
    p.add_argument("--tasks", default="suite", help="comma-separated task names (default: suite)")
    p.add_argument("--n", type=int, default=DEFAULT_N, help=f"n-gram length in tokens (default {DEFAULT_N})")
    p.add_argument("--items", type=int, default=DEFAULT_ITEMS, help="items per task, as evaluated")
    p.add_argument("--out", type=Path, help=f"directory for {FILE} (e.g. the sweep dir; default: print only)")
    a = p.parse_args(argv)
    if a.n < 1:
        p.error(f"--n={a.n}: must be at least 1")
    corpus = as_corpus(a.corpus)
    tasks = tuple(a.tasks.split(","))
    check_tasks(tasks, corpus.domains)
    tok = load_tokenizer(corpus)
    suite = build_suite(tasks, domains=corpus.domains, heldout=corpus.heldout, eod_id=corpus.eod_id,
                        decode=tok.decode, n_items=a.items)
    result = overlap(suite.items, tok.encode, [corpus.train(d) for d in corpus.domains], a.n)
    data = {"corpus": corpus.name, "suite": suite.fingerprint, "n": a.n, "tasks": result}
    for task, r in result.items():
        frac = "–" if r["contaminated_frac"] is None else f"{r['contaminated_frac']:.1%}"
        half = "–" if r["over_half_frac"] is None else f"{r['over_half_frac']:.1%}"
        print(f"{task:16s} items {r['items']:4d}  checked {r['checked']:4d}  with a training {a.n}-gram {frac:>6s}  "
              f"over half of them {half:>6s}  mean overlap {r['mean_overlap'] or 0:.3f}")
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / FILE).write_text(json.dumps(data))
        print(f"wrote {a.out / FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
