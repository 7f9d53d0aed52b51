"""The driver of bench/gpu_multigpu.sh: the corpus and spec of its runs, then the table that compares them.

    python bench/multigpu.py prepare OUT [--layers 12 --steps 40]   # OUT/corpus, OUT/spec.json
    python bench/multigpu.py compare OUT                            # OUT/runs/* -> OUT/multigpu.csv, a table
    python bench/multigpu.py corpus DIR                             # DIR/syn: the corpus alone (gpu_sweep_scaling.sh)

Every run trains the same RunSpec (a GPU-ladder rung on seq_len 1024, the GPU scale's 128-sequence batch), so
their loss curves must agree within bf16 noise whatever the process count or wrapper, and their steady-state
tokens/s (result.json: every log window but each launch's first, which holds compilation) compare directly.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# bf16 autocast vs FSDP's bf16 parameters, and a different reduction order per G: the losses of two such runs of
# 40 steps differ by well under this (a changed batch or a lost gradient shows as several percent)
LOSS_RTOL = 0.02
VOCAB = 8192


def make_corpus(path: Path, tokens_per_domain: int, seed: int = 0) -> Path:
    """Three domains, each a random sequence over its own 500 'documents' of 1024 random tokens, ended by the eod id:
    learnable (a document is predictable once it is recognised), and made in a second with numpy (the tests'
    Markov corpus is a Python loop per token)."""
    from harness.data.shards import dtype_for_vocab, write_shard
    rng = np.random.default_rng(seed)
    eod = VOCAB - 1
    manifest = {"name": path.name, "vocab_size": VOCAB, "eod_id": eod, "tokenizer_sha256": "synthetic", "domains": {}}
    for i, dom in enumerate(("alpha", "beta", "gamma")):
        docs = rng.integers(0, VOCAB - 1, size=(500, 1024))
        docs[:, -1] = eod
        (path / dom).mkdir(parents=True, exist_ok=True)
        sizes = {}
        for split, n in (("train", tokens_per_domain), ("heldout", 131072)):
            picks = rng.integers(0, len(docs), size=-(-n // docs.shape[1]))
            toks = docs[picks].reshape(-1)[:n]
            write_shard(path / dom / f"{split}.bin", toks.astype(dtype_for_vocab(VOCAB)))
            sizes[f"{split}_tokens"] = n
        manifest["domains"][dom] = {**sizes, "source": f"random documents #{i}", "licence": "CC0"}
    (path / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return path


def prepare(out: Path, layers: int, steps: int, batch: int, seq: int = 1024, heldout: int = 65536) -> None:
    from harness.spec import RunSpec
    from model_zoo.spec import GPU_RULE
    tokens = steps * batch * seq
    corpus = make_corpus(out / "corpus", tokens_per_domain=tokens // 3 + 4 * batch * seq)
    model = GPU_RULE.shape(layers, vocab_size=VOCAB, seq_len=seq).to_dict()
    spec = RunSpec.from_dict({"model": model, "tokens": tokens, "batch_tokens": batch * seq,
                              "data": {"corpus": str(corpus)}, "eval": {"heldout_tokens": heldout, "every_steps": steps},
                              "optim": {"lr": 2e-3, "warmup_frac": 0.1}})
    (out / "spec.json").write_text(spec.canonical_json())
    print(f"spec {spec.run_id}: L{layers}-d{64 * layers}, {steps} steps of {batch} x {seq} tokens")


def train_losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return {r["step"]: r["loss"] for r in rows if r.get("kind") == "train"}


def compare(out: Path) -> int:
    runs = sorted(p for p in (out / "runs").iterdir() if p.is_dir())
    base = out / "runs" / "plain_g1"
    base_row = json.loads((base / "result.json").read_text()) if (base / "result.json").exists() else None
    base_loss = train_losses(base) if base_row else {}
    rows, ok = [], True
    for run in runs:
        mode, g = run.name.rsplit("_g", 1)
        res = run / "result.json"
        if not res.exists():
            rows.append({"mode": mode, "gpus": int(g), "status": "failed (see its log)"})
            ok = False
            continue
        r = json.loads(res.read_text())
        losses = train_losses(run)
        common = sorted(set(losses) & set(base_loss))
        diff = max((abs(losses[s] - base_loss[s]) / base_loss[s] for s in common), default=math.nan)
        tps = r.get("tokens_per_s")
        ratio = tps / base_row["tokens_per_s"] if base_row and tps else math.nan
        row = {"mode": mode, "gpus": int(g), "status": "ok", "tokens_per_s": round(tps or math.nan),
               "ratio_vs_plain_1gpu": round(ratio, 4), "scaling_efficiency": round(ratio / int(g), 4),
               "final_train_loss": round(r.get("train_loss") or math.nan, 5), "final_eval_loss": round(r["loss"], 5),
               "max_rel_loss_diff_vs_plain": f"{diff:.2e}", "loss_within_tol": bool(diff <= LOSS_RTOL),
               "mfu": round(r.get("mfu") or math.nan, 4), "time_warmup_s": round(r.get("time_warmup_s", math.nan), 1),
               "time_checkpoint_s": round(r.get("time_checkpoint_s", math.nan), 1), "wall_s": round(r["wall_s"], 1),
               "device": r.get("device", "")}
        ok &= bool(diff <= LOSS_RTOL) or mode == "plain"
        rows.append(row)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "multigpu.csv", "w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        print("  ".join(f"{k}={r.get(k)}" for k in keys if k != "device"))
    print(f"loss tolerance: {LOSS_RTOL:g} relative on every logged train loss vs plain_g1; "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("prepare", "compare", "corpus"))
    p.add_argument("out", type=Path)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=128, help="sequences a step (global)")
    p.add_argument("--seq", type=int, default=1024, help="model.seq_len (smaller: a quick check of the script on CPU)")
    p.add_argument("--heldout", type=int, default=65536, help="eval.heldout_tokens per domain")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    if a.what == "corpus":
        make_corpus(a.out / "syn", tokens_per_domain=20_000_000)
        return 0
    if a.what == "prepare":
        prepare(a.out, a.layers, a.steps, a.batch, a.seq, a.heldout)
        return 0
    return compare(a.out)


if __name__ == "__main__":
    sys.exit(main())
