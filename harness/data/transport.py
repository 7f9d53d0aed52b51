"""Carry a built corpus to a machine without package access; rebuild its shards there bit for bit.

    python -m harness.data.transport pack data/large large.tar.xz         # large.tar.xz, or parts of <= 40 MiB
    python -m harness.data.transport unpack large.tar.xz* --out data/large # every shard checked against the manifest
    python -m harness.data.transport verify data/large                     # a built corpus against its manifest

The archive is a tar, xz-compressed (-9e), of the corpus' manifest.json, tokenizer.json and its shards
(`--form tokens`, the default) or, with `--form text`, each split's documents as UTF-8
(`<domain>/<split>.txt`, with `.lens`: each document's byte length, uint32). On 1M-token samples of each
domain of the large corpus, the shards compressed 1-6% smaller than the text and 2-3 times faster, and they
need no encoding on the receiving side (bench/README.md, "Large corpus and corpus transport"), so text is the
exception. With --form text, pack decodes each shard and, unless --no-verify, encodes the text again
(harness.data.encode, what the receiver runs) and keeps a split as text only when it gives exactly the shard's
ids; unpack encodes it. Either way unpack refuses (exit 1, nothing left at --out) unless every rebuilt shard's
sha256 equals the manifest's.

An archive larger than --part-mib is cut into parts `<out>.part<k>of<n>`, each with a small header
(pack id, part number, payload sha256), so that each part travels alone; unpack takes every part, in any
order, and names the missing or corrupt ones. The receiving side needs numpy and `tokenizers` only
(no yaml, hydra or tqdm).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import shutil
import sys
import tarfile
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from harness.data import tokenizer as tk
from harness.data.shards import HEADER_BYTES, read_shard, write_shard

FORMAT = "scalemix.transport/1"
INDEX = "transport.json"
SPLITS = ("train", "heldout")
PART_MAGIC = b"SMXPART1"
MIB = 1 << 20
DEFAULT_PART_MIB = 40        # one call to the GPU machine carries 64 MiB in all, the working tree (~4 MB) and the
                             # study's state (<= 16 MiB) included
XZ_PRESET = 9 | lzma.PRESET_EXTREME
SEGMENT_BYTES = 48 * MIB     # the tar is compressed in independent xz streams of about this size, one per process


class TransportError(RuntimeError):
    pass


# ---- the corpus' files --------------------------------------------------------------------------
def shard_sha256(path: Path) -> str:
    return tk.sha256_file(path)


def corpus_problems(corpus: Path) -> list[str]:
    """Every file of a built corpus whose sha256 differs from its manifest's (an empty list: it matches)."""
    m = json.loads((corpus / "manifest.json").read_text())
    out = []
    tok = corpus / "tokenizer.json"
    if m.get("tokenizer_sha256") and tok.is_file() and tk.sha256_file(tok) != m["tokenizer_sha256"]:
        out.append(f"{tok}: sha256 differs from the manifest's tokenizer_sha256")
    for d, info in sorted(m["domains"].items()):
        for split in SPLITS:
            p = corpus / d / f"{split}.bin"
            want = info.get(f"{split}_sha256")
            if want is None:
                out.append(f"{p}: the manifest records no {split}_sha256 (a corpus built before hashes were "
                           "recorded: rebuild it with harness.data.prepare force=true)")
            elif not p.is_file():
                out.append(f"{p}: missing")
            elif (got := shard_sha256(p)) != want:
                out.append(f"{p}: sha256 {got[:16]}... but the manifest says {want[:16]}...")
    return out


# ---- shards <-> documents as text ---------------------------------------------------------------
def split_at_eod(ids: np.ndarray, eod: int) -> list[np.ndarray]:
    """The pieces between eod tokens (a shard ends with eod; a piece may be empty)."""
    cuts = np.flatnonzero(ids == eod)
    if len(ids) and (not len(cuts) or cuts[-1] != len(ids) - 1):
        raise TransportError("a shard that does not end with eod cannot be carried as text")
    return [ids[a + 1:b] for a, b in zip(np.r_[-1, cuts[:-1]], cuts)]


def decode_pieces(tok, pieces: list[np.ndarray], batch: int = 4096) -> list[str]:
    out = []
    for i in range(0, len(pieces), batch):
        out += tok.decode_batch([p.tolist() for p in pieces[i:i + batch]], skip_special_tokens=False)
    return out


def text_blob(texts: list[str]) -> tuple[bytes, bytes]:
    """(the texts' UTF-8 back to back, each one's byte length as uint32 little-endian)."""
    raw = [t.encode("utf-8") for t in texts]
    return b"".join(raw), np.array([len(r) for r in raw], dtype="<u4").tobytes()


def text_from_blob(blob: bytes, lens: bytes) -> list[str]:
    n = np.frombuffer(lens, dtype="<u4").astype(np.int64)
    ends = np.cumsum(n)
    if len(ends) and ends[-1] != len(blob):
        raise TransportError(f"text stream of {len(blob)} bytes but its lengths add up to {int(ends[-1])}")
    return [blob[a:b].decode("utf-8") for a, b in zip(np.r_[0, ends[:-1]], ends)]


def byte_level(tok) -> bool:
    """Whether decoding gives text that encodes back to the same ids (a byte-level BPE)."""
    cfg = json.loads(tok.to_str())
    return (cfg.get("decoder") or {}).get("type") == "ByteLevel" and (cfg.get("pre_tokenizer") or {}).get(
        "type") == "ByteLevel" and cfg.get("normalizer") is None


# ---- pack ---------------------------------------------------------------------------------------
@dataclass
class Stream:
    domain: str
    split: str
    form: str          # text | tokens
    tokens: int
    sha256: str        # of the shard file
    members: dict      # tar member name -> bytes
    note: str = ""


def pack(corpus: Path, out: Path, form: str = "tokens", verify: bool = True, workers: int = 0,
         part_mib: float = DEFAULT_PART_MIB, preset: int = XZ_PRESET, log=print) -> dict:
    """Write the corpus as `out` (or its parts); returns the index, with sizes and times under "pack"."""
    t0 = time.time()
    workers = workers or os.cpu_count() or 1
    index, members = archive_members(Path(corpus), form, verify, workers, log)
    t_decode = time.time() - t0
    payload, group_bytes = compress_tar(members, workers, preset, tokens=form == "tokens")
    t_xz = time.time() - t0 - t_decode
    paths = write_parts(payload, Path(out), part_mib, index["manifest_sha256"])
    index["pack"] = {"files": [str(p) for p in paths], "bytes": len(payload),
                     "raw_bytes": sum(len(v) for _, v in members),
                     "shard_bytes": sum(HEADER_BYTES + s["tokens"] * np.dtype(index["dtype"]).itemsize
                                        for s in index["streams"]),
                     "domain_bytes": group_bytes, "decode_verify_s": round(t_decode, 1), "xz_s": round(t_xz, 1),
                     "seconds": round(time.time() - t0, 1), "workers": workers}
    return index


def archive_members(corpus: Path, form: str = "tokens", verify: bool = True, workers: int = 1,
                    log=print) -> tuple[dict, list[tuple[str, bytes]]]:
    """The archive's index and its members (name, bytes), in archive order, before compression."""
    if not (corpus / "manifest.json").is_file():
        raise TransportError(f"{corpus}: no manifest.json; build the corpus first (python -m harness.data.prepare)")
    if form not in ("text", "tokens"):
        raise TransportError(f"--form {form!r}: use text or tokens")
    manifest_bytes = (corpus / "manifest.json").read_bytes()
    m = json.loads(manifest_bytes)
    if problems := [p for p in corpus_problems(corpus) if "records no" not in p]:
        raise TransportError("the corpus differs from its manifest, so it cannot be carried as built:\n  "
                             + "\n  ".join(problems))
    tok_path = corpus / "tokenizer.json"
    tok = tk.load(tok_path)
    if form == "text" and not byte_level(tok):
        log("the tokenizer is not a byte-level BPE: carrying token shards")
        form = "tokens"
    eod, dtype = int(m["eod_id"]), None
    streams: list[Stream] = []
    pool = None
    if form == "text" and verify:
        from harness.data.encode import encode_all, encoder_pool
        pool = encoder_pool(tok_path, workers)
    try:
        for d in sorted(m["domains"]):
            for split in SPLITS:
                path = corpus / d / f"{split}.bin"
                ids = np.asarray(read_shard(path))
                dtype = ids.dtype
                s = Stream(d, split, form, int(len(ids)), shard_sha256(path), {})
                if form == "text":
                    try:
                        texts = decode_pieces(tok, split_at_eod(ids, eod))
                    except TransportError as e:
                        texts, s.note = None, str(e)
                    if texts is not None and verify and not np.array_equal(
                            encode_all(texts, pool, eod, ids.dtype, "", progress=False), ids):
                        texts, s.note = None, "its text does not encode back to the same ids"
                    if texts is not None:
                        blob, lens = text_blob(texts)
                        s.members = {f"{d}/{split}.txt": blob, f"{d}/{split}.lens": lens}
                if not s.members:
                    s.form = "tokens"
                    s.members = {f"{d}/{split}.bin": path.read_bytes()}
                    if s.note:
                        log(f"{d}/{split}: carried as tokens ({s.note})")
                streams.append(s)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    index = {"format": FORMAT, "name": m.get("name", corpus.name), "eod_id": eod, "dtype": str(dtype),
             "tokenizer_sha256": tk.sha256_file(tok_path),
             "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
             "packed_with": {"tokenizers": _tokenizers_version(), "verified": bool(verify)},
             "streams": [{"domain": s.domain, "split": s.split, "form": s.form, "tokens": s.tokens,
                          "sha256": s.sha256, "members": {k: len(v) for k, v in s.members.items()}}
                         for s in streams]}
    members = [(INDEX, json.dumps(index, indent=1).encode()), ("manifest.json", manifest_bytes),
               ("tokenizer.json", tok_path.read_bytes())]
    return index, members + [(k, v) for s in streams for k, v in s.members.items()]


def _tokenizers_version() -> str:
    import tokenizers
    return tokenizers.__version__


def tar_bytes(members: list[tuple[str, bytes]]) -> tuple[bytes, list[int]]:
    """An uncompressed tar of the members, the same bytes on every machine (no owners, times or modes), and
    where each member's record ends in it."""
    buf = io.BytesIO()
    ends = []
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            t.addfile(info, io.BytesIO(data))
            ends.append(t.offset)
    return buf.getvalue(), ends


def compress_tar(members: list[tuple[str, bytes]], workers: int, preset: int,
                 tokens: bool = False) -> tuple[bytes, dict[str, int]]:
    """An xz-compressed tar of the members, and the compressed bytes of each group of members (a domain's, or
    `meta`). Each group is cut into independent xz streams of at most SEGMENT_BYTES, compressed in parallel
    (xz and Python's lzma read concatenated streams as one); so a group's compressed size is its own."""
    tar, ends = tar_bytes(members)
    segs, start = [], 0
    for i, ((name, _), end) in enumerate(zip(members, ends)):
        group = _group(name)
        if i + 1 < len(members) and _group(members[i + 1][0]) == group:
            continue
        end = len(tar) if i + 1 == len(members) else end   # the last group carries the end-of-archive blocks
        segs += [(group, tar[j:min(j + SEGMENT_BYTES, end)]) for j in range(start, end, SEGMENT_BYTES)]
        start = end
    if workers <= 1 or len(segs) == 1:
        out = [_xz(x, preset, tokens) for _, x in segs]
    else:
        ctx = get_context("fork" if sys.platform == "linux" else "spawn")
        with ctx.Pool(min(workers, len(segs))) as pool:
            out = pool.starmap(_xz, [(x, preset, tokens) for _, x in segs])
    sizes: dict[str, int] = {}
    for (group, _), z in zip(segs, out):
        sizes[group] = sizes.get(group, 0) + len(z)
    return b"".join(out), sizes


def _group(name: str) -> str:
    return name.split("/")[0] if "/" in name else "meta"


def _xz(data: bytes, preset: int, tokens: bool = False) -> bytes:
    # uint16 ids sit at even offsets (tar data is 512-aligned, the shard header 64 bytes): telling LZMA2 so
    # (lp=1, pb=1, lc=1) saves about 0.8% on token shards (bench/README.md, "Large corpus and corpus transport")
    lzma2 = {"id": lzma.FILTER_LZMA2, "preset": preset, **({"lc": 1, "lp": 1, "pb": 1} if tokens else {})}
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, filters=[lzma2])


def write_parts(payload: bytes, out: Path, part_mib: float, pack_id: str) -> list[Path]:
    """`out` when the payload fits in part_mib, else parts of at most part_mib each, with headers."""
    limit = int(part_mib * MIB)
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob(out.name + ".part*"):
        old.unlink()
    if len(payload) <= limit:
        _atomic_write(out, payload)
        return [out]
    header_room = 1024
    size = limit - header_room
    chunks = [payload[i:i + size] for i in range(0, len(payload), size)]
    shas = [hashlib.sha256(c).hexdigest() for c in chunks]
    paths = []
    for k, c in enumerate(chunks, 1):
        head = json.dumps({"format": FORMAT, "pack_id": pack_id, "part": k, "parts": len(chunks), "bytes": len(c),
                           "sha256": shas[k - 1], "archive": out.name}).encode()
        p = out.with_name(f"{out.name}.part{k}of{len(chunks)}")
        _atomic_write(p, PART_MAGIC + len(head).to_bytes(4, "little") + head + c)
        paths.append(p)
    if out.exists():
        out.unlink()
    return paths


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ---- unpack -------------------------------------------------------------------------------------
def read_payload(paths: list[Path]) -> bytes:
    """The compressed archive from one file or from every part of one; TransportError naming what is wrong."""
    if not paths:
        raise TransportError("no archive given")
    for p in paths:
        if not Path(p).is_file():
            raise TransportError(f"{p}: no such file")
    heads = {}
    for p in paths:
        with open(p, "rb") as f:
            magic = f.read(len(PART_MAGIC))
        if magic == PART_MAGIC:
            heads[Path(p)] = _part_header(Path(p))
    if not heads:
        if len(paths) > 1:
            raise TransportError(f"{len(paths)} files given but none is a part of a split archive; give one archive")
        return Path(paths[0]).read_bytes()
    if len(heads) != len(paths):
        raise TransportError(f"{sorted(str(p) for p in paths if Path(p) not in heads)}: not parts of a split archive "
                             "(give either one whole archive or all of its parts)")
    ids = {h["pack_id"] for h in heads.values()}
    if len(ids) > 1:
        raise TransportError(f"the parts come from {len(ids)} different packs ({sorted(i[:12] for i in ids)}); "
                             "give the parts of one pack")
    n = next(iter(heads.values()))["parts"]
    have = {h["part"]: (p, h) for p, h in heads.items()}
    if missing := sorted(set(range(1, n + 1)) - set(have)):
        raise TransportError(f"part(s) {missing} of {n} missing (got {sorted(have)}); give every part")
    chunks = []
    for k in range(1, n + 1):
        p, h = have[k]
        data = p.read_bytes()[h["offset"]:]
        if len(data) != h["bytes"] or hashlib.sha256(data).hexdigest() != h["sha256"]:
            raise TransportError(f"{p}: part {k} of {n} is corrupt ({len(data)} bytes, sha256 differs from its "
                                 "header's); carry it again")
        chunks.append(data)
    return b"".join(chunks)


def _part_header(p: Path) -> dict:
    with open(p, "rb") as f:
        f.read(len(PART_MAGIC))
        n = int.from_bytes(f.read(4), "little")
        try:
            h = json.loads(f.read(n))
        except ValueError as e:
            raise TransportError(f"{p}: corrupt part header ({e}); carry it again") from e
    if h.get("format") != FORMAT:
        raise TransportError(f"{p}: format {h.get('format')!r}, this reader knows {FORMAT!r}")
    h["offset"] = len(PART_MAGIC) + 4 + n
    return h


def read_members(payload: bytes) -> dict[str, bytes]:
    """The archive's members by name; TransportError on a corrupt or truncated archive."""
    out = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(lzma.decompress(payload)), mode="r:") as t:
            for info in t:
                if info.isfile():
                    out[info.name] = t.extractfile(info).read()
    except (lzma.LZMAError, EOFError, tarfile.TarError) as e:
        raise TransportError(f"the archive is corrupt or incomplete ({type(e).__name__}: {e}); "
                             "carry it again (and every part of it)") from e
    if INDEX not in out:
        raise TransportError(f"the archive holds no {INDEX}: not a scalemix corpus transport")
    return out


def unpack(paths: list[Path], out: Path | None = None, workers: int = 0, force: bool = False, log=print) -> Path:
    """Rebuild the corpus at `out` (default data/<name>); every shard checked against the manifest."""
    t0 = time.time()
    members = read_members(read_payload([Path(p) for p in paths]))
    index = json.loads(members[INDEX])
    if index.get("format") != FORMAT:
        raise TransportError(f"format {index.get('format')!r}: this reader knows {FORMAT!r}")
    manifest_bytes, tok_bytes = members["manifest.json"], members["tokenizer.json"]
    if hashlib.sha256(manifest_bytes).hexdigest() != index["manifest_sha256"]:
        raise TransportError("manifest.json differs from the one packed (sha256): the archive is corrupt")
    m = json.loads(manifest_bytes)
    if hashlib.sha256(tok_bytes).hexdigest() != m["tokenizer_sha256"]:
        raise TransportError("tokenizer.json differs from the manifest's tokenizer_sha256: the archive is corrupt")
    if out is None:
        from harness.data.corpus import data_root
        out = data_root() / index["name"]
    out = Path(out)
    if out.exists() and not force:
        raise TransportError(f"{out} exists; remove it or pass --force to replace it")
    for s in index["streams"]:
        if not s["domain"].isidentifier() or s["split"] not in SPLITS:
            raise TransportError(f"stream {s['domain']}/{s['split']}: not a domain/split name")
    wanted = {k: n for s in index["streams"] for k, n in s["members"].items()}
    if short := [f"{k} ({len(members[k]) if k in members else 'absent'} of {n} bytes)"
                 for k, n in wanted.items() if len(members.get(k, b"")) != n or k not in members]:
        raise TransportError(f"the archive is corrupt or incomplete: {', '.join(short[:4])}"
                             f"{' ...' if len(short) > 4 else ''}; carry it again (and every part of it)")
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        (tmp / "tokenizer.json").write_bytes(tok_bytes)
        _rebuild_shards(index, members, m, tmp, workers or os.cpu_count() or 1)
        (tmp / "manifest.json").write_bytes(manifest_bytes)
        old = out.with_name(out.name + f".old{os.getpid()}")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"rebuilt {out}: {len(index['streams'])} shards, every sha256 equal to the manifest's "
        f"({time.time() - t0:.1f} s)")
    return out


def _rebuild_shards(index: dict, members: dict, m: dict, tmp: Path, workers: int) -> None:
    from harness.data.encode import encode_groups, encoder_pool
    dtype = np.dtype(index["dtype"])
    text = [s for s in index["streams"] if s["form"] == "text"]
    groups = []
    for s in text:
        base = f"{s['domain']}/{s['split']}"
        groups.append(text_from_blob(members.pop(base + ".txt"), members.pop(base + ".lens")))
    encoded = []
    if text:
        pool = encoder_pool(tmp / "tokenizer.json", workers)
        try:
            encoded = encode_groups(groups, pool, int(index["eod_id"]), dtype, "", progress=False)
        finally:
            if pool is not None:
                pool.close()
                pool.join()
    bad = []
    ids_of = {(s["domain"], s["split"]): ids for s, ids in zip(text, encoded)}
    for s in index["streams"]:
        d, split = s["domain"], s["split"]
        (tmp / d).mkdir(exist_ok=True)
        path = tmp / d / f"{split}.bin"
        if s["form"] == "text":
            write_shard(path, ids_of[(d, split)])
        else:
            path.write_bytes(members.pop(f"{d}/{split}.bin"))
        got = shard_sha256(path)
        want = m["domains"].get(d, {}).get(f"{split}_sha256") or s["sha256"]
        if got != want or got != s["sha256"]:
            bad.append(f"{d}/{split}.bin: sha256 {got[:16]}... but the manifest says {want[:16]}...")
    if bad:
        here, there = _tokenizers_version(), index["packed_with"]["tokenizers"]
        why = (f"tokenizers {here} here, {there} where it was packed: pack with --form tokens to carry the shards"
               if here != there else "the archive or the encoder is at fault: pack again")
        raise TransportError("rebuilt shards differ from the manifest (nothing written):\n  " + "\n  ".join(bad)
                             + f"\n{why}")


# ---- command line -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.data.transport", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="corpus directory -> archive (or parts)")
    p.add_argument("corpus", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--form", default="tokens", choices=["tokens", "text"])
    p.add_argument("--no-verify", action="store_true", help="skip encoding the text again at pack time")
    p.add_argument("--part-mib", type=float, default=DEFAULT_PART_MIB)
    p.add_argument("--preset", type=int, default=9, help="xz preset 0-9 (always with -e)")
    p.add_argument("--workers", type=int, default=0)
    u = sub.add_parser("unpack", help="archive (or all its parts) -> corpus directory, checked")
    u.add_argument("archive", type=Path, nargs="+")
    u.add_argument("--out", type=Path, default=None)
    u.add_argument("--workers", type=int, default=0)
    u.add_argument("--force", action="store_true")
    v = sub.add_parser("verify", help="a built corpus' shards and tokenizer against its manifest")
    v.add_argument("corpus", type=Path)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "pack":
            idx = pack(a.corpus, a.out, a.form, not a.no_verify, a.workers, a.part_mib, a.preset | lzma.PRESET_EXTREME)
            pk = idx["pack"]
            forms = sorted({s["form"] for s in idx["streams"]})
            print(f"packed {a.corpus} ({'/'.join(forms)}): {pk['raw_bytes'] / MIB:.1f} MiB raw -> "
                  f"{pk['bytes'] / MIB:.2f} MiB ({pk['raw_bytes'] / pk['bytes']:.2f}x; shards "
                  f"{pk['shard_bytes'] / MIB:.1f} MiB) in {pk['seconds']} s (decode+verify {pk['decode_verify_s']} s, "
                  f"xz {pk['xz_s']} s)")
            print("  compressed MiB: " + ", ".join(f"{d} {n / MIB:.2f}" for d, n in pk["domain_bytes"].items()))
            for f in pk["files"]:
                print(f"  {f}  {Path(f).stat().st_size / MIB:.2f} MiB")
        elif a.cmd == "unpack":
            unpack(a.archive, a.out, a.workers, a.force)
        else:
            if problems := corpus_problems(a.corpus):
                print("error: " + "\n  ".join([f"{a.corpus} differs from its manifest:", *problems]), file=sys.stderr)
                return 1
            print(f"{a.corpus}: every shard and the tokenizer match the manifest")
    except (TransportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
