"""Bootstrap over runs: seeded resamples and a small parallel map with a progress bar.

A resample draws len(runs) runs with replacement. `resample_weights` gives the same draws as
multiplicities (how often each run was drawn), which lets a fit evaluate every resample's objective
in one matrix product instead of materialising a table per resample.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext

import numpy as np
from tqdm.auto import tqdm


def one_blas_thread():
    """Context: BLAS on one thread. Fits make many tiny vector operations, which OpenBLAS's thread pool makes
    10x slower on a busy machine (measured: 16 ms vs 200 ms per approach-3 resample at load 10 on 2 cores)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it fits are correct, only slower on busy machines
        return nullcontext()
    return threadpool_limits(1)


def resample_indices(n_items: int, n_resamples: int, seed: int) -> np.ndarray:
    """[n_resamples, n_items] row indices, drawn with replacement; a pure function of the seed."""
    return np.random.default_rng(seed).integers(0, n_items, size=(n_resamples, n_items))


def resample_weights(n_items: int, n_resamples: int, seed: int) -> np.ndarray:
    """[n_resamples, n_items] multiplicities of the same draws as `resample_indices(n_items, n_resamples, seed)`."""
    idx = resample_indices(n_items, n_resamples, seed)
    w = np.zeros((n_resamples, n_items))
    np.add.at(w, (np.arange(n_resamples)[:, None], idx), 1.0)
    return w


def parallel_map(fn: Callable, items: Sequence, processes: int = 2, desc: str = "bootstrap",
                 chunks_per_process: int = 8, batched: bool = False) -> list:
    """[fn(x) for x in items] in `processes` worker processes (1: in this process), with a tqdm bar.

    Items go out in a few large chunks so process start-up and pickling stay small next to the work.
    `fn` must be a module-level function (picklable). batched=True: fn takes a list of items and returns their
    results in order (it runs them together: analysis/lbfgs.py); a chunk a process then, as a batch pays its
    per-round cost once per chunk (its results may not depend on the chunking)."""
    processes = max(1, min(processes, os.cpu_count() or 1, len(items) or 1))
    disable = os.environ.get("SCALEMIX_NO_PROGRESS") == "1" or len(items) < 50
    if processes == 1:
        with one_blas_thread():
            if batched:
                return list(fn(list(items))) if len(items) else []
            return [fn(x) for x in tqdm(items, desc=desc, disable=disable, leave=False)]
    n_chunks = min(len(items), processes * (1 if batched else chunks_per_process))
    bounds = np.linspace(0, len(items), n_chunks + 1).astype(int)
    chunks = [(fn, items[a:b], batched) for a, b in zip(bounds[:-1], bounds[1:])]
    out: list = []
    with ProcessPoolExecutor(processes) as pool, tqdm(total=len(items), desc=desc, disable=disable,
                                                       leave=False) as bar:
        for res in pool.map(_run_chunk, chunks):
            out += res
            bar.update(len(res))
    return out


def _run_chunk(args) -> list:
    fn, items, batched = args
    with one_blas_thread():
        return list(fn(list(items))) if batched else [fn(x) for x in items]
