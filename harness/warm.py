"""Compile a run's loss step ahead of its training, in another process, so that the run finds it compiled.

torch.compile keeps what it compiles in on-disk caches (Inductor's FX graph cache, AOTAutograd's cache and
Triton's kernels, under $TORCHINDUCTOR_CACHE_DIR, which a sweep shares: sweep.inductor_cache). A run whose
model shape was compiled before, by any process, then spends seconds tracing instead of the cold compile.
sweeps.ahead calls `compile_ahead` for the runs a sweep's workers will train next while they train the
current ones. It builds what the trainer compiles (harness.train: the model, LossStep, compile_step) and
calls it forward and backward once on a batch of the run's micro-batch shape; values do not matter. Where the run
will evaluate through compiled graphs (harness.evaluate.compiled_eval or regional_eval), their no-grad graphs are
compiled too, by the trainer's own warm-up call (HeldoutSet.warm) at the run's eval call size; else the run's
first eval compiled them (under REGIONAL_EVAL: each width's no-grad block and tail) as warm-up of its own.
"""
from __future__ import annotations

import time

import torch

import model_zoo
from harness import preflight
from harness import train as trainer
from harness.data.batch import TokenBatch
from harness.data.mixture import MixtureStream
from harness.device import resolve
from harness.evaluate import HeldoutSet, eval_batch, regions_in_eval
from harness.spec import RunSpec, Runtime
from harness.step import LossStep, step_args
from harness.train import compile_step


def compile_ahead(spec: RunSpec, runtime: Runtime) -> float | None:
    """Seconds spent compiling `spec`'s loss step (forward and backward); None when its runtime does not compile."""
    corpus = preflight.check(spec, runtime)
    hw = resolve(runtime)
    if not hw.compile:
        return None
    t = time.perf_counter()
    B, T = spec.batch_size, spec.model.seq_len
    n_domains = len(MixtureStream(corpus, spec.data, B, T, spec.seed, total_tokens=spec.tokens).domains)
    model = model_zoo.build(spec.model).to(hw.device)
    # document masks: the trainer's step has the corpus's eod_id and takes the batch's document starts (built on the
    # host, harness.step.step_args) as a fourth input; without them this traced a graph no masked run looks up
    eod = corpus.eod_id if spec.data.document_mask == "on" else None
    step = compile_step(LossStep(model, spec.optim.z_loss, n_domains, eod_id=eod), hw)
    # three distinct tensors, as the loop passes: one tensor given three times is traced as ONE graph input
    # (dynamo and AOTAutograd deduplicate aliased arguments), another graph than the run's, so the caches missed
    batch = TokenBatch(*(torch.zeros(runtime.micro_batch_size or B, T, dtype=torch.long) for _ in range(3)))
    if eod is not None:
        batch = batch.with_starts(eod)
    with hw.autocast():
        loss, _ = step(*step_args(batch.to(hw.device)))
    loss.backward()
    # the eval's graphs, as the trainer chooses and warms them (harness.train.Trainer: one process, not sharded)
    doc = spec.data.document_mask
    on_compiled, on_regions = trainer.compiled_eval(hw, False, doc), trainer.regional_eval(hw, False, doc)
    if on_compiled or on_regions:
        held = HeldoutSet(corpus, spec.data, spec.eval.heldout_tokens, T, spec.eval.curve_tokens)
        batch = eval_batch(hw, T, runtime.micro_batch_size or B, on_compiled, held.domain_windows)
        with regions_in_eval(model, on_regions):
            held.warm(model, hw.device, batch, hw.autocast(), compiled=on_compiled)
    if hw.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t
