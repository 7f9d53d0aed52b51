"""The corpus tokenizer: byte-level BPE trained locally with the `tokenizers` package.

Stored as data/<corpus>/tokenizer.json; its sha256 goes into the manifest and every result row,
so runs on different tokenizers are never fitted together. Id 0 is the end-of-document token.

`DocumentEncoder` is how corpus preparation encodes: the same ids as the tokenizer.json, several
times faster (see bench/README.md, Tokenization).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

EOD = "<|endoftext|>"


def train_bpe(texts: Iterable[str], vocab_size: int, path: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tmp = path.with_name(path.name + ".tmp")
    tok.save(str(tmp))
    os.replace(tmp, path)
    return tok


def load(path: Path):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(str(path))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# Oniguruma's \s, which the `tokenizers` ByteLevel regex uses: \t-\r, NEL and the separators Zs, Zl, Zp.
_WS = "\t-\r\x85\u2028\u2029 \xa0\u1680\u2000-\u200a\u202f\u205f\u3000"
# Spans that are whole runs of the GPT-2 pre-tokenizer's pieces (see DocumentEncoder): a whitespace run
# less its last character where a non-space follows; that character with the non-space run; a final run.
SPANS = re.compile(f"[{_WS}]+(?=[{_WS}][^{_WS}])|[{_WS}]?[^{_WS}]+|[{_WS}]+")


class DocumentEncoder:
    """Documents -> one id array, each document followed by eod: the tokenizer's ids, faster.

    Why it is exact: a byte-level BPE never merges across its pre-tokenizer's pieces, and the GPT-2
    pre-tokenizer regex (`'s|'t|...| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`) never puts
    a non-space and a following space in one piece; of a whitespace run followed by a non-space it
    makes one piece of all but the last character, and that character goes with what follows (or
    stands alone). So the text splits into SPANS at piece boundaries, and a span encoded on its own
    gives the same pieces as in its document (no alternative looks behind, and what follows a span
    is a space or the end). Text repeats its spans (about 10% of them are distinct in 12 MB of mixed
    text), so each distinct span is encoded once, by the library, and looked up after that. Added
    tokens (eod) are split off first, as the library does. A tokenizer of another shape (a
    normalizer, another pre-tokenizer, BPE dropout, added tokens with strip rules) is encoded by the
    library directly. tests/test_data_tokenizer.py holds the two paths to equal ids.
    """

    def __init__(self, tok, max_cached_spans: int = 2_000_000, cache: bool = True):
        self.tok = tok
        self.max_cached_spans = max_cached_spans
        self.cached = cache and _cacheable(tok)  # cache=False: the library alone (the reference)
        if self.cached:
            added = sorted(tok.get_added_tokens_decoder().items(), key=lambda kv: -len(kv[1].content))
            self.added_ids = {a.content: i for i, a in added}
            # the library splits the raw text on added tokens first (leftmost-longest), then pre-tokenizes
            self.added_re = re.compile("(" + "|".join(re.escape(a.content) for _, a in added) + ")") \
                if added else None
            self._reset()

    def _reset(self) -> None:
        self.index: dict = {}  # span -> its row in (starts, lens); None is eod, (content,) an added token
        self.flat = np.zeros(0, dtype=np.int64)  # every cached span's ids, back to back
        self.starts = np.zeros(0, dtype=np.int64)
        self.lens = np.zeros(0, dtype=np.int64)

    def encode_docs(self, texts: list[str], eod: int, dtype) -> np.ndarray:
        if not self.cached:
            enc = self.tok.encode_batch_fast(texts, add_special_tokens=False)
            return pack_documents([np.asarray(e.ids, dtype=dtype) for e in enc], eod, dtype)
        if len(self.index) > self.max_cached_spans:
            self._reset()  # bounded memory on huge corpora; it only costs re-encoding spans
        spans: list = []
        for t in texts:
            self._split(t, spans)
            spans.append(None)
        self._add_new(spans, eod)
        rows = np.fromiter(map(self.index.__getitem__, spans), dtype=np.int64, count=len(spans))
        lens = self.lens[rows]
        ends = np.cumsum(lens)
        # output position k takes flat[starts[row] + k - (first output position of that row)]
        pos = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(self.starts[rows] - (ends - lens), lens)
        return self.flat[pos].astype(dtype)

    def _split(self, text: str, out: list) -> None:
        segments = self.added_re.split(text) if self.added_re is not None else [text]
        for i, seg in enumerate(segments):
            if i % 2:  # an added token (the split's captured separator), keyed apart from text spans
                out.append((seg,))
            elif seg:
                out.extend(SPANS.findall(seg))

    def _add_new(self, spans: list, eod: int) -> None:
        new = [s for s in dict.fromkeys(spans) if s not in self.index]
        if not new:
            return
        ids, lens = [], []
        enc = iter(self.tok.encode_batch_fast([s for s in new if isinstance(s, str)], add_special_tokens=False))
        for s in new:
            x = [eod] if s is None else [self.added_ids[s[0]]] if isinstance(s, tuple) else next(enc).ids
            ids.extend(x)
            lens.append(len(x))
        lens_a = np.asarray(lens, dtype=np.int64)
        self.index.update(zip(new, range(len(self.lens), len(self.lens) + len(new))))
        self.starts = np.concatenate([self.starts, len(self.flat) + np.cumsum(lens_a) - lens_a])
        self.lens = np.concatenate([self.lens, lens_a])
        self.flat = np.concatenate([self.flat, np.asarray(ids, dtype=np.int64)])


def _cacheable(tok) -> bool:
    """Whether the tokenizer is a plain byte-level BPE whose pieces the regex reproduces."""
    cfg = json.loads(tok.to_str())
    pre, model = cfg.get("pre_tokenizer") or {}, cfg.get("model") or {}
    simple_added = all(not (a.get("lstrip") or a.get("rstrip") or a.get("single_word") or a.get("normalized"))
                       for a in cfg.get("added_tokens", []))
    return (cfg.get("normalizer") is None and pre.get("type") == "ByteLevel" and pre.get("use_regex", True)
            and not pre.get("add_prefix_space") and model.get("type") == "BPE" and model.get("dropout") is None
            and simple_added)


def pack_documents(docs: list[np.ndarray], eod: int, dtype) -> np.ndarray:
    """The documents back to back, each followed by eod."""
    out = np.empty(sum(len(d) + 1 for d in docs), dtype=dtype)
    i = 0
    for d in docs:
        out[i:i + len(d)] = d
        out[i + len(d)] = eod
        i += len(d) + 1
    return out
