"""Shared helpers for the harness tests: a tiny corpus, a tiny spec, and a CLI subprocess."""
from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.data.synthetic import make_synthetic_corpus
from harness.spec import RunSpec, Runtime
from model_zoo.spec import CPU_RULE

REPO = Path(__file__).resolve().parents[1]


def compose_config(*overrides):
    """The project's Hydra config with these overrides, as `python sweep.py <overrides>` composes it."""
    from hydra import compose, initialize_config_dir
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))
# the smallest real sweep: two runs of the smallest CPU rungs, a few steps each, in parallel (a checkpoint every 4
# steps and 5 retries: what the fault suite needs). conftest.tiny_sweep launches it once a session.
TINY_SWEEP = ["+grid=chinchilla", "grid.replicates=null", "data.corpus=syn", "grid.shapes.budgets=[1e10]",
              "grid.shapes.sizes_per_budget=2", "grid.shapes.min_each_side=0", "grid.shapes.tokens_per_param=1",
              "grid.min_steps=2", "eval.heldout_tokens=2048", "sweep.max_parallel=2",
              "train.runtime.checkpoint_every=4", "sweep.retries=5"]


def make_corpus(path: Path) -> Path:
    return make_synthetic_corpus(path, train_tokens=40_000, heldout_tokens=4_000)


def tiny_spec(corpus: Path, steps: int = 40, seq_len: int = 32, batch: int = 8, **over) -> RunSpec:
    """A CPU-ladder model (L2-d64) on the synthetic corpus; `over` sets RunSpec dict keys."""
    model = CPU_RULE.shape(2, vocab_size=256, seq_len=seq_len).to_dict()
    d = {"model": model, "tokens": steps * batch * seq_len, "batch_tokens": batch * seq_len,
         "data": {"corpus": str(corpus)}, "eval": {"heldout_tokens": 1024, "every_steps": 10},
         "optim": {"lr": 3e-3, "warmup_frac": 0.1}}
    for k, v in over.items():
        d[k] = {**d[k], **v} if isinstance(v, dict) and isinstance(d.get(k), dict) else v
    return RunSpec.from_dict(d)


def runtime(**kw) -> Runtime:
    base = dict(device="cpu", threads=1, wandb="disabled", progress=False, log_every=1, checkpoint_every=20)
    return Runtime(**{**base, **kw})


def cli(spec: RunSpec, rt: Runtime, out: Path) -> subprocess.Popen:
    """`python -m harness --spec-json ... --out out` in a fresh process."""
    env = dict(os.environ, WANDB_MODE="disabled", PYTHONPATH=str(REPO))
    args = [sys.executable, "-m", "harness", "--spec-json", spec.canonical_json(),
            "--runtime-json", json.dumps(vars(rt)), "--out", str(out)]
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _train(spec: RunSpec, rt: Runtime, out: str) -> None:
    from harness.train import run
    run(spec, rt, out)


def forked(spec: RunSpec, rt: Runtime, out: Path) -> multiprocessing.Process:
    """harness.train.run(spec, rt, out) in a child forked from this process, started (join it; exit code 0: the
    run finished). A process of its own for the run, without the imports a fresh interpreter pays (torch,
    harness.train: about 5 CPU s, more than a tiny run's training); the way test_distributed starts its ranks."""
    proc = multiprocessing.get_context("fork").Process(target=_train, args=(spec, rt, str(out)))
    proc.start()
    return proc


class Forked:
    """`target(*args)` in a child forked from this process, driven as the tests drive a subprocess.Popen of the
    CLI: poll(), send_signal(), wait(), returncode (negative: the signal that ended it), communicate() (no
    output: the child writes to this process's stdout and stderr). For a run that is killed on purpose, whose
    command-line output no test reads: it starts without a fresh interpreter's imports (about 5 CPU s)."""

    def __init__(self, target, *args):
        self.proc = multiprocessing.get_context("fork").Process(target=target, args=args)
        self.proc.start()

    def poll(self) -> int | None:
        return self.proc.exitcode

    def send_signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float | None = None) -> int | None:
        self.proc.join(timeout)
        return self.proc.exitcode

    @property
    def returncode(self) -> int | None:
        return self.proc.exitcode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return "", ""


def metrics(run_dir: Path, kind: str = "train") -> list[dict]:
    rows = [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


def locked_pid(lock: Path) -> int | None:
    """The pid written in a held lock file (RunLock: 'host pid'; the train lock: 'pid N'), else None."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None                                # nobody holds it
    except BlockingIOError:
        text = lock.read_text().split()
        return int(text[-1]) if text and text[-1].isdigit() else None
    finally:
        os.close(fd)


def wait_for(what: str, cond, timeout: float = 120, poll: float = 0.05):
    """cond()'s first truthy value, polled every `poll` seconds; fails the test naming `what` after `timeout`."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if found := cond():
            return found
        time.sleep(poll)
    pytest.fail(f"timed out waiting for {what}")


def with_backend(monkeypatch, backend) -> None:
    """torch.compile with another backend (aot_eager: traced as for inductor, eager kernels; a CompileCounter counts
    the graphs), for the code under test that calls torch.compile itself."""
    import functools

    import torch
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=backend))


def assert_only_the_changed_document_moves(model, x, eod: int, start: int, end: int, seed: int) -> None:
    """x [2, T] has two equal rows whose documents are cut by EOD tokens; row 1's tokens start..end-1 (one document,
    its EOD at `end`) are redrawn: a per-document mask leaves every other position's logits as they were (within
    1e-5) and the changed document's do move."""
    import torch

    from model_zoo import docmask
    x[1, start:end] = torch.randint(0, eod, (end - start,), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        a, b = model(x, documents=docmask.document_ids(x, eod)).unbind(0)
    keep = torch.ones(x.shape[1], dtype=torch.bool)
    keep[start:end + 1] = False                                          # the changed document, its EOD included
    torch.testing.assert_close(a[keep], b[keep], rtol=0, atol=1e-5)
    assert (a[~keep] - b[~keep]).abs().max() > 1e-2


def assert_path_equals_dense_mask(model, x, eod: int, monkeypatch, switch: str) -> None:
    """The model's logits with docmask.<switch> (wants_flex, wants_varlen) forced True equal the dense-mask path's
    (within 1e-4), and the mask matters here (the comparison can fail)."""
    import torch

    from model_zoo import docmask
    docs = docmask.document_ids(x, eod)
    with torch.no_grad():
        dense = model(x, documents=docs)
        monkeypatch.setattr(docmask, switch, lambda documents: True)
        got = model(x, documents=docs)
        plain = model(x)
    torch.testing.assert_close(got, dense, rtol=0, atol=1e-4)
    assert (dense - plain).abs().max() > 1e-2
