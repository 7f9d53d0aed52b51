"""The fast document encoder gives exactly the ids of the tokenizer.json (the `tokenizers` library)."""
from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from harness.data import prepare as prep
from harness.data import sources
from harness.data import tokenizer as tk

DEFAULT_TOKENIZER = Path(__file__).resolve().parents[1] / "data" / "default" / "tokenizer.json"

# Text where a pre-tokenizer split could go wrong: every whitespace the library's \s knows, and some it
# does not (\x1c-\x1f are str.isspace() but not \s), runs of them before letters, digits, punctuation
# and at the end; contractions; scripts; marks; emoji; the eod token's text inside a document.
TRICKY = [
    "", " ", "  ", "\n", "a", " a", "a ", "a  ", "  a", "\t a", " \ta", "x\r\n  y\r\n",
    "it's they're I'VE we'll 'd 's' ''s don't", "x = f(a,  b)\n\n\n    return  x  \n\t\t}\n",
    "a\u3000b\u3000 c \u3000d\xa0e \xa0 f\u2028g\u2029h\x85i\u2003j\u200bk\u202fl\u205fm\u1680n",
    "a\x1cb \x1d c\x1e\x1f d \x0b\x0c e (.\x1c.) !\x1d? -\x1e\x1f- .\u200b. .\u180e. !\u3000! ;\xa0;",
    "Grüße, 東京は晴れ。 Привет  мир! مرحبا بالعالم 안녕하세요 ελληνικά",
    "e\u0301 n\u0303  \u0915\u094d\u0937 \U0001F600\U0001F44D\U0001F3FD 12\u00b3 \u2167 \u0663\u0664 ½",
    "3.14159 + 2,718 = 5.85959;  x^2 - 4x + 4 = 0 ->  x = 2",
    "before<|endoftext|>after <|endoftext|> <|endoftext|><|endoftext|>x<|endoftext",
    "trailing spaces   \n   \n", " ".join(["=\x1c=\x1c=\x1f=\u200b=\xa0="] * 1000), "\t\t\t", "   leading",
]


def local_texts(per_kind: int) -> list[str]:
    out = []
    for kind in ("python_stdlib", "site_docs", "licences", "math"):
        out += [t for _, t in islice(sources.documents({"kind": kind}, Path("/tmp")), per_kind)]
    return out


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return local_texts(60) + TRICKY


@pytest.fixture(scope="module")
def trained(tmp_path_factory, texts) -> Path:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tk.train_bpe(texts, 1024, path)
    return path


def library_ids(tok, texts: list[str], eod: int) -> np.ndarray:
    enc = tok.encode_batch_fast(texts, add_special_tokens=False)
    return tk.pack_documents([np.asarray(e.ids) for e in enc], eod, np.uint32)


def tokenizers(trained: Path) -> list[Path]:
    return [trained] + ([DEFAULT_TOKENIZER] if DEFAULT_TOKENIZER.is_file() else [])


def test_cached_encoder_gives_the_library_ids(trained, texts):
    for path in tokenizers(trained):
        tok = tk.load(path)
        enc = tk.DocumentEncoder(tok)
        assert enc.cached
        want = library_ids(tok, texts, 0)
        # twice: the second pass reads every span from the cache
        for _ in range(2):
            got = enc.encode_docs(texts, 0, np.uint32)
            assert len(got) == len(want) and np.array_equal(got, want), path
        # the eod token's text in a document is the eod id, as the library has it
        assert (got == 0).sum() > len(texts)
        # one document at a time, and each TRICKY text alone (a fresh cache each time)
        for t in TRICKY:
            one = tk.DocumentEncoder(tok).encode_docs([t], 0, np.uint32)
            assert np.array_equal(one, library_ids(tok, [t], 0)), repr(t)


def test_cache_reset_keeps_ids_exact(trained, texts):
    tok = tk.load(trained)
    enc = tk.DocumentEncoder(tok, max_cached_spans=50)
    want = library_ids(tok, texts, 0)
    got = np.concatenate([enc.encode_docs(texts[i:i + 7], 0, np.uint32) for i in range(0, len(texts), 7)])
    assert np.array_equal(got, want)
    assert len(enc.index) < 50 + 7 * 2000


def test_added_tokens_with_spaces_are_split_off_first(trained, texts):
    tok = tk.load(trained)
    tok.add_special_tokens(["<|sep  x|>", "<| a|>"])
    enc = tk.DocumentEncoder(tok)
    assert enc.cached
    docs = [t.replace("e", "e<|sep  x|> ", 3).replace("a", "\t<| a|>", 2) for t in texts]
    assert np.array_equal(enc.encode_docs(docs, 0, np.uint32), library_ids(tok, docs, 0))


def test_other_tokenizer_shapes_use_the_library(tmp_path, texts):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)  # changes every document's start
    tok.train_from_iterator(texts[:40], trainers.BpeTrainer(vocab_size=400, special_tokens=[tk.EOD],
                                                             show_progress=False))
    enc = tk.DocumentEncoder(tok)
    assert not enc.cached
    assert np.array_equal(enc.encode_docs(texts, 0, np.uint32), library_ids(tok, texts, 0))


def test_encode_all_with_worker_processes_equals_the_library(trained, texts):
    tok = tk.load(trained)
    want = library_ids(tok, texts, 0).astype(np.uint16)
    for workers, cache in ((2, True), (1, True), (1, False)):
        pool = prep.encoder_pool(trained, workers, cache=cache)
        try:
            got = prep.encode_all(texts, pool, 0, np.uint16, "", progress=False)
        finally:
            if pool is not None:
                pool.close()
                pool.join()
        assert got.dtype == np.uint16 and np.array_equal(got, want), (workers, cache)
