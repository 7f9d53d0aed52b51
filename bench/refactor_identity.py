"""Issue 16's refactoring commits change no result: a tiny CPU sweep at each refactoring commit and at its parent,
compared bit for bit (every loss in result.json, every tensor of every checkpoint, the corpus' shard hashes).

    python bench/refactor_identity.py [--work DIR] [--commit SHA ...] [--span]

For every commit named (default: REFACTORS) and its first parent, the tree at that commit is `git archive`d into
DIR/<sha>, which builds its own corpus there (`harness.data.prepare`, vocab 2048, local sources only; `recipe`:
duplicates in a text directory and, where the tree reads parquet, a parquet file, so that both paths through the
deduplication run) and runs the same small sweep on it (`sweep.py +grid=chinchilla`, SWEEP: 2 budgets x 2 sizes = 4 runs of a few
steps, checkpoints every 4 steps), with PYTHONPATH at that tree. Runs are matched by run id (by shape, tokens and
seed where the ids differ) and compared field by field; trees already swept in DIR are reused.

--span also compares the commit before the first refactoring with HEAD: commits between them that are not
refactorings change the CPU numerics on purpose (model_zoo/chunked_ce.py, fused AdamW on the CPU), so that pair
is expected to differ, and says by how much. Results: bench/README.md, "Issue 16: refactorings change no result".
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
REFACTORS = {                                     # commit -> what it moved into one place
    "2b9407e": "one metrics.jsonl reader, one result row (harness.rundir)",
    "985772d": "named step statistics (harness.step.StatsLayout)",
    "abc8336": "params_compute, from_plain",
    "a369627": "one signal forwarder (sweeps.job.forward_signals)",
    "0c8e9eb": "deduplication counted once (prepare.admit)",
}
PREPARE = ["vocab_size=2048", "workers=1", "progress=false"]
SWEEP = ["+grid=chinchilla", "data.corpus=tiny", "grid.shapes.budgets=[1e10,2e10]", "grid.shapes.sizes_per_budget=2",
         "grid.shapes.min_each_side=0", "grid.shapes.tokens_per_param=1", "grid.min_steps=2", "eval.heldout_tokens=2048",
         "train.runtime.checkpoint_every=4", "sweep.max_parallel=2"]
VARIABLE = ("wall_s", "tokens_per_s", "mfu", "git_sha", "elapsed_s", "device")   # and time_*: this launch's clock


def recipe(work: Path, tree: Path) -> Path:
    """The corpus a tree builds: conf/data/recipes/tiny.yaml's sources, smaller, and two domains whose sources
    hold exact duplicates: a text directory (documents kept in memory) and, in trees that read parquet, a parquet
    file (streamed: harness.data.streamed). The same inputs for every tree, written once under DIR."""
    texts, notes = work / "texts", work / "notes.parquet"
    line = "Note {0}: the run directory holds spec.yaml, metrics.jsonl, result.json and its checkpoints.\n"
    if not texts.exists():
        import pyarrow as pa
        import pyarrow.parquet as pq

        texts.mkdir(parents=True)
        for i in range(40):
            (texts / f"t{i:02d}.txt").write_text(line.format(i) * (5 + i % 7))
        for i in range(5):                      # exact copies of t00..t04
            (texts / f"copy{i}.txt").write_text(line.format(i) * (5 + i % 7))
        pq.write_table(pa.table({"text": [line.format(1000 + i % 50) * 4 for i in range(80)]}), notes)  # 30 repeats
    domains = {"code": {"max_bytes": 3e5, "sources": [{"kind": "python_stdlib"}]},
               "prose": {"max_bytes": 3e5, "sources": [{"kind": "licences"}]},
               "texts": {"sources": [{"kind": "text_dir", "path": str(texts)}], "licence": "CC0"},
               "math": {"sources": [{"kind": "math", "bytes": 3e5}]}}
    if (tree / "harness" / "data" / "columnar.py").exists():
        domains["notes"] = {"sources": [{"kind": "parquet", "path": str(notes), "column": "text"}], "licence": "CC0"}
    path = tree / "recipe.yaml"
    path.write_text(json.dumps({"name": "tiny", "vocab_size": 2048, "heldout_frac": 0.1,
                                "tokenizer_sample_bytes": 3e5, "domains": domains}))   # JSON is YAML
    return path


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


def checkout(sha: str, work: Path) -> Path:
    """The tree at sha, extracted (not a worktree: nothing to clean up in the repository)."""
    tree = work / sha
    if not (tree / "sweep.py").exists():
        tree.mkdir(parents=True, exist_ok=True)
        data = subprocess.run(["git", "archive", "--format=tar", sha], cwd=REPO, check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            t.extractall(tree, filter="data")
    return tree


def run(cmd: list[str], tree: Path, log: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "SCALEMIX_DATA": str(tree / "data"), "WANDB_MODE": "disabled",
           "SCALEMIX_NO_PROGRESS": "1", "MPLBACKEND": "Agg"}
    t = time.monotonic()
    with open(log, "a") as f:
        rc = subprocess.run(cmd, cwd=tree, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        sys.exit(f"{' '.join(cmd[:4])} ... failed (exit {rc}) in {tree}: see {log}")
    return time.monotonic() - t


def sweep(sha: str, work: Path) -> Path:
    """DIR/<sha>/runs/chinchilla, built once: the tree's own corpus and sweep."""
    tree = checkout(sha, work)
    out = tree / "runs" / "chinchilla"
    if (tree / "swept").exists():
        return out
    log = tree / "bench.log"
    cache = work / "cache"
    t_prep = run([sys.executable, "-m", "harness.data.prepare", f"corpus={recipe(work, tree)}", *PREPARE,
                  f"out={tree / 'data' / 'tiny'}",
                  f"cache={cache}"], tree, log)
    args = list(SWEEP)
    if "replicates" in (tree / "conf" / "grid" / "chinchilla.yaml").read_text():
        args.append("grid.replicates=null")      # the CPU scale's seed replicates, where that key exists
    t_sweep = run([sys.executable, "sweep.py", *args, f"sweep.root={tree / 'runs'}"], tree, log)
    (tree / "swept").write_text(json.dumps({"prepare_s": t_prep, "sweep_s": t_sweep}))
    return out


def tensors(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a checkpoint's nested state, by its path of keys."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    out = {}
    for k, v in items:
        out.update(tensors(v, f"{prefix}/{k}"))
    return out


def runs_of(sweep_dir: Path) -> dict[tuple, Path]:
    """Run directories with a result.json, keyed by (run id) and by (shape, tokens, seed) for when ids differ."""
    out = {}
    for res in sorted(sweep_dir.glob("*/result.json")):
        row = json.loads(res.read_text())
        out[("id", row["run_id"])] = res.parent
        out[("shape", row.get("d_model"), row.get("n_layers"), row.get("tokens"), row.get("seed"))] = res.parent
    return out


def compare(a_dir: Path, b_dir: Path) -> dict:
    """Runs of two sweeps compared: loss fields exactly, checkpoint tensors bit for bit, the rest listed."""
    a, b = runs_of(a_dir), runs_of(b_dir)
    by = "id" if {k for k in a if k[0] == "id"} == {k for k in b if k[0] == "id"} else "shape"
    keys = sorted(k for k in a if k[0] == by)
    rep = {"runs": len(keys), "matched_by": by, "missing": [str(k) for k in keys if k not in b],
           "loss_values": 0, "loss_equal": 0, "other_fields_differing": set(), "ckpt_files": 0,
           "tensors": 0, "tensors_equal": 0, "max_abs_diff": 0.0, "loss_max_abs_diff": 0.0, "only_in_one": set()}
    for k in keys:
        if k not in b:
            continue
        ra, rb = (json.loads((d / "result.json").read_text()) for d in (a[k], b[k]))
        for f in sorted(set(ra) | set(rb)):
            if f in VARIABLE or f.startswith("time_"):
                continue
            if f == "loss" or f.startswith("loss_") or f == "train_loss":
                rep["loss_values"] += 1
                rep["loss_equal"] += ra.get(f) == rb.get(f)
                if isinstance(ra.get(f), float) and isinstance(rb.get(f), float):
                    rep["loss_max_abs_diff"] = max(rep["loss_max_abs_diff"], abs(ra[f] - rb[f]))
            elif ra.get(f) != rb.get(f) and not (f == "run_id" and by == "shape"):
                rep["other_fields_differing"].add(f)
        for ca in sorted((a[k] / "ckpt").glob("*.pt")):
            cb = b[k] / "ckpt" / ca.name
            if not cb.exists():
                rep["only_in_one"].add(f"ckpt/{ca.name}")
                continue
            rep["ckpt_files"] += 1
            ta, tb = (tensors(torch.load(c, map_location="cpu", weights_only=False)) for c in (ca, cb))
            rep["only_in_one"] |= set(ta) ^ set(tb)
            for name in sorted(set(ta) & set(tb)):
                x, y = ta[name], tb[name]
                rep["tensors"] += 1
                same = x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)
                rep["tensors_equal"] += same
                if not same and x.shape == y.shape and x.is_floating_point():
                    d = (x.double() - y.double()).abs().max().item()
                    rep["max_abs_diff"] = max(rep["max_abs_diff"], d if math.isfinite(d) else math.inf)
    rep["other_fields_differing"] = sorted(rep["other_fields_differing"])
    rep["only_in_one"] = sorted(rep["only_in_one"])
    return rep


def shards(tree: Path) -> dict[str, str]:
    """sha256 of every token shard and the tokenizer the tree built (the manifest holds a creation time)."""
    root = tree / "data" / "tiny"
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(root.rglob("*")) if f.is_file() and f.name != "manifest.json"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/scalemix_refactor_identity"))
    p.add_argument("--commit", action="append", help="a refactoring commit (default: all of REFACTORS)")
    p.add_argument("--span", action="store_true", help="also the commit before the first refactoring vs HEAD")
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    pairs = []
    for c in args.commit or REFACTORS:
        sha = git("rev-parse", "--short=7", c)
        pairs.append((git("rev-parse", "--short=7", f"{sha}^1"), sha, REFACTORS.get(c, c)))
    if args.span:
        first = git("rev-parse", "--short=7", f"{next(iter(REFACTORS))}^1")
        pairs.append((first, git("rev-parse", "--short=7", "HEAD"), "the whole span: before the first one vs HEAD"))
    rows = []
    for before, after, what in pairs:
        t = time.monotonic()
        a, b = sweep(before, args.work), sweep(after, args.work)
        rep = compare(a, b)
        sa, sb = shards(a.parents[1]), shards(b.parents[1])
        rep["corpus_files"], rep["corpus_identical"] = len(sa), sa == sb
        rep.update(before=before, after=after, what=what, seconds=round(time.monotonic() - t, 1))
        rows.append(rep)
        ok = (rep["runs"] > 0 and not rep["missing"] and rep["loss_equal"] == rep["loss_values"]
              and rep["tensors_equal"] == rep["tensors"] > 0 and not rep["only_in_one"] and rep["corpus_identical"])
        rep["identical"] = ok
        print(f"{before} -> {after} ({what}): {'IDENTICAL' if ok else 'DIFFERENT'}; {rep['runs']} runs by "
              f"{rep['matched_by']}, losses {rep['loss_equal']}/{rep['loss_values']} equal "
              f"(max |diff| {rep['loss_max_abs_diff']:.3g}), {rep['ckpt_files']} checkpoints, tensors "
              f"{rep['tensors_equal']}/{rep['tensors']} equal (max |diff| {rep['max_abs_diff']:.3g}), corpus "
              f"{'identical' if rep['corpus_identical'] else 'DIFFERENT'} ({rep['corpus_files']} files); other fields differing: "
              f"{rep['other_fields_differing'] or 'none'}; only in one: {rep['only_in_one'][:6] or 'none'}", flush=True)
    (args.work / "report.json").write_text(json.dumps(rows, indent=1))
    return 0 if all(r["identical"] for r in rows if "whole span" not in r["what"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
