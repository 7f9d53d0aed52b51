"""bench/gpu_study.sh's whole cycle on the CPU at a toy scale: a call cut off mid-run, a cold machine, a relaunch.

    python bench/study_toy.py [--limit 90] [--work /tmp/study_toy]

1. a synthetic corpus (3 domains, vocab 256) and the study's grid (grid/study.yaml) shrunk by overrides (EXTRA) to one
   budget and two CPU-ladder sizes of ~2000 steps each, trained one at a time
2. call 1: `bash bench/gpu_study.sh grid` with LIMIT=--limit, MARGIN=--margin: SIGTERM reaches the sweep mid-run; the
   call packs study.tgz. Checked: some run is unfinished with a checkpoint strictly inside its steps
3. a cold machine: the run root is deleted; study.tgz becomes the carried state ($STATE)
4. call 2 (LIMIT 600): restores, resumes, finishes. Checked: every run done
5. the same grid uninterrupted in a fresh root; checked: every run's metrics.jsonl (train and eval lines, timing
   fields left out) and result.json losses equal the resumed ones exactly

Prints each call's wall time, the tarball sizes and PASS or FAIL. On a loaded machine the start-up before training
can eat the whole first window: then it says so (raise --limit) instead of passing.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TOY = ("model=cpu data.corpus=syn ~data.weights model.vocab_size=256 model.seq_len=32 scale.batch_tokens=256 "
       "scale.threads=1 sweep.max_parallel=1 grid.shapes.budgets=[4e10] grid.shapes.sizes_per_budget=2 "
       "grid.shapes.min_each_side=0 grid.shapes.tokens_per_param=20 grid.replicates=null grid.lr_from=null "
       "grid.min_steps=2 eval.heldout_tokens=1024 sweep.max_epochs=1000 sweep.throughput_table=null "
       "train.runtime.checkpoint_every=100")
TIMING = ("tokens_per_s", "mfu", "wall_s", "time", "elapsed", "time_")


def call(work: Path, root: Path, out: Path, limit: int, margin: int) -> tuple[int, float, str]:
    env = dict(os.environ, SCALEMIX_DATA=str(work / "data"), LIMIT=str(limit), MARGIN=str(margin), MIN_LEFT="5",
               ROOT=str(root), STATE=str(work / "state" / "runs.tgz"), STAGE=str(work / "stage"), CORPUS="syn",
               EXTRA=TOY, OUT=str(out), PYTHONPATH=str(REPO))
    t = time.time()
    r = subprocess.run(["bash", "bench/gpu_study.sh", "grid"], cwd=REPO, env=env, capture_output=True, text=True)
    return r.returncode, time.time() - t, r.stdout + r.stderr


def strip(line: dict) -> dict:
    return {k: v for k, v in line.items() if not k.startswith(TIMING) and k not in TIMING}


def losses(root: Path) -> dict[str, tuple]:
    out = {}
    for run in sorted((root / "study").glob("*/result.json")):
        lines = [json.loads(x) for x in (run.parent / "metrics.jsonl").read_text().splitlines() if x.strip()]
        metrics = [strip(x) for x in lines if x.get("kind") in ("train", "eval")]
        res = json.loads(run.read_text())
        out[run.parent.name] = (res["loss"], res["train_loss"], metrics)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--limit", type=int, default=200, help="call 1's LIMIT (s): start-up + part of the first run")
    p.add_argument("--margin", type=int, default=40, help="call 1's MARGIN (s): SIGTERM this long before LIMIT")
    p.add_argument("--work", type=Path, default=Path("/tmp/study_toy"))
    a = p.parse_args()
    from bench.study_state import latest_checkpoint, steps_of
    from harness.data.synthetic import make_synthetic_corpus
    work = a.work
    if work.exists():
        shutil.rmtree(work)
    make_synthetic_corpus(work / "data" / "syn", vocab_size=256, train_tokens=100_000, heldout_tokens=10_000)
    (work / "state").mkdir(parents=True)
    root, ref = work / "runs", work / "runs_ref"
    problems = []

    rc, wall, log = call(work, root, work / "out1", a.limit, a.margin)
    print(f"call 1: exit {rc}, {wall:.0f} s (LIMIT {a.limit})")
    print("\n".join(x for x in log.splitlines() if x.startswith(("sweep exit", "packed", "study:", "GPU-sec"))))
    if rc != 0:
        print(log[-3000:])
        return 1
    cut = [(r.name, latest_checkpoint(r)[0], steps_of(r)) for r in sorted((root / "study").glob("*"))
           if (r / "spec.yaml").is_file() and not (r / "result.json").is_file()]
    mid = [c for c in cut if 0 < c[1] < (c[2] or 0)]
    if not mid:
        print(f"not interrupted mid-run (unfinished: {cut}): raise --limit if nothing had started, lower it if "
              "everything finished")
        return 2
    with tarfile.open(work / "out1" / "study.tgz") as tar:
        packed = [m.name for m in tar.getmembers() if "/ckpt/" in m.name]
    print(f"cut mid-run: {mid}; checkpoints in study.tgz: {packed}")
    if not any(f"/{name}/ckpt/step_{step:08d}.pt" in "|".join("/" + x for x in packed) for name, step, _ in mid):
        problems.append("the interrupted run's latest checkpoint is not in study.tgz")

    shutil.rmtree(root)                                             # a cold machine: only the carried state is left
    shutil.copyfile(work / "out1" / "study.tgz", work / "state" / "runs.tgz")
    rc, wall, log = call(work, root, work / "out2", 600, 10)
    print(f"call 2 (cold machine, state restored): exit {rc}, {wall:.0f} s")
    print("\n".join(x for x in log.splitlines() if x.startswith(("restored", "sweep exit", "packed", "study:", "GPU-"))))
    if rc != 0:
        problems.append(f"call 2 exit {rc}:\n{log[-3000:]}")

    (work / "state" / "runs.tgz").unlink()
    rc, wall, log = call(work, ref, work / "out_ref", 600, 10)
    print(f"reference (uninterrupted, fresh root): exit {rc}, {wall:.0f} s")
    resumed, straight = losses(root), losses(ref)
    if not straight or sorted(resumed) != sorted(straight):
        problems.append(f"runs differ: resumed {sorted(resumed)} vs uninterrupted {sorted(straight)}")
    for run_id in sorted(set(resumed) & set(straight)):
        same = resumed[run_id] == straight[run_id]
        print(f"{run_id}: loss {resumed[run_id][0]!r} vs {straight[run_id][0]!r}, metrics lines "
              f"{len(resumed[run_id][2])} vs {len(straight[run_id][2])}: {'identical' if same else 'DIFFERENT'}")
        if not same:
            problems.append(f"{run_id}: resumed run differs from the uninterrupted one")
    print("PASS" if not problems else "FAIL:\n" + "\n".join(problems))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
