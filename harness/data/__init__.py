"""The data layer: offline corpora of several domains, and the mixture stream a run trains on.

    prepare.py    `python -m harness.data.prepare corpus=<tiny|demo|default|recipe.yaml>` builds data/<corpus>/
    sources.py    where documents come from (stdlib, site-packages docs, licences, Debian packages, your dirs)
    apt.py        `apt-get download` + `dpkg -x` into a cache, nothing installed
    mathgen.py    the generated math domain
    byo.py        bring your own data: .txt/.jsonl(.gz/.bz2/.xz/.zst) directories, nanoGPT .bin shards
    tokenizer.py  byte-level BPE trained locally (`tokenizers`), hashed into the manifest
    encode.py     text -> ids with worker processes (prepare, and transport's rebuild)
    transport.py  `python -m harness.data.transport pack|unpack|verify`: a built corpus in <= 40 MiB
                  parts, rebuilt bit for bit (checked by sha256) where there is no apt
    shards.py     the token shard format (header + memmap)
    corpus.py     Corpus: manifest + train/heldout shards per domain
    mixture.py    MixtureStream: batch(step) is a pure function of (corpus, mixture, seed, step)
    batch.py      TokenBatch (inputs, targets, per-token domain labels)
    synthetic.py  a tiny Markov-chain corpus for tests
Recipes live in conf/data/recipes/, named mixtures (whole DataSpecs) in conf/data/mixture/.
"""
