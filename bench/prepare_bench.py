"""Tokenization throughput of corpus preparation (target: >= 5 MB of text per second on 2 cores).

    python bench/prepare_bench.py --corpus data/default --mb 12          # the target's measurement
    python bench/prepare_bench.py --corpus data/default --from-corpus    # the whole corpus: speed + exact ids
    python bench/prepare_bench.py --corpus data/default --encoders cached library --workers 1 2

Default text: local sources (stdlib code, site-packages docs, licences, generated math), --mb of
them. --from-corpus instead decodes the corpus' own shards (every domain, train and held-out;
--mb caps each domain) and checks that the encoder gives back exactly the stored ids, which the
library (`tokenizers`) wrote when the corpus was built. Times prepare.encode_all, the function
`make data` tokenizes with, for each encoder ("cached": tokenizer.DocumentEncoder, what
preparation uses; "library": `tokenizers` alone, the reference) and worker count. Prints wall MB/s,
MB per CPU-second and the 1-minute load average, since a busy machine shares its cores.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


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


def corpus_texts(corpus: Path, mb: float | None) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """The corpus' documents as text (decoded from its shards), the stored ids, and bytes per domain."""
    from harness.data import tokenizer as tk
    from harness.data.corpus import Corpus
    c = Corpus(corpus)
    tok = tk.load(corpus / "tokenizer.json")
    texts, ids, per_domain = [], [], {}
    for d in c.domains:
        got = 0
        for split in (c.train(d), c.heldout(d)):
            x = np.asarray(split)
            cuts = np.flatnonzero(x == c.eod_id)
            if mb is not None:  # whole documents up to the cap
                cuts = cuts[: max(1, int(np.searchsorted(np.cumsum(np.diff(np.r_[-1, cuts])), mb * 1e6 / 3)))]
            docs = tok.decode_batch([x[a + 1:b].tolist() for a, b in zip(np.r_[-1, cuts[:-1]], cuts)],
                                    skip_special_tokens=False)
            texts += docs
            ids.append(x[: cuts[-1] + 1] if len(cuts) else x[:0])
            got += sum(len(t.encode()) for t in docs)
        per_domain[d] = got
    return texts, np.concatenate(ids), per_domain


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="")
    ap.add_argument("--mb", type=float, default=None, help="MB of text (default 16; with --from-corpus: "
                                                           "per domain, default all)")
    ap.add_argument("--from-corpus", action="store_true")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--encoders", nargs="+", default=["cached"], choices=["cached", "library"])
    ap.add_argument("--vocab", type=int, default=8192)
    args = ap.parse_args()
    from harness.data import encode
    from harness.data import prepare as prep
    from harness.data import tokenizer as tk

    expected = None
    if args.from_corpus:
        if not args.corpus:
            ap.error("--from-corpus needs --corpus")
        texts, expected, per_domain = corpus_texts(Path(args.corpus), args.mb)
        print("text from the corpus' shards, MB per domain: "
              + ", ".join(f"{d} {b / 1e6:.1f}" for d, b in per_domain.items()))
    else:
        texts = sample_texts(16 if args.mb is None else args.mb)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    if args.corpus:
        tok_path = Path(args.corpus) / "tokenizer.json"
    else:
        tok_path = Path(tempfile.mkdtemp()) / "tokenizer.json"
        t = time.time()
        tk.train_bpe(islice(texts, None), args.vocab, tok_path)
        print(f"trained a {args.vocab}-token BPE on {mb:.1f} MB in {time.time() - t:.1f} s")
    tok = tk.load(tok_path)
    eod, vocab = tok.token_to_id(tk.EOD) or 0, tok.get_vocab_size()
    print(f"{time.strftime('%Y-%m-%d %H:%M')} {os.cpu_count()} cores, tokenizer vocab {vocab}, {mb:.1f} MB of text")
    failed = False
    for enc in args.encoders:
        for w in sorted(args.workers, reverse=True):  # pools first: they fork this process
            cpu0 = _cpu_s()
            pool = prep.encoder_pool(tok_path, w, cache=enc == "cached")
            try:
                load0 = os.getloadavg()[0]
                t = time.time()
                ids = prep.encode_all(texts, pool, eod, "uint16", "", progress=False)
                dt = time.time() - t
            finally:
                if pool is not None:
                    pool.close()
                    pool.join()
                encode._worker_encoder = None  # an in-process encoder's cache is not forked into the next pool
                gc.collect()
            cpu = _cpu_s() - cpu0  # this process and its (joined) workers
            check = ""
            if expected is not None:
                same = len(ids) == len(expected) and bool(np.array_equal(ids, expected))
                failed |= not same
                check = f"; ids {'EQUAL to' if same else 'DIFFER from'} the stored shards ({len(expected):,} tokens)"
            print(f"{enc} workers={w}: {mb / dt:.2f} MB/s wall ({len(ids) / dt / 1e6:.2f}M tokens/s, "
                  f"{len(ids) / mb / 1e6:.3f} tokens/byte); {mb / cpu:.2f} MB per CPU-second; "
                  f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f}{check}", flush=True)
    if failed:
        raise SystemExit(1)


def _cpu_s() -> float:
    import resource
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


if __name__ == "__main__":
    main()
