"""Tokenization throughput of corpus preparation (target: >= 5 MB of text per second on 2 cores).

    python bench/prepare_bench.py [--corpus data/demo] [--mb 16] [--workers 1 2]

Takes text from the local sources (stdlib code, site-packages docs, licences, generated math),
loads the corpus' tokenizer (or trains one on the sample), and times prepare.encode_all, the
function `make data` tokenizes with, for each worker count. Prints wall MB/s and the 1-minute
load average, since a busy machine shares its cores.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from itertools import islice
from pathlib import Path


def sample_texts(mb: float) -> list[str]:
    from harness.data import sources
    per = mb * 1e6 / 4
    texts = []
    for kind in ("python_stdlib", "site_docs", "licences", "math"):
        got = 0
        for _, t in sources.documents({"kind": kind, "bytes": per}, Path(tempfile.gettempdir())):
            texts.append(t)
            got += len(t.encode())
            if got >= per:
                break
    return texts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="")
    ap.add_argument("--mb", type=float, default=16)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--vocab", type=int, default=8192)
    args = ap.parse_args()
    from harness.data import prepare as prep
    from harness.data import tokenizer as tk

    texts = sample_texts(args.mb)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    if args.corpus:
        tok_path = Path(args.corpus) / "tokenizer.json"
    else:
        tok_path = Path(tempfile.mkdtemp()) / "tokenizer.json"
        t = time.time()
        tk.train_bpe(islice(texts, None), args.vocab, tok_path)
        print(f"trained a {args.vocab}-token BPE on {mb:.1f} MB in {time.time() - t:.1f} s")
    vocab = tk.load(tok_path).get_vocab_size()
    print(f"{time.strftime('%Y-%m-%d %H:%M')} {os.cpu_count()} cores, tokenizer vocab {vocab}, {mb:.1f} MB of text")
    for w in args.workers:
        cpu0 = _cpu_s()
        pool = prep.encoder_pool(tok_path, w)
        try:
            load0 = os.getloadavg()[0]
            t = time.time()
            ids = prep.encode_all(texts, pool, 0, "uint16", "", progress=False)
            dt = time.time() - t
        finally:
            if pool is not None:
                pool.close()
                pool.join()
        cpu = _cpu_s() - cpu0  # this process and its (joined) workers
        print(f"workers={w}: {mb / dt:.2f} MB/s wall ({len(ids) / dt / 1e6:.2f}M tokens/s, "
              f"{len(ids) / mb / 1e6:.3f} tokens/byte); {mb / cpu:.2f} MB per CPU-second; "
              f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")


def _cpu_s() -> float:
    import resource
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


if __name__ == "__main__":
    main()
