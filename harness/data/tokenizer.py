"""The corpus tokenizer: byte-level BPE trained locally with the `tokenizers` package.

Stored as data/<corpus>/tokenizer.json; its sha256 goes into the manifest and every result row,
so runs on different tokenizers are never fitted together. Id 0 is the end-of-document token.
"""
from __future__ import annotations

import hashlib
import os
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


def encode(tok, texts: list[str]) -> list[np.ndarray]:
    """Token ids of each text (no special tokens), encoded on all cores by the library."""
    return [np.array(e.ids, dtype=np.uint32) for e in tok.encode_batch_fast(texts, add_special_tokens=False)]
