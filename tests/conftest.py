"""Settings for the whole test session.

BLAS on one thread, for this process and the ones the tests start: the fits make many tiny vector operations
(scipy's L-BFGS-B), which OpenBLAS's thread pool makes many times dearer in CPU time (one MoE law fit: 12.4 CPU s
with the default threads, 0.4 with one, the same parameters; bench/README.md, "Test suite"). Set here, before
numpy or scipy load BLAS; a value already in the environment is kept.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# under pytest-xdist (`make test` runs one worker per core) each worker's torch gets one thread: two workers each
# taking every core would run four threads on two cores
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import subprocess  # noqa: E402  (after the BLAS setting above, like every import of this file)
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """The Slurm tests first: they mostly wait on the scheduler, so under pytest-xdist (files handed out in this
    order) they overlap the CPU-bound files instead of ending the run on one worker alone."""
    items.sort(key=lambda item: item.get_closest_marker("slurm") is None)   # stable: the rest keep their order


@pytest.fixture
def fresh_dynamo():
    """No compiled code or recompile counts carried into, or out of, a test that counts graphs (torch imported here,
    not at the top: the launcher's tests run without it)."""
    import torch
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.fixture
def no_corpus(tmp_path, monkeypatch):
    """$SCALEMIX_DATA pointing at nothing: plans are made without a built corpus (its checks say so, no error)."""
    monkeypatch.setenv("SCALEMIX_DATA", str(tmp_path / "no-data"))


@pytest.fixture(scope="session")
def syn_data(tmp_path_factory) -> Path:
    """$SCALEMIX_DATA for the sweep tests: `syn`, a synthetic corpus at the CPU grid's vocabulary (2048). One for
    the session, so that a sweep made by one module can be relaunched by another. Tests only read it."""
    from harness.data.synthetic import make_synthetic_corpus
    d = tmp_path_factory.mktemp("data")
    make_synthetic_corpus(d / "syn", vocab_size=2048, train_tokens=100_000, heldout_tokens=10_000)
    return d


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory, syn_data) -> SimpleNamespace:
    """One undisturbed `python sweep.py` of harness_util.TINY_SWEEP (two tiny runs in parallel), finished: the
    end-to-end test reads and relaunches it (tests/test_sweep.py), the fault suite compares every disturbed sweep
    with it and copies it (tests/test_faults.py). The same launch ran once in each module before (about 20 CPU s).
    Tests relaunch it or copy it, never change it. root/chinchilla is the sweep; out its stdout and stderr."""
    from harness_util import TINY_SWEEP
    root = tmp_path_factory.mktemp("tiny_sweep")
    env = {**os.environ, "SCALEMIX_DATA": str(syn_data), "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1",
           "PYTHONPATH": str(ROOT)}
    t = time.monotonic()
    r = subprocess.run([sys.executable, "sweep.py", *TINY_SWEEP, f"sweep.root={root}"], cwd=ROOT, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    return SimpleNamespace(root=root, args=[*TINY_SWEEP, f"sweep.root={root}"], out=r.stdout,
                           seconds=time.monotonic() - t)
