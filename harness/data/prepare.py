"""Build a corpus directory from a recipe: extract, deduplicate, split, train the tokenizer, tokenize.

    python -m harness.data.prepare                         # corpus=default (what `make data` runs)
    python -m harness.data.prepare corpus=tiny             # a preset in conf/data/recipes/
    python -m harness.data.prepare corpus=my_recipe.yaml   # your own recipe (bring your own data)
    python -m harness.data.prepare corpus=demo scale=0.5 vocab_size=4096 out=data/demo_half force=true

Arguments are key=value: corpus, out (default $SCALEMIX_DATA/<name>, else data/<name>), cache (default ~/.cache/scalemix),
workers (tokenizer processes; default: all cores), scale (multiplies every byte budget), force,
progress, and any top-level recipe key (vocab_size, heldout_frac, tokenizer_sample_bytes, name).

Recipe (YAML):
    name: tiny
    vocab_size: 1024
    heldout_frac: 0.05          # share of documents held out, chosen by a hash of each document
    tokenizer_sample_bytes: 2e6 # per domain, from train documents only
    domains:
      code: {licence: PSF-2.0, max_bytes: 1.5e6, sources: [{kind: python_stdlib}]}
      mine: {sources: [{kind: text_dir, path: /data/mine}]}             # bring your own text
      toks: {kind: tokens, path: /data/toks, dtype: uint16}             # pre-tokenized shards
    tokenizer: /path/tokenizer.json   # required with pre-tokenized domains (their tokenizer), or a shipped
                                      # one pinned by hash, {file: demo/tokenizer.json, sha256: ...}; else trained,
    eod_id: 0                         # with the eod id they use
The corpus is written to a temporary directory and renamed into place when complete.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from harness.data import byo, pinned, sources, streamed
from harness.data import tokenizer as tk
from harness.data.columnar import ColumnarError
from harness.data.corpus import data_root
from harness.data.encode import _encode_chunk, encode_all, encode_groups, encoder_pool  # noqa: F401 (callers use prepare.*)
from harness.data.shards import dtype_for_vocab, write_shard

RECIPES = Path(__file__).resolve().parents[2] / "conf" / "data" / "recipes"


class PrepareError(ValueError):
    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("cannot prepare the corpus:\n  - " + "\n  - ".join(self.errors))


# ---- recipe -------------------------------------------------------------------------------------
def load_recipe(corpus: str) -> dict:
    p = Path(corpus)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return yaml.safe_load(p.read_text())
    q = RECIPES / f"{corpus}.yaml"
    if not q.is_file():
        known = sorted(r.stem for r in RECIPES.glob("*.yaml"))
        raise PrepareError([f"corpus={corpus!r}: no recipe {q} (presets: {known}); or pass a recipe .yaml path"])
    return yaml.safe_load(q.read_text())


def scaled(recipe: dict, scale: float) -> dict:
    """The recipe with every byte budget multiplied by `scale` (the size setting)."""
    r = json.loads(json.dumps(recipe))
    for d in r["domains"].values():
        if "max_bytes" in d:
            d["max_bytes"] = float(d["max_bytes"]) * scale
        for s in d.get("sources", []):
            for k in ("bytes", "max_bytes"):
                if k in s:
                    s[k] = float(s[k]) * scale
    return r


def recipe_errors(r: dict) -> list[str]:
    e = []
    doms = r.get("domains") or {}
    if not doms:
        e.append("recipe.domains: no domains")
    pretok = [n for n, d in doms.items() if d.get("kind") == "tokens"]
    vocab = int(r.get("vocab_size", 0))
    if not pretok and vocab < 258:
        e.append(f"vocab_size={vocab}: a byte-level BPE needs at least 258 (256 bytes + eod + 1 merge)")
    if pretok and not r.get("tokenizer"):
        e.append(f"domains {pretok} are pre-tokenized: set `tokenizer` (their tokenizer.json, or an identifier "
                 "when every domain is pre-tokenized), `vocab_size` and `eod_id`")
    if isinstance(r.get("tokenizer"), dict):   # {file, sha256}: a tokenizer.json the repository ships (pinned)
        try:
            sources.check({"kind": "pinned", **r["tokenizer"]})
        except sources.SourceError as err:
            e.append(f"tokenizer: {err}")
    elif pretok and len(pretok) < len(doms) and r.get("tokenizer") and not Path(r["tokenizer"]).is_file():
        e.append(f"tokenizer={r['tokenizer']!r}: text domains need a tokenizer.json file to encode with")
    if not 0 < float(r.get("heldout_frac", 0.05)) < 0.5:
        e.append(f"heldout_frac={r.get('heldout_frac')}: must be in (0, 0.5)")
    for name, d in doms.items():
        if not name.isidentifier():
            e.append(f"domains.{name}: a domain name must be an identifier (it becomes a loss_{name} column)")
        try:
            if d.get("kind") == "tokens":
                next(byo.token_documents(Path(d["path"]).expanduser(), str(d.get("dtype", "uint16")),
                                         int(r.get("vocab_size", 0)), int(r.get("eod_id", 0))))
                continue
            if not d.get("sources"):
                e.append(f"domains.{name}.sources: none given")
            for s in d.get("sources", []):
                kind = s.get("kind")
                if kind not in (*sources.LOCAL, "apt"):
                    e.append(f"domains.{name}: source kind {kind!r} unknown; use one of {sorted(sources.LOCAL) + ['apt']}")
                elif kind == "text_dir":
                    byo.check_readable(byo.text_files(Path(s["path"]).expanduser()))
                elif kind in sources.STREAMED:
                    if not s.get("path"):
                        e.append(f"domains.{name}: a {kind} source needs `path`")
                    else:
                        sources.check(s)
                elif kind == "pinned":
                    sources.check(s)
                elif kind == "apt" and not s.get("packages"):
                    e.append(f"domains.{name}: an apt source needs `packages`")
        except (byo.ByoError, ColumnarError, sources.SourceError) as err:
            e.append(f"domains.{name}: {err}")
        except StopIteration:
            e.append(f"domains.{name}: no documents in {d.get('path')}")
    return e


# ---- documents ----------------------------------------------------------------------------------
def doc_hash(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def is_heldout(h: bytes, frac: float) -> bool:
    return int.from_bytes(h[:8], "little") < frac * 2**64


@dataclass
class Tally:
    """What `admit` counts."""
    documents: int = 0
    duplicates: int = 0
    bytes: int = 0


def admit(data: bytes, seen: set, tally: Tally) -> bytes | None:
    """The document's hash if no domain so far had it (counted in tally.documents and tally.bytes, and remembered
    in `seen`); None for a duplicate (counted in tally.duplicates). Every deduplicating path: collect,
    streamed.scan (whose StreamedDocs has the same three counts) and harness.data.freeze.capped."""
    h = doc_hash(data)
    if h in seen:
        tally.duplicates += 1
        return None
    seen.add(h)
    tally.documents += 1
    tally.bytes += len(data)
    return h


@dataclass
class DomainDocs(Tally):
    train: list = field(default_factory=list)
    heldout: list = field(default_factory=list)
    empty: list = field(default_factory=list)   # names of documents with no text (skipped)
    text: object = field(default_factory=hashlib.sha256)   # of the admitted documents, in order: text_sha256


def collect(name: str, spec: dict, frac: float, seen: set, cache: Path, progress: bool) -> DomainDocs:
    """The domain's documents, deduplicated (against every domain so far) and split by their hash."""
    from tqdm import tqdm
    budget = float(spec.get("max_bytes", float("inf")))
    gens = [sources.documents(s, cache) for s in spec["sources"]]
    out, best = DomainDocs(), None
    bar = tqdm(total=None if budget == float("inf") else int(budget), unit="B", unit_scale=True,
               desc=f"extract {name}", disable=not progress, file=sys.stderr)
    while gens and out.bytes < budget:
        for g in list(gens):  # round-robin over the sources, so a cap takes from each
            doc = next(g, None)
            if doc is None:
                gens.remove(g)
                continue
            if not doc[1].strip():  # no tokens to train on, and held out it would be the domain's whole eval set
                out.empty.append(doc[0])
                continue
            data = doc[1].encode("utf-8", errors="replace")
            if (h := admit(data, seen, out)) is None:
                continue
            bar.update(len(data))
            out.text.update(len(data).to_bytes(8, "little") + data)
            (out.heldout if is_heldout(h, frac) else out.train).append(doc[1])
            if best is None or h < best[0]:
                best = (h, doc[1])
            if out.bytes >= budget:
                break
    bar.close()
    empty = (f" ({len(out.empty)} empty document(s) skipped: {', '.join(map(str, out.empty[:5]))}"
             f"{' ...' if len(out.empty) > 5 else ''})") if out.empty else ""
    if out.documents < 2:
        raise PrepareError([f"domains.{name}: {out.documents} non-empty document(s) found{empty}; a domain needs at "
                            "least 2 (one to train on, one held out)"])
    if empty:
        print(f"warning: domains.{name}:{empty}", file=sys.stderr)
    if not out.heldout:  # a tiny domain: hold out its smallest-hash document
        out.train.remove(best[1])
        out.heldout.append(best[1])
    elif not out.train:
        out.train.append(out.heldout.pop())
    return out


def tokenizer_sample(domains: dict[str, DomainDocs], per_domain: float):
    for docs in domains.values():
        used = 0
        for t in docs.train:
            if used >= per_domain:
                break
            used += len(t)
            yield t


# ---- the build ----------------------------------------------------------------------------------
def prepare(recipe: dict, out: Path, cache: Path, workers: int = 0, progress: bool = True) -> dict:
    """Build the corpus at `out` (atomically: a failed build leaves nothing behind); returns the manifest."""
    if errs := recipe_errors(recipe):
        raise PrepareError(errs)
    out = Path(out)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        return _build(recipe, out, tmp, Path(cache), workers or os.cpu_count() or 1, progress)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _build(recipe: dict, out: Path, tmp: Path, cache: Path, workers: int, progress: bool) -> dict:
    t0 = time.time()
    frac = float(recipe.get("heldout_frac", 0.05))
    doms = recipe["domains"]
    text_doms = {n: d for n, d in doms.items() if d.get("kind") != "tokens"}
    seen: set = set()
    sample_bytes = float(recipe.get("tokenizer_sample_bytes", 4e6))
    collected = {n: streamed.scan(n, d, frac, seen, cache, progress, sample_bytes, admit, is_heldout, PrepareError)
                 if streamed.is_streamed(d) else collect(n, d, frac, seen, cache, progress)
                 for n, d in text_doms.items()}
    t_extract = time.time() - t0

    if recipe.get("tokenizer"):
        tok_spec = recipe["tokenizer"]
        src = pinned.check(tok_spec) if isinstance(tok_spec, dict) else Path(str(tok_spec))
        if src.is_file():
            shutil.copy(src, tmp / "tokenizer.json")
            tok_sha = tk.sha256_file(tmp / "tokenizer.json")
            vocab = tk.load(tmp / "tokenizer.json").get_vocab_size()
        else:
            tok_sha, vocab = hashlib.sha256(str(src).encode()).hexdigest(), int(recipe["vocab_size"])
        eod = int(recipe.get("eod_id", 0))
    else:
        tok = tk.train_bpe(tokenizer_sample(collected, sample_bytes),
                           int(recipe["vocab_size"]), tmp / "tokenizer.json")
        tok_sha, vocab, eod = tk.sha256_file(tmp / "tokenizer.json"), tok.get_vocab_size(), tok.token_to_id(tk.EOD)
    t_tok = time.time() - t0 - t_extract
    dtype = dtype_for_vocab(vocab)

    manifest = {"name": recipe.get("name", out.name), "vocab_size": vocab, "eod_id": eod,
                "tokenizer_sha256": tok_sha, "heldout_frac": frac, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                           time.gmtime()),
                "recipe": recipe, "domains": {}}
    enc_bytes, t_enc0 = 0, time.time()
    pool = encoder_pool(tmp / "tokenizer.json", workers) if text_doms else None
    try:
        _tokenize_domains(doms, collected, pool, tmp, manifest, seen, frac, vocab, eod, dtype, progress, cache,
                          workers)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    enc_bytes = sum(c.bytes for c in collected.values())
    t_enc = time.time() - t_enc0
    manifest["corpus_sha256"] = corpus_sha256(manifest)
    manifest["build"] = {"seconds": round(time.time() - t0, 1), "extract_s": round(t_extract, 1),
                         "tokenizer_train_s": round(t_tok, 1), "tokenize_s": round(t_enc, 1),
                         "tokenize_mb_per_s": round(enc_bytes / 1e6 / max(t_enc, 1e-9), 2), "workers": workers}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    old = out.with_name(out.name + f".old{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return manifest


def _tokenize_domains(doms, collected, pool, tmp, manifest, seen, frac, vocab, eod, dtype, progress,
                      cache: Path, workers: int = 1) -> None:
    keys = [(name, k) for name, c in collected.items() if isinstance(c, DomainDocs) for k in ("train", "heldout")]
    encoded = dict(zip(keys, encode_groups([getattr(collected[n], k) for n, k in keys], pool, eod, dtype,
                                           "tokenize", progress)))
    for name, d in doms.items():
        (tmp / name).mkdir()
        info = {"licence": d.get("licence") or _licence(d), "source": _describe(d)}
        if debs := _debs(d, cache):
            info["debs"] = list(debs)  # exact package versions: the default corpus is only reproducible from these
            info["deb_sha256"] = {k: v for k, v in debs.items() if v}
        if d.get("kind") == "tokens":
            split = {"train": [], "heldout": []}
            dups, n_docs = 0, 0
            for _, arr in byo.token_documents(Path(d["path"]).expanduser(), str(d.get("dtype", "uint16")), vocab, eod):
                h = doc_hash(np.ascontiguousarray(arr).tobytes())
                if h in seen:
                    dups += 1
                    continue
                seen.add(h)
                n_docs += 1
                split["heldout" if is_heldout(h, frac) else "train"].append(arr)
            if not split["heldout"]:
                split["heldout"].append(split["train"].pop())
            arrays = {k: tk.pack_documents(v, eod, dtype) for k, v in split.items()}
            info.update(documents=n_docs, duplicates=dups, bytes=None,
                        train_documents=len(split["train"]), heldout_documents=len(split["heldout"]))
        elif isinstance(c := collected[name], streamed.StreamedDocs):   # tokens go to the shards as they come
            n_tokens = streamed.encode(name, c, pool, workers, _encode_chunk, tmp / name, cache, eod, dtype, progress)
            info.update(documents=c.documents, duplicates=c.duplicates, bytes=c.bytes,
                        train_documents=c.count(streamed.TRAIN), heldout_documents=c.count(streamed.HELDOUT),
                        stream={**{k: round(v, 2) for k, v in c.seconds.items()}, "passes": 3,
                                "mb_per_s": round(c.bytes / 1e6 / max(sum(c.seconds.values()), 1e-9), 2)})
        else:
            arrays = {k: encoded.pop((name, k)) for k in ("train", "heldout")}
            info.update(documents=c.documents, duplicates=c.duplicates, bytes=c.bytes,
                        train_documents=len(c.train), heldout_documents=len(c.heldout),
                        text_sha256=c.text.hexdigest())
        if "stream" not in info:
            for k, arr in arrays.items():
                write_shard(tmp / name / f"{k}.bin", arr)
            n_tokens = {k: len(arr) for k, arr in arrays.items()}
        for k in ("train", "heldout"):   # what a transported copy is checked against
            info[f"{k}_sha256"] = tk.sha256_file(tmp / name / f"{k}.bin")
        total = info["documents"] + info["duplicates"]
        info.update(duplicate_rate=round(info["duplicates"] / total, 6) if total else 0.0,
                    train_tokens=int(n_tokens["train"]), heldout_tokens=int(n_tokens["heldout"]))
        manifest["domains"][name] = info


def same_recipe(a: dict | None, b: dict) -> bool:
    return a is not None and json.dumps(a, sort_keys=True) == json.dumps(json.loads(json.dumps(b)), sort_keys=True)


def corpus_sha256(m: dict) -> str:
    """One hash for what a run trains and evaluates on: the tokenizer and every domain's train and held-out
    shards (so two builds with this hash give the same batches). Results and reports carry it."""
    key = {"tokenizer_sha256": m["tokenizer_sha256"], "vocab_size": m["vocab_size"], "eod_id": m["eod_id"],
           "domains": {n: [d["train_sha256"], d["heldout_sha256"]] for n, d in sorted(m["domains"].items())}}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _licence(d: dict) -> str:
    if d.get("kind") == "tokens":
        return "user-supplied"
    return "; ".join(dict.fromkeys(s.get("licence") or sources.DEFAULT_LICENCE.get(s["kind"], "?")
                                   for s in d["sources"]))


def _debs(d: dict, cache: Path) -> dict[str, str | None]:
    """{.deb file (name_version_arch): its sha256} of each package an apt-sourced domain was extracted from."""
    from harness.data.apt import deb_sha256, split_pin
    out = {}
    for s in d.get("sources", []):
        for p in s.get("packages", []) if s.get("kind") == "apt" else []:
            done = cache / "root" / split_pin(p)[0] / ".done"
            deb = done.read_text().strip() if done.is_file() else p
            path = cache / "debs" / deb
            out[deb] = deb_sha256(path) if path.is_file() else None
    return out


def _describe(d: dict) -> str:
    if d.get("kind") == "tokens":
        return f"tokens:{d['path']}"
    return "; ".join(sources.describe(s) for s in d["sources"])


def summary(m: dict) -> str:
    rows = [f"corpus {m['name']}: sha256 {m['corpus_sha256']}",
            f"vocab {m['vocab_size']}, eod {m['eod_id']}, tokenizer sha256 {m['tokenizer_sha256'][:16]}..., built in {m['build']['seconds']} s "
            f"(tokenize {m['build']['tokenize_mb_per_s']} MB/s)",
            f"{'domain':<14}{'docs':>9}{'dup rate':>10}{'MB':>9}{'train tok':>12}{'heldout tok':>12}  source"]
    for n, d in m["domains"].items():
        mb = f"{d['bytes'] / 1e6:.2f}" if d.get("bytes") else "-"
        rows.append(f"{n:<14}{d['documents']:>9}{d['duplicate_rate']:>10.4f}{mb:>9}{d['train_tokens']:>12}"
                    f"{d['heldout_tokens']:>12}  {d['source']} [{d['licence']}]")
    return "\n".join(rows)


def parse_args(argv: list[str]) -> dict:
    args = {}
    for a in argv:
        if "=" not in a:
            raise SystemExit(f"argument {a!r}: use key=value (see `python -m harness.data.prepare --help`)")
        k, v = a.split("=", 1)
        args[k.lstrip("-+")] = yaml.safe_load(v)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    args = parse_args(argv)
    try:
        recipe = load_recipe(str(args.pop("corpus", "default")))
        recipe = scaled(recipe, float(args.pop("scale", 1.0)))
        out = Path(str(args.pop("out", data_root() / recipe["name"])))
        cache = Path(str(args.pop("cache", Path.home() / ".cache" / "scalemix"))).expanduser()
        workers, force, progress = int(args.pop("workers", 0)), bool(args.pop("force", False)), bool(args.pop("progress", True))
        unknown = [k for k in args if k not in ("vocab_size", "heldout_frac", "tokenizer_sample_bytes", "name")]
        if unknown:
            raise PrepareError([f"{k}: unknown argument (known: corpus, out, cache, workers, scale, force, progress, "
                                "vocab_size, heldout_frac, tokenizer_sample_bytes, name)" for k in unknown])
        recipe.update(args)
        if (out / "manifest.json").is_file() and not force:
            built = json.loads((out / "manifest.json").read_text()).get("recipe")
            if same_recipe(built, recipe):
                print(f"{out} is already built (force=true rebuilds it)")
                return 0
            # e.g. a demo corpus from before its text was pinned: runs on the old one are told apart by their
            # tokenizer and corpus hashes (harness.data.corpus.stale_result_reason), so replacing it is safe
            print(f"{out} was built from another recipe than conf/data/recipes' current one: rebuilding it")
        m = prepare(recipe, out, cache, workers, progress)
    except (PrepareError, byo.ByoError, sources.SourceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        from harness.data.apt import AptError
        if isinstance(e, AptError):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
    print(summary(m))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
