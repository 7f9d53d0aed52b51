"""Freeze the demo corpus's text: write harness/data/pinned/<name>/*.jsonl.xz from this machine's files.

Run once by a maintainer (`python -m harness.data.freeze freeze`) to make a new, differently named corpus version;
harness.data.pinned then reads and checks those files on every machine. Apart from harness.data.pinned because it
reads the machine's files through harness.data.sources, which itself reads pinned sources.
"""
from __future__ import annotations

import argparse
import ast
import json
import lzma
import sys
from collections.abc import Iterator
from pathlib import Path

from harness.data.pinned import PINNED, sha256_file
from harness.data.prepare import Tally, admit


def _signature(node) -> str:
    if isinstance(node, ast.ClassDef):
        bases = ", ".join(ast.unparse(b) for b in node.bases)
        return f"class {node.name}({bases})" if bases else f"class {node.name}"
    return f"def {node.name}({ast.unparse(node.args)})"


def docstrings(module: str, source: str) -> str | None:
    """A module's documentation as its docstrings: the module's, then each class's and function's under its
    signature, in source order (help()-like text, without the code)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    parts = []
    if doc := ast.get_docstring(tree):
        parts.append(f"{module}\n\n{doc}")

    def visit(body, prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                if doc := ast.get_docstring(node):
                    parts.append(f"{prefix}{_signature(node)}\n    " + doc.replace("\n", "\n    "))
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{prefix}{node.name}.")
    visit(tree.body, f"{module}.")
    return "\n\n".join(parts) if len(parts) > 1 else None


def frozen_demo(cap: float) -> dict[str, Iterator[tuple[str, str]]]:
    """The demo's three text domains from this machine's files, each deduplicated and capped at `cap` bytes: code
    is stdlib modules in hashed order, docs the pydoc topics and the docstrings of the modules code did not take
    (so that no text is in both), prose the licence texts."""
    from pydoc_data.topics import topics

    from harness.data import sources
    stdlib = sources._stdlib()
    skip = frozenset({"site-packages", "dist-packages"})
    py = [p for p in sources.hashed_order(sources.walk(stdlib, skip)) if p.suffix == ".py" and not p.is_symlink()]
    code = list(capped((d for p in py if (text := sources.read_text(p))
                        for d in sources.chunk(str(p.relative_to(stdlib)), text)), cap))
    taken = {ident.split("#")[0] for ident, _ in code}

    def docs():
        for name in sorted(topics):
            yield from sources.chunk(f"pydoc:{name}", topics[name])
        for p in py:
            rel = str(p.relative_to(stdlib))
            module = rel[:-3].replace("/", ".").removesuffix(".__init__")
            if rel not in taken and (text := sources.read_text(p)) and (doc := docstrings(module, text)):
                yield from sources.chunk(f"doc:{rel}", doc)

    return {"code": iter(code), "docs": capped(docs(), cap), "prose": capped(sources.licences({}), cap)}


def capped(docs: Iterator[tuple[str, str]], cap: float) -> Iterator[tuple[str, str]]:
    """The documents with text, each the first of its bytes (prepare's deduplication, within this domain), until
    `cap` bytes are taken."""
    seen, tally = set(), Tally()
    for ident, text in docs:
        data = text.encode("utf-8", errors="replace")
        if not text.strip() or admit(data, seen, tally) is None:
            continue
        yield ident, data.decode("utf-8")
        if tally.bytes >= cap:
            return


def write(out: Path, domains: dict[str, Iterator[tuple[str, str]]]) -> dict[str, dict]:
    """Each domain to out/<domain>.jsonl.xz (deterministic bytes: no timestamp in the xz stream)."""
    out.mkdir(parents=True, exist_ok=True)
    info = {}
    for name, docs in domains.items():
        lines = [json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in docs]
        raw = "".join(lines).encode("utf-8")
        path = out / f"{name}.jsonl.xz"
        path.write_bytes(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME))
        info[name] = {"file": f"{out.name}/{path.name}", "sha256": sha256_file(path), "documents": len(lines),
                      "text_bytes": len(raw), "xz_bytes": path.stat().st_size}
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.data.freeze", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("freeze", help="write the demo's pinned text from this machine's files")
    f.add_argument("--out", default=str(PINNED / "demo"))
    f.add_argument("--bytes", type=float, default=3.3e6, help="text bytes per domain (default 3.3e6)")
    a = p.parse_args(argv)
    info = write(Path(a.out), frozen_demo(a.bytes))
    print(json.dumps({"python": sys.version.split()[0], "domains": info}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
