"""Reader of a prepared corpus directory (see DESIGN.md, "Corpus").

    data/<corpus>/manifest.json
    data/<corpus>/tokenizer.json
    data/<corpus>/<domain>/train.bin  heldout.bin     (token shards, harness.data.shards)

manifest.json:
    {"name": str, "vocab_size": int, "eod_id": int, "tokenizer_sha256": str, "corpus_sha256": str,
     "domains": {<domain>: {"train_tokens": int, "heldout_tokens": int,
                            "source": str, "licence": str, ...}}}
"""
from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path

import numpy as np

from harness.data.shards import read_shard


class CorpusError(ValueError):
    pass


def data_root() -> Path:
    """Where corpora are built and looked up by name: $SCALEMIX_DATA, else ./data."""
    return Path(os.environ.get("SCALEMIX_DATA", "data"))


def build_hint(corpus: str) -> str:
    """How to build the corpus named `corpus` (the make target where there is one)."""
    make = {"default": " (`make data`)", "demo": " (`make demo` builds it first)"}.get(corpus, "")
    return f"`python -m harness.data.prepare corpus={corpus}`{make}"


def resolve_corpus_path(corpus: str, data_root: str | Path = "data") -> Path:
    """A corpus named in a spec is a directory under data_root, or a path."""
    p = Path(corpus)
    if p.is_dir():
        return p
    q = Path(data_root) / corpus
    if q.is_dir():
        return q
    raise CorpusError(f"data.corpus={corpus!r}: no corpus directory at {q} (nor at {p}); "
                      f"build it with {build_hint(corpus)}, or set $SCALEMIX_DATA to where it lives")


class Corpus:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        mf = self.path / "manifest.json"
        if not mf.is_file():
            raise CorpusError(f"{self.path}: no manifest.json; is this a prepared corpus? "
                              f"Build one with {build_hint(self.path.name)}.")
        self.manifest = json.loads(mf.read_text())
        self.name: str = self.manifest.get("name", self.path.name)
        self.vocab_size: int = int(self.manifest["vocab_size"])
        self.eod_id: int = int(self.manifest["eod_id"])
        self.tokenizer_sha256: str = self.manifest.get("tokenizer_sha256", "")
        self.corpus_sha256: str = self.manifest.get("corpus_sha256", "")   # "" for corpora built before it existed
        self.domains: list[str] = sorted(self.manifest["domains"])
        tok = self.path / "tokenizer.json"
        if tok.is_file() and self.tokenizer_sha256:  # a swapped tokenizer would silently change every loss
            import hashlib
            got = hashlib.sha256(tok.read_bytes()).hexdigest()
            if got != self.tokenizer_sha256:
                raise CorpusError(f"{tok}: sha256 {got[:16]}... differs from the manifest's "
                                  f"{self.tokenizer_sha256[:16]}...; the corpus was modified: rebuild it with "
                                  f"`python -m harness.data.prepare corpus={self.name} force=true`")

    @cached_property
    def _train(self) -> dict[str, np.ndarray]:
        return {d: read_shard(self.path / d / "train.bin") for d in self.domains}

    @cached_property
    def _heldout(self) -> dict[str, np.ndarray]:
        return {d: read_shard(self.path / d / "heldout.bin") for d in self.domains}

    def train(self, domain: str) -> np.ndarray:
        return self._train[domain]

    def heldout(self, domain: str) -> np.ndarray:
        return self._heldout[domain]


EOD_SCAN_TOKENS = 1 << 22   # a prepared shard ends every document with EOD: one turns up long before this


def document_mask_errors(corpus: Corpus) -> list[str]:
    """data.document_mask=on finds documents by the corpus' EOD token: every domain's train and held-out
    shards must hold it (looked for in their first EOD_SCAN_TOKENS tokens)."""
    missing = [f"{d}/{split}" for d in corpus.domains for split, toks in
               (("train", corpus.train(d)), ("heldout", corpus.heldout(d)))
               if len(toks) and not (np.asarray(toks[:EOD_SCAN_TOKENS]) == corpus.eod_id).any()]
    if not missing:
        return []
    return [f"data.document_mask=on: corpus {corpus.name!r} has no end-of-document token (eod_id={corpus.eod_id}, "
            f"manifest.json) in {', '.join(missing)}, so its document boundaries are unknown: set "
            f"data.document_mask=off, or rebuild the corpus with the right eod_id for its pre-tokenized domains"]


def open_corpus(corpus: str, data_root: str | Path) -> Corpus | None:
    """The corpus a spec names, or None when it is not built here (callers that must have it use
    Corpus(resolve_corpus_path(...)) and get the error that says how to build it)."""
    try:
        return Corpus(resolve_corpus_path(corpus, data_root))
    except CorpusError:
        return None


def current_tokenizer_sha256(corpus: str, data_root: str | Path) -> str | None:
    """The tokenizer hash of the corpus a spec names, or None when it is not built here or unreadable
    (a status query must not fail on a half-built corpus)."""
    try:
        c = open_corpus(corpus, data_root)
    except (OSError, ValueError, KeyError):
        return None
    return c.tokenizer_sha256 if c else None


def stale_result_reason(result: dict, tokenizer_sha256: str | None) -> str | None:
    """Why a finished result no longer matches the corpus on disk (None when it does, or can't tell).

    run_id hashes the spec, which names the corpus but not its contents: a rebuilt corpus with
    another tokenizer keeps the ids, so a stored result must also match the tokenizer it was trained
    with. We refuse rather than retrain over it, so no result is lost silently.
    """
    old = result.get("tokenizer_sha256")
    if not old or not tokenizer_sha256 or old == tokenizer_sha256:
        return None
    return (f"result.json was trained on corpus {result.get('corpus')!r} with tokenizer {old[:12]}, but that "
            f"corpus now has tokenizer {tokenizer_sha256[:12]} (it was rebuilt): move the old sweep directory "
            f"aside or pick another sweep name (sweep.name=...)")
