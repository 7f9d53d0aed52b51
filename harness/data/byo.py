"""Bring your own data: a domain from a directory of text, or of pre-tokenized shards.

Text: `.txt` (one document per file) and `.jsonl` (one document per line, in its `text` field),
each optionally compressed (`.gz`, `.bz2`, `.xz`, `.zst` when the zstandard package is there).
Pre-tokenized: nanoGPT-style `.bin` files (a raw array of uint16 or uint32 token ids, documents
separated by the corpus' end-of-document id), or scalemix shards (harness.data.shards).
Errors are raised before anything is tokenized or trained, naming the path and the fix.
"""
from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from harness.data.shards import MAGIC, read_shard

TEXT_SUFFIXES = (".txt", ".jsonl")
READ_ERRORS = (OSError, UnicodeDecodeError, EOFError, lzma.LZMAError, zlib.error)
COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


class ByoError(ValueError):
    pass


def _opener(path: Path):
    if path.suffix == ".zst":
        try:
            import zstandard
        except ImportError as e:
            raise ByoError(f"{path}: .zst needs the `zstandard` package (pip install zstandard)") from e
        return lambda p: io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(open(p, "rb")), encoding="utf-8")
    if path.suffix in COMPRESSED:
        return lambda p: COMPRESSED[path.suffix](p, "rt", encoding="utf-8")
    return lambda p: open(p, encoding="utf-8")


def _base_suffix(path: Path) -> str:
    s = path.suffixes
    if s and s[-1] in (*COMPRESSED, ".zst"):
        s = s[:-1]
    return s[-1] if s else ""


def text_files(root: Path) -> list[Path]:
    """The text files of a BYO directory; errors for a missing or empty directory."""
    if not root.is_dir():
        raise ByoError(f"{root}: not a directory; point the domain's `path` at a directory of .txt/.jsonl files")
    files = sorted(p for p in root.rglob("*") if p.is_file() and _base_suffix(p) in TEXT_SUFFIXES)
    if not files:
        raise ByoError(f"{root}: no .txt or .jsonl files (optionally .gz/.bz2/.xz/.zst) found; "
                       "is it the right directory?")
    return files


def check_readable(files: list[Path]) -> None:
    """Open and decode the start of every file now, so a bad file stops preparation before any work."""
    bad = []
    for p in files:
        try:
            with _opener(p)(p) as f:
                f.read(4096)
        except (*READ_ERRORS, ByoError) as e:
            bad.append(f"{p}: {type(e).__name__}: {e}")
    if bad:
        raise ByoError("unreadable input file(s) (fix or remove them):\n  " + "\n  ".join(bad))


def text_documents(root: Path) -> Iterator[tuple[str, str]]:
    files = text_files(root)
    check_readable(files)
    for p in files:
        rel = str(p.relative_to(root))
        try:
            with _opener(p)(p) as f:
                if _base_suffix(p) == ".txt":
                    yield rel, f.read()
                    continue
                for i, line in enumerate(f):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise ByoError(f"{p}:{i + 1}: not valid JSON ({e.msg})") from e
                    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                        raise ByoError(f"{p}:{i + 1}: a .jsonl line needs a string `text` field")
                    yield f"{rel}:{i}", obj["text"]
        except READ_ERRORS as e:
            raise ByoError(f"{p}: unreadable ({type(e).__name__}: {e})") from e


# ---- pre-tokenized ----------------------------------------------------------------------------
def token_files(root: Path) -> list[Path]:
    if not root.is_dir():
        raise ByoError(f"{root}: not a directory; point the domain's `path` at a directory of .bin token shards")
    files = sorted(root.rglob("*.bin"))
    if not files:
        raise ByoError(f"{root}: no .bin token shards found")
    return files


def read_tokens(path: Path, dtype: str) -> np.ndarray:
    """A memmap of a .bin shard: a scalemix shard (by its magic) or a raw nanoGPT array of `dtype`."""
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic == MAGIC:
        return read_shard(path)
    dt = np.dtype(dtype)
    size = path.stat().st_size
    if size % dt.itemsize:
        raise ByoError(f"{path}: {size} bytes is not a whole number of {dtype} tokens; is `dtype` right?")
    if size == 0:
        raise ByoError(f"{path}: empty shard")
    return np.memmap(path, dtype=dt, mode="r")


def token_documents(root: Path, dtype: str, vocab_size: int, eod_id: int) -> Iterator[tuple[str, np.ndarray]]:
    """Documents of a pre-tokenized domain, split at eod_id (the eod itself is dropped; prepare adds it back)."""
    if dtype not in ("uint16", "uint32"):
        raise ByoError(f"dtype={dtype!r}: pre-tokenized shards are uint16 or uint32")
    if dtype == "uint16" and vocab_size > 2**16:
        raise ByoError(f"vocab_size={vocab_size} does not fit in uint16 shards (max 65536 ids); "
                       "write the shards as uint32 and set dtype: uint32")
    if not 0 <= eod_id < vocab_size:
        raise ByoError(f"eod_id={eod_id}: must be a token id below vocab_size={vocab_size}")
    for p in token_files(root):
        toks = read_tokens(p, dtype)
        hi = int(toks.max())
        if hi >= vocab_size:
            raise ByoError(f"{p}: holds token id {hi} >= vocab_size={vocab_size}; wrong tokenizer or vocab_size?")
        ends = np.flatnonzero(toks == eod_id)
        start = 0
        for j, e in enumerate([*ends.tolist(), len(toks)]):
            if e > start:
                yield f"{p.name}:{j}", np.asarray(toks[start:e])
            start = e + 1
