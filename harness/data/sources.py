"""Where a domain's documents come from: offline sources and their extractors.

A source is a dict from a corpus recipe (conf/data/recipes/*.yaml), e.g.
    {kind: python_stdlib}                       the interpreter's own standard library (.py)
    {kind: pydoc_topics}                        the Python reference topics shipped with the stdlib
    {kind: site_docs}                           .md/.rst/.txt files and package descriptions in site-packages
    {kind: licences}                            licence texts on the machine (common-licenses, dist-info)
    {kind: math, bytes: 5e6}                    generated arithmetic and algebra (harness.data.mathgen)
    {kind: pinned, file: demo/code.jsonl.xz, sha256: ...}
                                                text the repository ships, checked against its pin (harness.data.pinned)
    {kind: apt, packages: [dict-wn], include: ["*.dict.dz"], format: dictd}
                                                Debian packages, fetched with `apt-get download`
    {kind: text_dir, path: /my/data}            bring your own: .txt / .jsonl (`text`) / compressed
    {kind: parquet, path: /my/pq, column: text} parquet / Arrow files, one document per row (harness.data.columnar)
    {kind: mds, path: /my/mds, column: text}    a MosaicML streaming (MDS) dataset, one document per sample
Every source yields (identifier, text) documents. File-based sources visit files in the order of a
hash of their path, so a byte cap takes a spread of the source rather than its first directory.
"""
from __future__ import annotations

import gzip
import hashlib
import html
import os
import re
import sys
import sysconfig
from collections.abc import Callable, Iterator
from fnmatch import fnmatch
from pathlib import Path

from harness.data import byo
from harness.data.errors import SourceError  # callers catch it as sources.SourceError
from harness.data.mathgen import math_documents

Doc = tuple[str, str]

MAX_DOC_CHARS = 32_000   # longer files are cut at line breaks: a held-out split by document stays fine-grained
MIN_DOC_CHARS = 64


def hashed_order(paths) -> list[Path]:
    return sorted(paths, key=lambda p: hashlib.sha1(str(p).encode()).digest())


def chunk(ident: str, text: str, limit: int = MAX_DOC_CHARS) -> Iterator[Doc]:
    """Cut a long text at line breaks into pieces of at most about `limit` characters."""
    text = text.replace("\x00", "").strip()
    if len(text) < MIN_DOC_CHARS:
        return
    if len(text) <= limit:
        yield ident, text
        return
    start, part = 0, 0
    while start < len(text):
        end = len(text) if len(text) - start <= limit else (text.rfind("\n", start + limit // 2, start + limit) + 1
                                                             or start + limit)
        piece = text[start:end].strip()
        if len(piece) >= MIN_DOC_CHARS:
            yield f"{ident}#{part}", piece
        part += 1
        start = end


def read_text(path: Path) -> str | None:
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError):
            return None
    if b"\x00" in raw[:4096]:
        return None  # binary
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def walk(root: Path, skip_dirs: frozenset = frozenset()) -> Iterator[Path]:
    """Files under root, not descending into directories named in skip_dirs."""
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x not in skip_dirs and x != "__pycache__"]
        for f in files:
            yield Path(d) / f


def files_docs(root: Path, match: Callable[[Path], bool], convert=lambda s: s,
               skip_dirs: frozenset = frozenset()) -> Iterator[Doc]:
    # symlinks are aliases (man pages link one page under several names), not documents of their own
    paths = [p for p in walk(root, skip_dirs) if match(p) and not p.is_symlink() and p.is_file()]
    for p in hashed_order(paths):
        text = read_text(p)
        if text:
            yield from chunk(str(p.relative_to(root)), convert(text))


# ---- local sources (no network) -------------------------------------------------------------
def _stdlib() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _site_dirs() -> list[Path]:
    dirs = {Path(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}
    return sorted(d for d in dirs if d.is_dir())


def python_stdlib(_: dict) -> Iterator[Doc]:
    yield from files_docs(_stdlib(), lambda p: p.suffix == ".py", skip_dirs=frozenset({"site-packages", "dist-packages"}))


def pydoc_topics(_: dict) -> Iterator[Doc]:
    from pydoc_data.topics import topics
    for name in sorted(topics):
        yield from chunk(f"pydoc:{name}", topics[name])


DOC_SUFFIXES = {".md", ".rst", ".txt"}


def _metadata_description(text: str) -> str:
    head, _, body = text.partition("\n\n")  # the long description follows the header block
    return body


def site_docs(_: dict) -> Iterator[Doc]:
    licence_like = re.compile(r"(licen[cs]e|copying|notice|authors)", re.I)
    for root in _site_dirs():
        yield from files_docs(root, lambda p: (p.suffix.lower() in DOC_SUFFIXES and not licence_like.search(p.name)
                                               and "entry_points" not in p.name and "top_level" not in p.name
                                               and p.name not in ("RECORD", "requirements.txt", "SOURCES.txt")))
        yield from files_docs(root, lambda p: p.name in ("METADATA", "PKG-INFO"), _metadata_description)


def licences(_: dict) -> Iterator[Doc]:
    pat = re.compile(r"^(licen[cs]e|copying|notice|copyright)", re.I)
    roots = [Path("/usr/share/common-licenses"), _stdlib(), *_site_dirs(), Path("/usr/share/doc")]
    for root in roots:
        if not root.is_dir():
            continue
        if root == _stdlib():
            for p in (root / "LICENSE.txt",):
                if p.is_file():
                    yield from chunk(str(p), read_text(p) or "")
            continue
        match = (lambda p: True) if root.name == "common-licenses" else (lambda p: bool(pat.match(p.name)))
        yield from files_docs(root, match)


def math_source(src: dict) -> Iterator[Doc]:
    for i, doc in enumerate(math_documents(int(float(src.get("bytes", 1e6))), seed=int(src.get("seed", 0)))):
        yield f"math:{i}", doc


def pinned(src: dict) -> Iterator[Doc]:
    from harness.data.pinned import documents as pinned_documents
    yield from pinned_documents(src)


def text_dir(src: dict) -> Iterator[Doc]:
    yield from byo.text_documents(Path(src["path"]).expanduser())


def parquet(src: dict) -> Iterator[Doc]:
    from harness.data.columnar import parquet_documents
    yield from parquet_documents(Path(src["path"]).expanduser(), str(src.get("column", "text")))


def mds(src: dict) -> Iterator[Doc]:
    from harness.data.columnar import mds_documents
    yield from mds_documents(Path(src["path"]).expanduser(), str(src.get("column", "text")))


def check(src: dict) -> None:
    """Errors a columnar or pinned source can show before any document is read (ColumnarError, PinnedError)."""
    from harness.data import columnar
    if src.get("kind") == "pinned":
        from harness.data.pinned import check as check_pinned
        check_pinned(src)
    if src.get("kind") == "parquet":
        columnar.check_parquet(Path(src["path"]).expanduser(), str(src.get("column", "text")))
    elif src.get("kind") == "mds":
        columnar.check_mds(Path(src["path"]).expanduser(), str(src.get("column", "text")))


# ---- Debian packages ------------------------------------------------------------------------
ROFF_ESCAPE = re.compile(r"\\(?:f[BIRP1-4]|f\(..|s[+-]?\d|\(..|\*\(..|\*.|[&|^e\-])")
TAG = re.compile(r"<(script|style|nav|header|footer)\b.*?</\1>|<[^>]+>", re.S | re.I)


ROFF_TEXT_MACROS = {"SH", "SS", "B", "I", "BR", "RB", "BI", "IB", "IR", "RI", "SM", "SB", "IP", "TP", "UR", "MT",
                    "Nm", "Nd", "Ar", "Fl", "Sh", "Ss", "Xr", "Pa", "Va", "Fn", "Fa", "Ic", "Cm", "Em", "Dq", "Ql"}


def roff_to_text(s: str) -> str:
    """Man page source to plain text: drop the macro preamble and control lines, keep macro text."""
    start = re.search(r"^\.(SH|Sh)\b", s, flags=re.M)
    s = s[start.start():] if start else s           # pod2man and friends open with macro definitions
    out = []
    for line in s.splitlines():
        if line.startswith((".", "'")):
            name, _, arg = line[1:].lstrip().partition(" ")
            if name not in ROFF_TEXT_MACROS:
                continue
            line = arg.replace('"', "")
        out.append(ROFF_ESCAPE.sub(lambda m: "-" if m.group(0) == "\\-" else "", line))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out))


def html_to_text(s: str) -> str:
    s = TAG.sub(" ", s)
    s = html.unescape(s)
    s = re.sub(r"[ \t]+", " ", s)
    return re.sub(r"\n\s*\n+", "\n\n", s)


def dictd_entries(dict_path: Path, group: int = 24) -> Iterator[Doc]:
    """Entries of a dictd dictionary (.dict.dz is gzip; the .index gives word, offset, length in base64)."""
    index = dict_path.with_name(dict_path.name.replace(".dict.dz", ".index").replace(".dict", ".index"))
    data = gzip.decompress(dict_path.read_bytes()) if dict_path.suffix == ".dz" else dict_path.read_bytes()
    entries = []
    for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[0].startswith("00-database") or parts[0].startswith("00database"):
            continue
        off, n = _b64(parts[1]), _b64(parts[2])
        entries.append(data[off:off + n].decode("utf-8", errors="replace"))
    entries = list(dict.fromkeys(entries))  # an entry is indexed under each of its headwords
    for i in range(0, len(entries), group):  # a document is a run of consecutive entries
        text = "\n".join(entries[i:i + group])
        text = DICT_TAGS.sub("", text)
        text = DICT_PRON.sub("", text)
        text = text.replace("{", "").replace("}", "")
        yield from chunk(f"{dict_path.name}:{i}", text)


DICT_TAGS = re.compile(r"\[(?:1[89]\d\d Webster|WordNet[^\]\n]*|PJC|[A-Z]{2,4})\]")   # GCIDE/WordNet source tags
DICT_PRON = re.compile(r"\\[^\\\n]{1,80}\\,?")                                        # \Wa"ter*mel`on\ headword markup

_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _b64(s: str) -> int:
    v = 0
    for c in s.strip():
        v = v * 64 + _B64[c]
    return v


CONVERT = {"text": lambda s: s, "roff": roff_to_text, "html": html_to_text}


def apt_source(src: dict, cache: Path) -> Iterator[Doc]:
    from harness.data.apt import fetch_packages
    fmt = src.get("format", "text")
    include = list(src.get("include", ["*"]))
    exclude = list(src.get("exclude", []))
    for _pkg, root in fetch_packages(list(src["packages"]), cache).items():
        def match(p: Path, root=root) -> bool:
            rel = str(p.relative_to(root))
            return any(fnmatch(rel, g) for g in include) and not any(fnmatch(rel, g) for g in exclude)
        if fmt == "dictd":
            for p in hashed_order(p for p in root.rglob("*.dict.dz") if match(p)):
                yield from dictd_entries(p)
        else:
            yield from files_docs(root, match, CONVERT[fmt])


LOCAL = {"python_stdlib": python_stdlib, "pydoc_topics": pydoc_topics, "site_docs": site_docs,
         "licences": licences, "math": math_source, "pinned": pinned, "text_dir": text_dir, "parquet": parquet, "mds": mds}
STREAMED = ("parquet", "mds")   # sources too large to hold: prepare reads them twice instead (harness.data.streamed)

DEFAULT_LICENCE = {"python_stdlib": "PSF-2.0", "pydoc_topics": "PSF-2.0",
                   "site_docs": "mixed: each package's own licence", "licences": "licence texts (verbatim copies)",
                   "math": "CC0 (generated)", "pinned": "see harness/data/pinned/<corpus>/SOURCES.md", "text_dir": "user-supplied", "apt": "see the Debian package copyright",
                   "parquet": "user-supplied", "mds": "user-supplied"}


def describe(src: dict) -> str:
    kind = src["kind"]
    if kind == "apt":
        return "debian:" + ",".join(src["packages"])
    if kind == "python_stdlib":
        return f"python{sys.version_info.major}.{sys.version_info.minor} stdlib"
    if kind == "text_dir":
        return f"dir:{src['path']}"
    if kind == "pinned":
        return f"pinned:{src.get('file')}@{str(src.get('sha256', ''))[:12]}"
    if kind in STREAMED:
        return f"{kind}:{src['path']}[{src.get('column', 'text')}]"
    return kind


def documents(src: dict, cache: Path) -> Iterator[Doc]:
    kind = src.get("kind")
    if kind == "apt":
        return apt_source(src, cache)
    if kind not in LOCAL:
        raise SourceError(f"source kind {kind!r}: unknown; use one of {sorted(LOCAL) + ['apt', 'tokens']}")
    return LOCAL[kind](src)
