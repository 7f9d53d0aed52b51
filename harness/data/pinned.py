"""Pinned text: documents the repository ships, so that a corpus built from them is the same on every machine.

The demo corpus was once extracted from the machine's own files (the interpreter's stdlib, site-packages docs,
/usr/share/doc): two machines with another Python patch version, other pip packages or other apt packages built
two different corpora, and fitted two different laws. Its text is now frozen once into small xz-compressed JSON
lines files under harness/data/pinned/<name>/ (one {"id", "text"} object a line), and a recipe names each file with
its sha256:

    {kind: pinned, file: demo/code.jsonl.xz, sha256: 3f2a...}

A file whose bytes do not match the pin is refused before anything is read (a source that could silently differ
is what this replaces). `python -m harness.data.freeze freeze` wrote the demo's files on one machine
(harness/data/pinned/demo/SOURCES.md says which, and under which licences); run it again only to make a new,
differently named corpus version, and pin the new hashes in its recipe.
"""
from __future__ import annotations

import hashlib
import json
import lzma
from collections.abc import Iterator
from pathlib import Path

from harness.data.errors import SourceError

PINNED = Path(__file__).resolve().parent / "pinned"


class PinnedError(SourceError):
    pass


def resolve(file: str) -> Path:
    p = Path(file)
    return p if p.is_absolute() else PINNED / p


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check(src: dict) -> Path:
    """The source's file, after checking that it exists and that its sha256 is the recipe's pin."""
    file, want = src.get("file"), str(src.get("sha256", ""))
    if not file or len(want) != 64:
        raise PinnedError(f"pinned source {src}: needs `file` (under {PINNED}) and its 64-hex-digit `sha256`")
    path = resolve(str(file))
    if not path.is_file():
        raise PinnedError(f"pinned source {file}: {path} is missing; it ships with the repository (git checkout it)")
    got = sha256_file(path)
    if got != want:
        raise PinnedError(f"pinned source {file}: sha256 {got[:16]}... is not the recipe's {want[:16]}...: the file "
                          "was changed; restore it (git checkout), or, for a new corpus version, pin the new sha256 "
                          "in a recipe of another name")
    return path


def documents(src: dict) -> Iterator[tuple[str, str]]:
    path = check(src)
    with lzma.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            yield doc["id"], doc["text"]
