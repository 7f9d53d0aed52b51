"""Token shards: a flat array of token ids behind a small fixed header, memory-mapped on read.

Layout (little-endian): 64-byte header, then n_tokens ids of `dtype`.
    bytes 0-7   magic b"SMXTOKv1"
    bytes 8-11  uint32 bytes per token (2: uint16, 4: uint32)
    bytes 12-19 uint64 n_tokens
    bytes 20-63 zero
Documents are concatenated, each followed by the corpus' end-of-document token, so a shard
can be cut anywhere and still says where documents end.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

MAGIC = b"SMXTOKv1"
HEADER_BYTES = 64
_HEADER = struct.Struct("<8sIQ")


class ShardError(ValueError):
    pass


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def write_shard(path: str | os.PathLike, tokens: np.ndarray) -> None:
    """Write atomically: a reader never sees a partial shard under the final name."""
    tokens = np.ascontiguousarray(tokens)
    if tokens.dtype not in (np.uint16, np.uint32):
        raise ShardError(f"shard dtype must be uint16 or uint32, got {tokens.dtype}")
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(_HEADER.pack(MAGIC, tokens.dtype.itemsize, tokens.size).ljust(HEADER_BYTES, b"\0"))
        f.write(tokens.tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_shard(path: str | os.PathLike) -> np.ndarray:
    """A read-only memory map of the shard's tokens."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(HEADER_BYTES)
    if len(head) < HEADER_BYTES or head[:8] != MAGIC:
        raise ShardError(f"{path}: not a scalemix token shard (bad header)")
    _, width, n = _HEADER.unpack(head[:_HEADER.size])
    dtype = {2: np.uint16, 4: np.uint32}.get(width)
    if dtype is None:
        raise ShardError(f"{path}: unsupported token width {width}")
    expected = HEADER_BYTES + n * width
    if path.stat().st_size != expected:
        raise ShardError(f"{path}: size {path.stat().st_size} != {expected} bytes for {n} tokens (truncated?)")
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=HEADER_BYTES, shape=(n,))


class ShardWriter:
    """A shard written piece by piece (for corpora too large to hold): the header's token count is filled in
    on close, and the file appears under its final name only then, as with write_shard."""

    def __init__(self, path: str | os.PathLike, dtype):
        self.path, self.dtype, self.n = Path(path), np.dtype(dtype), 0
        if self.dtype not in (np.uint16, np.uint32):
            raise ShardError(f"shard dtype must be uint16 or uint32, got {self.dtype}")
        self.tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        self.f = open(self.tmp, "wb")
        self.f.write(b"\0" * HEADER_BYTES)

    def write(self, tokens: np.ndarray) -> None:
        tokens = np.ascontiguousarray(tokens, dtype=self.dtype)
        self.f.write(tokens.tobytes())
        self.n += tokens.size

    def close(self) -> int:
        self.f.seek(0)
        self.f.write(_HEADER.pack(MAGIC, self.dtype.itemsize, self.n).ljust(HEADER_BYTES, b"\0"))
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        os.replace(self.tmp, self.path)
        return self.n
