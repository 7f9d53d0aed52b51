"""Documents from columnar corpora, read a batch or a shard at a time (never the whole corpus in memory):

    {kind: parquet, path: /data/c4, column: text}    .parquet files (the Hugging Face datasets layout) or
                                                     Arrow IPC .arrow files (file or stream format), one
                                                     document per row of the text column
    {kind: mds, path: /data/mds, column: text}       a MosaicML streaming (MDS) dataset directory: index.json
                                                     and its shards, one document per sample

`path` is a file or a directory (searched recursively; files in sorted path order; an MDS directory may
hold several datasets, each an index.json, read in sorted order). Rows and samples keep their order,
so the same text given as .jsonl builds a byte-identical corpus (tests/test_columnar.py).

The MDS reader implements the format the `streaming` library writes (its MDSWriter, format version 2),
not the library (importing it pulls in transformers and torchvision): index.json lists the shards, each
with its column names/encodings/sizes, sample count, raw file (and compressed `zip_data` file), and a
shard file is: uint32 sample count n; n + 1 uint32 absolute offsets of the samples; the JSON config; the
samples. A sample is one uint32 length per variable-size column (in column order), then each column's
bytes. Text columns may be encoded `str` (UTF-8) or `bytes` (decoded as UTF-8). Shards compressed with
zstd (needs the zstandard package), gz or bz2 are read; other codecs are refused with the fix.
`check_source` checks everything it can before any document is read: the column, the encodings, that
each shard named in index.json exists with the byte size and sample count the index records.
"""
from __future__ import annotations

import bz2
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

Doc = tuple[str, str]
PARQUET_SUFFIXES = (".parquet", ".arrow")
TEXT_ENCODINGS = ("str", "bytes")
BATCH_ROWS = 1024


class ColumnarError(ValueError):
    pass


# ---- parquet / arrow --------------------------------------------------------------------------
def parquet_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ColumnarError(f"{root}: no such file or directory; point the source's `path` at a .parquet/.arrow "
                            "file or a directory of them")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in PARQUET_SUFFIXES)
    if not files:
        raise ColumnarError(f"{root}: no .parquet or .arrow files found")
    return files


def _arrow_reader(path: Path):
    import pyarrow as pa
    import pyarrow.ipc as ipc
    try:
        return ipc.open_file(pa.memory_map(str(path)))
    except pa.ArrowInvalid:   # the Hugging Face datasets cache writes the streaming format
        return ipc.open_stream(pa.memory_map(str(path)))


def _schema(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        return pq.read_schema(path) if path.suffix == ".parquet" else _arrow_reader(path).schema
    except (pa.ArrowException, OSError) as e:
        raise ColumnarError(f"{path}: unreadable ({type(e).__name__}: {e})") from e


def check_parquet(root: Path, column: str) -> list[Path]:
    """The files, after checking that each has `column` as a string column (ColumnarError naming the fix)."""
    import pyarrow as pa
    files = parquet_files(root)
    for p in files:
        schema = _schema(p)
        if column not in schema.names:
            raise ColumnarError(f"{p}: no column {column!r} (columns: {schema.names}); set the source's `column` "
                                f"to the text column")
        t = schema.field(column).type
        if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)):
            raise ColumnarError(f"{p}: column {column!r} is {t}, not text; set `column` to a string column")
    return files


def parquet_documents(root: Path, column: str = "text") -> Iterator[Doc]:
    import pyarrow.parquet as pq
    for p in check_parquet(root, column):
        rel = p.name if root.is_file() else str(p.relative_to(root))
        if p.suffix == ".parquet":
            batches = pq.ParquetFile(p).iter_batches(batch_size=BATCH_ROWS, columns=[column])
        else:
            reader = _arrow_reader(p)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches)) \
                if hasattr(reader, "num_record_batches") else reader
        row = 0
        for batch in batches:
            for text in batch.column(batch.schema.get_field_index(column)).to_pylist():
                if text is not None:   # a null is no document (the .jsonl path has no such row)
                    yield f"{rel}:{row}", text
                row += 1


# ---- MDS ----------------------------------------------------------------------------------------
def mds_indexes(root: Path) -> list[Path]:
    if root.is_file() and root.name == "index.json":
        return [root]
    if not root.is_dir():
        raise ColumnarError(f"{root}: not a directory; point the source's `path` at an MDS dataset directory "
                            "(the one holding index.json)")
    found = sorted(root.rglob("index.json"))
    if not found:
        raise ColumnarError(f"{root}: no index.json found; is it an MDS (MosaicML streaming) dataset?")
    return found


def _shards(index: Path) -> list[dict]:
    try:
        obj = json.loads(index.read_text())
        shards = obj["shards"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ColumnarError(f"{index}: not an MDS index ({type(e).__name__}: {e})") from e
    return shards


def _shard_file(index: Path, shard: dict) -> tuple[Path, str | None, int | None]:
    """(file to read, its compression or None, the byte size index.json records for it)."""
    raw, zipped = shard.get("raw_data") or {}, shard.get("zip_data")
    raw_path = index.parent / raw.get("basename", "")
    if raw.get("basename") and raw_path.is_file():
        return raw_path, None, raw.get("bytes")
    if zipped:
        return index.parent / zipped["basename"], shard.get("compression"), zipped.get("bytes")
    return raw_path, None, raw.get("bytes")


def _decompress(data: bytes, codec: str, path: Path) -> bytes:
    algo = codec.split(":")[0]
    if algo == "zstd":
        try:
            import zstandard
        except ImportError as e:
            raise ColumnarError(f"{path}: zstd-compressed shard needs the `zstandard` package") from e
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if algo == "gz":
        return gzip.decompress(data)
    if algo == "bz2":
        return bz2.decompress(data)
    raise ColumnarError(f"{path}: shard compression {codec!r} is not supported (zstd, gz, bz2 are); rewrite the "
                        "dataset with one of those, or uncompressed")


def check_mds(root: Path, column: str) -> list[tuple[Path, list[dict]]]:
    """Every index and its shards, after checking the index against the shards on disk (ColumnarError)."""
    out, bad = [], []
    for index in mds_indexes(root):
        shards = _shards(index)
        for i, s in enumerate(shards):
            where = f"{index} shard {i}"
            if s.get("format") != "mds":
                bad.append(f"{where}: format {s.get('format')!r}, not 'mds' (only MDS shards are read)")
                continue
            names, encodings = s.get("column_names", []), s.get("column_encodings", [])
            if column not in names:
                bad.append(f"{where}: no column {column!r} (columns: {names}); set the source's `column`")
                continue
            if encodings[names.index(column)] not in TEXT_ENCODINGS:
                bad.append(f"{where}: column {column!r} is encoded {encodings[names.index(column)]!r}, not text "
                           f"({' or '.join(TEXT_ENCODINGS)})")
            path, codec, size = _shard_file(index, s)
            if not path.is_file():
                bad.append(f"{where}: {path.name} is missing: the index does not match its shards (copy the "
                           "whole dataset directory)")
                continue
            if size is not None and path.stat().st_size != size:
                bad.append(f"{where}: {path.name} is {path.stat().st_size} bytes, index.json says {size}: the index "
                           "does not match its shards (truncated or replaced shard?)")
                continue
            if codec is None:
                with open(path, "rb") as f:
                    n = int(np.frombuffer(f.read(4), np.uint32)[0]) if size != 0 else 0
                if n != s.get("samples"):
                    bad.append(f"{where}: {path.name} holds {n} samples, index.json says {s.get('samples')}: the "
                               "index does not match its shards")
        out.append((index, shards))
    if bad:
        raise ColumnarError("MDS dataset does not match its index (nothing was read):\n  " + "\n  ".join(bad))
    return out


def _samples(data: bytes, shard: dict, column: str, where: str) -> Iterator[str]:
    n = int(np.frombuffer(data[:4], np.uint32)[0])
    if n != shard["samples"]:
        raise ColumnarError(f"{where}: holds {n} samples, index.json says {shard['samples']}: the index does not "
                            "match its shards")
    offsets = np.frombuffer(data[4:4 + 4 * (n + 1)], np.uint32)
    names, sizes = shard["column_names"], shard["column_sizes"]
    col = names.index(column)
    variable = [j for j, s in enumerate(sizes) if s is None]
    for i in range(n):
        sample = memoryview(data)[offsets[i]:offsets[i + 1]]
        lengths = np.frombuffer(sample[:4 * len(variable)], np.uint32)
        size = dict(zip(variable, lengths.tolist()))
        pos = 4 * len(variable)
        for j in range(col):
            pos += sizes[j] if sizes[j] is not None else size[j]
        width = sizes[col] if sizes[col] is not None else size[col]
        yield bytes(sample[pos:pos + width]).decode("utf-8")


def mds_documents(root: Path, column: str = "text") -> Iterator[Doc]:
    for index, shards in check_mds(root, column):
        rel = index.parent.name if root.is_dir() and index.parent == root else str(index.parent)
        for i, s in enumerate(shards):
            path, codec, _ = _shard_file(index, s)
            data = path.read_bytes()   # one shard at a time (the writer's size_limit, 64 MiB by default)
            if codec:
                data = _decompress(data, codec, path)
            for j, text in enumerate(_samples(data, s, column, f"{index} shard {i}")):
                yield f"{rel}/{i}:{j}", text
