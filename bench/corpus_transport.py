"""How small a built corpus travels: text vs token shards, xz -9e vs zstd --ultra -22 --long; pack and unpack time.

    python bench/corpus_transport.py --corpus data/large --out /tmp/ct            # xz, both forms, + unpack
    python bench/corpus_transport.py --corpus data/large --out /tmp/ct --zstd     # + zstd -22 --long=31 (slow)
    python bench/corpus_transport.py --corpus data/large --out /tmp/ct --zstd --sample-tokens 2e6   # per domain

Each form's tar (harness.data.transport.archive_members: the documents as UTF-8 text with their lengths, or
the shards themselves) is compressed the way `pack` does it (xz preset 9e, independent streams of 48 MiB,
one process each) and, with --zstd, by the zstd command line. The text form is then written by `pack`
(parts of <= 40 MiB) and rebuilt by `unpack` into a scratch directory, whose shards are compared with the
corpus byte for byte. Prints one line per measurement and writes them to <out>/transport.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIB = 1 << 20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--zstd", action="store_true")
    ap.add_argument("--part-mib", type=float, default=60)
    ap.add_argument("--sample-tokens", type=float, default=0,
                    help="only compare the forms and compressors on the first N tokens of each domain's train split "
                         "(whole documents), then stop")
    args = ap.parse_args()
    from harness.data import transport as tr
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []

    def report(**row):
        row["load"] = round(os.getloadavg()[0], 1)
        rows.append(row)
        print(json.dumps(row), flush=True)

    if args.sample_tokens:
        sample(args, tr, report)
        (args.out / "transport_sample.json").write_text(json.dumps(rows, indent=1))
        return

    for form in ("tokens", "text"):
        t = time.time()
        index, members = tr.archive_members(args.corpus, form, verify=False, workers=args.workers, log=print)
        tar, _ = tr.tar_bytes(members)
        report(form=form, what="tar", mib=round(len(tar) / MIB, 2), s=round(time.time() - t, 1))
        t = time.time()
        xz, per_domain = tr.compress_tar(members, args.workers, tr.XZ_PRESET)
        report(form=form, what="xz -9e, 48 MiB streams", mib=round(len(xz) / MIB, 2),
               ratio=round(len(tar) / len(xz), 2), s=round(time.time() - t, 1),
               domain_mib={d: round(n / MIB, 2) for d, n in per_domain.items()},
               domain_raw_mib={d: round(sum(len(v) for k, v in members if k.startswith(d + "/")) / MIB, 2)
                               for d in per_domain if d != "meta"})
        if args.zstd and shutil.which("zstd"):
            t = time.time()
            r = subprocess.run(["zstd", "--ultra", "-22", "--long=31", "-T2", "-c", "-q"], input=tar,
                               capture_output=True, check=True)
            report(form=form, what="zstd --ultra -22 --long=31 -T2", mib=round(len(r.stdout) / MIB, 2),
                   ratio=round(len(tar) / len(r.stdout), 2), s=round(time.time() - t, 1))
        del tar, xz, members

    t = time.time()
    idx = tr.pack(args.corpus, args.out / "corpus.tar.xz", "text", True, args.workers, args.part_mib, log=print)
    pk = idx["pack"]
    report(form="text", what="pack (decode + verify + xz + parts)", mib=round(pk["bytes"] / MIB, 2),
           parts=[round(Path(f).stat().st_size / MIB, 2) for f in pk["files"]], s=round(time.time() - t, 1),
           decode_verify_s=pk["decode_verify_s"], xz_s=pk["xz_s"])
    scratch = args.out / "rebuilt"
    shutil.rmtree(scratch, ignore_errors=True)
    t = time.time()
    tr.unpack([Path(f) for f in pk["files"]], scratch, args.workers, log=print)
    same = all((scratch / p.relative_to(args.corpus)).read_bytes() == p.read_bytes()
               for p in args.corpus.rglob("*.bin"))
    report(form="text", what="unpack (check + encode + hash)", s=round(time.time() - t, 1), byte_identical=same)
    shutil.rmtree(scratch, ignore_errors=True)
    (args.out / "transport.json").write_text(json.dumps(rows, indent=1))


def sample(args, tr, report) -> None:
    """Per domain: the first whole documents of its train shard up to N tokens, as text and as tokens, through
    xz -9e and zstd -22 --long (one process each), sizes and seconds."""
    import lzma

    import numpy as np

    from harness.data import tokenizer as tk
    from harness.data.corpus import Corpus
    c = Corpus(args.corpus)
    tok = tk.load(args.corpus / "tokenizer.json")
    for d in c.domains:
        ids = np.asarray(c.train(d))
        cut = int(np.flatnonzero(ids[: int(args.sample_tokens)] == c.eod_id)[-1]) + 1
        blob, lens = tr.text_blob(tr.decode_pieces(tok, tr.split_at_eod(ids[:cut], c.eod_id)))
        forms = {"text": blob + lens, "tokens": ids[:cut].tobytes()}
        for form, data in forms.items():
            t = time.time()
            xz = lzma.compress(data, preset=tr.XZ_PRESET)
            row = dict(domain=d, form=form, tokens=cut, raw_mib=round(len(data) / MIB, 3),
                       xz9e_mib=round(len(xz) / MIB, 3), xz9e_ratio=round(len(data) / len(xz), 2),
                       xz9e_bytes_per_token=round(len(xz) / cut, 4), xz_s=round(time.time() - t, 1))
            if args.zstd and shutil.which("zstd"):
                t = time.time()
                z = subprocess.run(["zstd", "--ultra", "-22", "--long=31", "-T1", "-c", "-q"], input=data,
                                   capture_output=True, check=True).stdout
                row.update(zstd22_mib=round(len(z) / MIB, 3), zstd22_bytes_per_token=round(len(z) / cut, 4),
                           zstd_s=round(time.time() - t, 1))
            report(**row)


if __name__ == "__main__":
    main()
