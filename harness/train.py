"""run(spec, runtime, run_dir): train one RunSpec, resumably, and write its result row.

    validate everything (harness.preflight)   ─► SpecError before any model is built
    build model, optimizer, compiled loss step ─► resume from the newest intact checkpoint
    loop: lr(step) · micro-batches (grad accumulation) · clip · AdamW · stats summed on device
          every log_every: one metrics line (the only host read of the loss)
          every eval period: held-out loss per domain · every checkpoint period: checkpoint
          on SIGTERM/SIGUSR1/SIGUSR2: checkpoint at the step boundary, raise Preempted
    end: final eval, final checkpoint, result.json (last, atomic)

Over G processes (torchrun, Slurm tasks: harness.distributed) every rank trains its rows of each step's
batch under DDP or FSDP2; the log window's statistics and the evals are summed over ranks, rank 0 alone
writes the run directory, and checkpoints are DCP directories any G resumes from (harness.dcp).

Resume is exact: the batch at step s is a pure function of s (so the step is the data position), and
the checkpoint holds the model, optimizer, RNG states and the log window's on-device sums, so a
resumed run computes, and logs, what an uninterrupted one does. On CPU (fixed thread count, the
deterministic-algorithms flag on) that is bit for bit (tests/test_resume.py); on CUDA the restored
state is exact but some kernels (flash-attention backward, atomics) are not bit-deterministic even
between two uninterrupted runs.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import model_zoo
from harness import distributed, finish, preflight
from harness.checkpoint import rng_state, set_rng_state
from harness.data.corpus import current_tokenizer_sha256, data_root, stale_result_reason
from harness.data.mixture import MixtureStream
from harness.dcp import Store
from harness.device import Hardware, resolve
from harness.distributed import Dist
from harness.evaluate import HeldoutSet, compiled_eval, eval_batch, regional_eval, regions_in_eval
from harness.memory import memory_estimate
from harness.prefetch import Prefetcher
from harness.rundir import RunDir, result_row
from harness.schedule import lr_at
from harness.signals import Preempted, PreemptionFlag
from harness.spec import RunSpec, Runtime, SpecError
from harness.step import LossStep, step_args
from harness.tracking import Tracker
from model_zoo import docmask
from model_zoo.moe_stats import window_metrics as moe_window_metrics

# result.json's time breakdown besides time_train_s (steady-state training) and wall_s (all of it)
TIMING = ("time_setup_s", "time_warmup_s", "time_eval_s", "time_checkpoint_s")


def run(spec: RunSpec, runtime: Runtime | None, run_dir: str | Path, sweep: str = "",
        stop_at: int | None = None) -> dict | None:
    """Train `spec` in `run_dir` (resuming if it holds a checkpoint); return the result row.

    Returns at once with the stored row if run_dir already holds this spec's result.json.
    stop_at: train only up to this step, checkpoint there and return None (no result): how a cooldown
    branches' trunk is advanced from one branch point to the next (harness.branches).
    """
    runtime = runtime or Runtime()
    rd = RunDir(run_dir)
    if (done := rd.finished(spec)) is not None:  # before validation: needs no device
        if why := stale_result_reason(done, current_tokenizer_sha256(spec.data.corpus, data_root())):
            raise SpecError([f"{rd.path}: {why}"])
        return done
    env = distributed.rendezvous_env()   # {} for one process; SpecError for a world with no rendezvous
    corpus = preflight.check(spec, runtime, env)
    d = start_group(spec, runtime, env)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        if d.main:
            rd.prepare(spec, runtime)
        distributed.barrier()
        return Trainer(spec, runtime, rd, sweep, corpus, stop_at, d).train()
    finally:  # resolve() sets process-wide numerics; give the caller its own back
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        if d.sharded:
            distributed.shutdown()


def start_group(spec: RunSpec, runtime: Runtime, env: dict[str, str]) -> Dist:
    """This process's Dist: the plain one-process path (no process group) unless launched as one of several
    processes or asked for ddp/fsdp; then the process group is joined and the wrapper chosen."""
    world, rank = int(env.get("WORLD_SIZE", "1")), int(env.get("RANK", "0"))
    local_rank = int(env.get("LOCAL_RANK", "0"))
    if world == 1 and runtime.parallel in ("auto", "none"):
        return Dist()
    cuda = runtime.device.startswith("cuda") or (runtime.device == "auto" and torch.cuda.is_available())
    device_bytes = torch.cuda.get_device_properties(local_rank).total_memory if cuda else None
    params = model_zoo.count(spec.model).params_total
    local = spec.batch_size // world
    need = memory_estimate(spec.model, params, runtime.micro_batch_size or local, bf16=cuda)
    parallel = distributed.choose_parallel(runtime.parallel, world, need, device_bytes)
    if parallel == "none":
        return Dist()
    distributed.init(runtime, env, "cuda" if cuda else "cpu")
    return Dist(rank, world, local_rank, parallel)


def periods(spec: RunSpec, runtime: Runtime) -> tuple[int, int]:
    """(eval period, checkpoint period) in steps; 0 in the spec/runtime means eval.points (10 by default)
    evals and about 10 checkpoints per run."""
    steps = spec.steps
    return (spec.eval.every_steps or max(1, steps // spec.eval.points),
            runtime.checkpoint_every or max(1, steps // 10))


class SetupClock:
    """Seconds of each set-up phase, e.g. {"device_s": 1.2, "model_s": 0.3, ...}: lap(name) closes a phase."""

    def __init__(self):
        self.t, self.phases = time.perf_counter(), {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[f"{name}_s"] = self.phases.get(f"{name}_s", 0.0) + now - self.t
        self.t = now


class Diverged(FloatingPointError):
    """A log window's loss was non-finite or spiked: the batches of steps [first, last) are suspect."""

    def __init__(self, first: int, last: int, loss: float, why: str):
        self.first, self.last, self.loss = first, last, loss
        super().__init__(f"training loss {loss:.4g} at step {last} ({why})")


RECENT = 5   # log windows whose lowest loss a spike is measured against


@dataclass
class Window:
    """Log window: stats summed on the device since the last metrics line."""
    sums: torch.Tensor
    start_step: int


class Trainer:
    def __init__(self, spec: RunSpec, runtime: Runtime, rd: RunDir, sweep: str, corpus, stop_at: int | None = None,
                 d: Dist | None = None):
        self.spec, self.runtime, self.rd, self.sweep, self.corpus = spec, runtime, rd, sweep, corpus
        self.d = d = d or Dist()
        self.stop_at = spec.steps if stop_at is None else min(stop_at, spec.steps)
        self.branch: dict | None = None   # set when resumed from a trunk's fork (harness.branches)
        self.t_launch = time.perf_counter()
        self.setup = SetupClock()      # this launch's set-up by phase: metrics.jsonl's "setup" line
        self.hw: Hardware = resolve(runtime, d.local_rank if d.sharded else None)   # on CUDA: the context is made here
        self.setup.lap("device")
        self.steps = spec.steps
        self.eval_every, self.ckpt_every = periods(spec, runtime)
        B = spec.batch_size
        self.micro = runtime.micro_batch_size or B // d.world   # sequences per forward on this rank
        self.n_micro = B // d.world // self.micro

        torch.manual_seed(spec.seed)
        random.seed(spec.seed)
        np.random.seed(spec.seed)
        self.counts = model_zoo.count(spec.model)
        self.model = model_zoo.build(spec.model).to(self.hw.device)
        eod = corpus.eod_id if spec.data.document_mask == "on" else None
        if d.sharded:   # wrapped before the optimizer is built: fully_shard replaces the parameters
            step_module = LossStep(self.model, spec.optim.z_loss, len(corpus.domains), eod_id=eod)
            self.loss_step = distributed.wrap(step_module, self.model, d, self.hw.device,
                                              self.hw.dtype == torch.bfloat16, self.hw.compile)
        self.opt = self.model.configure_optimizer(spec.optim, self.hw.device.type)
        self.setup.lap("model")
        self.stream = MixtureStream(corpus, spec.data, B, spec.model.seq_len, spec.seed, total_tokens=spec.tokens,
                                    rank=d.rank, world=d.world)
        self.domains = list(self.stream.domains)
        self.setup.lap("data")
        if not d.sharded:
            step_module = LossStep(self.model, spec.optim.z_loss, len(self.domains), eod_id=eod)
            self.loss_step = compile_step(step_module, self.hw)
        self.setup.lap("step")
        self.heldout = HeldoutSet(corpus, spec.data, spec.eval.heldout_tokens, spec.model.seq_len,
                                  spec.eval.curve_tokens)
        self.eval_compiled = compiled_eval(self.hw, d.sharded, spec.data.document_mask)
        self.eval_batch = eval_batch(self.hw, spec.model.seq_len, self.micro, self.eval_compiled,
                                     self.heldout.domain_windows)
        self.eval_regional = regional_eval(self.hw, d.sharded, spec.data.document_mask)
        # compiled (or through the compiled regions): the first eval's graphs are compiled as warm-up first
        self.eval_warm = not (self.eval_compiled or self.eval_regional)
        self.downstream_evals = None   # tasks and prompts built now: a task without items fails before training
        if spec.eval.downstream or spec.eval.samples_tokens:
            from harness.downstream import InTraining  # torch-only; lm-eval is imported only for lm-eval tasks
            self.downstream_evals = InTraining(spec, corpus, self.hw.device, self.hw.autocast)
        self.setup.lap("heldout")   # the held-out set, the eval's choices, downstream tasks
        # one process: written off the training thread; save(wait=True) where the run stops or a reader follows
        self.ckpts = Store(rd.ckpt_dir, runtime.keep_checkpoints, sharded=d.sharded, main=d.main, background=True)
        self.final_queued = False   # the final step's checkpoint was queued (after_step)
        self.handed_over = False    # the checkpoint writer went to a harness.finish.Finish (finish_later)
        self.stats = step_module.layout   # the named slices of the step's statistics vector
        self.log_stats = self.stats.plus("grad_norm")   # what queue_log copies to the host
        # over G ranks a step's mean is the sum over ranks of each rank's mean / G: the window sums then add up
        # across ranks, whatever G (checkpoints hold the summed window, so it resumes on any G)
        self.scale = torch.tensor(self.stats.scale(self.n_micro * d.world), device=self.hw.device)
        self.step = 0
        self.t_mark = time.perf_counter()
        self.prior = {"elapsed_s": 0.0, "steady_tokens": 0, "steady_s": 0.0}
        # where the wall time went (result.json's time_*_s), summed over launches: set-up (build, data, resume,
        # tracker), each launch's first log window (compilation, warm-up), evals, checkpoints
        self.timing = dict.fromkeys(TIMING, 0.0)
        self.window = Window(torch.zeros(self.stats.size, device=self.hw.device), 0)
        self.pending = None        # (step, lr, stats on host, grad norm on host, event) awaiting a read
        self.windows: list[tuple[int, float]] = []   # (tokens, seconds) of this launch's log windows
        self.last_eval: dict = {}
        self.last_train: dict = {}
        self.skip: set[int] = set()     # steps whose batches a rollback skipped (never trained on)
        self.rollbacks = 0
        self.recent: list[float] = []   # the last RECENT log windows' losses (spike detection)
        # data.document_mask=on: training FLOPs of the pairs attended so far (model_zoo.counting.training_flops)
        self.flops_masked = 0 if eod is not None else None

    # ---------------------------------------------------------------- state
    def state(self) -> dict:
        return {"run_id": self.spec.run_id, "step": self.step, "model": self.model.state_dict(),
                "optimizer": self.opt.state_dict(), **self.meta_state(self.window.sums)}

    def meta_state(self, window_sums: torch.Tensor) -> dict:
        """The state besides the model and the optimizer (window_sums: this window's, summed over ranks)."""
        steady_tokens, steady_s = self.steady()
        return {"run_id": self.spec.run_id, "step": self.step, "rng": rng_state(), "window_sums": window_sums.cpu(),
                "window_start": self.window.start_step, "elapsed_s": self.elapsed(),
                "steady_tokens": steady_tokens, "steady_s": steady_s, "last_eval": self.last_eval,
                "last_train": self.last_train, "timing": self.timing_so_far(),
                "skip": sorted(self.skip), "rollbacks": self.rollbacks, "recent_losses": list(self.recent),
                "branch": self.branch, "flops_masked": self.flops_masked}

    def resume(self) -> None:
        state = self.ckpts.load_latest(self.model, self.opt)
        if state is None:
            if self.d.main:
                self.rd.rewind_metrics(0)
            return
        self.restore(state)

    def restore(self, state: dict) -> None:
        """The state besides the model and optimizer, which self.ckpts.load_latest has loaded."""
        self.skip, self.rollbacks = set(state.get("skip", [])), state.get("rollbacks", 0)
        self.recent = list(state.get("recent_losses", []))
        set_rng_state(state["rng"])
        self.step = state["step"]
        sums = state["window_sums"].to(self.hw.device)
        # the window's sums so far, over all ranks: rank 0 carries them, the others start from 0
        self.window = Window(sums if self.d.main else torch.zeros_like(sums), state["window_start"])
        self.prior = {k: state[k] for k in ("elapsed_s", "steady_tokens", "steady_s")}
        self.last_eval, self.last_train = state["last_eval"], state["last_train"]
        self.prior["timing"] = state.get("timing", {})
        self.branch = state.get("branch")
        self.flops_masked = state.get("flops_masked", self.flops_masked)
        if self.d.main:
            self.rd.rewind_metrics(self.step, evals=self.evaluated_at_checkpoint())

    def evaluated_at_checkpoint(self) -> bool:
        """Whether the checkpoint just restored holds the eval of its own step. The final checkpoint is taken before
        the final eval (after_step), so an eval line at its step was logged after it: the resumed run evaluates again
        and logs it once more, so that line goes."""
        return self.last_eval.get("step") == self.step

    def overlaps_final_save(self) -> bool:
        """Whether the final checkpoint is written while the final eval runs: one process (a DCP save is a
        collective, written in the foreground) and no downstream battery (sampled at each checkpoint, its lines
        would move before the eval's)."""
        return not self.d.sharded and self.downstream_evals is None

    def save(self, wait: bool = False) -> None:
        """Checkpoint the current step: the host copy here, the write in the background (wait: until it is on disk)."""
        self.flush()
        if self.hw.device.type == "cuda":
            torch.cuda.synchronize()  # queued training work counts as training time, not checkpoint time
        if self.downstream_evals is not None:   # the prompt battery, sampled at each checkpoint (eval time)
            t = time.perf_counter()
            for row in self.downstream_evals.at_checkpoint(self.model, self.step):
                self.write(row)
            dt = time.perf_counter() - t
            self.t_mark += dt
            self.timing["time_eval_s"] += dt
        t = time.perf_counter()
        if self.d.sharded:
            meta = self.meta_state(distributed.all_sum(self.window.sums))
            self.ckpts.save(self.step, self.model, self.opt, meta)
        else:
            self.ckpts.save(self.step, self.model, self.opt, {}, full_state=self.state())
            if wait:
                self.ckpts.wait()
        dt = time.perf_counter() - t
        self.t_mark += dt
        self.timing["time_checkpoint_s"] += dt

    def wait_saved(self) -> None:
        """Until every queued checkpoint is on disk (checkpoint time)."""
        t = time.perf_counter()
        self.ckpts.wait()
        dt = time.perf_counter() - t
        self.t_mark += dt
        self.timing["time_checkpoint_s"] += dt

    def elapsed(self) -> float:
        return self.prior["elapsed_s"] + time.perf_counter() - self.t_launch

    def timing_so_far(self) -> dict[str, float]:
        """time_*_s of this and earlier launches; the first log window of each launch is its warm-up."""
        first_window = self.windows[0][1] if self.windows else 0.0
        now = {**self.timing, "time_warmup_s": self.timing["time_warmup_s"] + first_window}   # + the eval's compile
        return {k: self.prior.get("timing", {}).get(k, 0.0) + now[k] for k in TIMING}

    def steady(self) -> tuple[int, float]:
        """Tokens and seconds of steady-state training: every log window but each launch's first
        (which holds compilation and warm-up)."""
        ws = self.windows[1:] if len(self.windows) > 1 else []
        return (self.prior["steady_tokens"] + sum(t for t, _ in ws),
                self.prior["steady_s"] + sum(s for _, s in ws))

    # ---------------------------------------------------------------- loop
    def train(self) -> dict:
        self.setup.lap("other")
        self.resume()
        self.launch_step = self.step
        self.setup.lap("resume")
        prefetch = Prefetcher(self.stream, self.step, self.steps, self.hw.device)
        self.setup.lap("prefetch")
        quiet = dataclasses.replace(self.runtime, wandb="disabled", progress=False)   # ranks other than 0
        self.tracker = Tracker(self.rd.path, self.spec, self.runtime if self.d.main else quiet, self.sweep,
                               self.steps, self.step)
        self.setup.lap("tracker")
        try:
            with PreemptionFlag() as flag:
                self.metrics = self.open_metrics()
                self.t_mark = time.perf_counter()  # a window's time runs from the previous read to its own
                self.timing["time_setup_s"] = self.t_mark - self.t_launch
                self.metrics.write(json.dumps({"kind": "setup", "step": self.step, **self.setup.phases}) + "\n")
                while True:
                    try:
                        while self.step < self.stop_at:
                            if self.step in self.skip:
                                self.skip_step(prefetch.next(self.step))
                            else:
                                self.train_step(prefetch.next(self.step))
                            self.after_step(flag)
                        break
                    except Diverged as d:
                        prefetch.close()
                        self.roll_back(d)
                        prefetch = Prefetcher(self.stream, self.step, self.steps, self.hw.device)
                if self.step < self.steps:   # stopped at stop_at: a checkpoint there, and no result
                    if self.ckpts.steps()[-1:] != [self.step]:
                        self.save(wait=True)   # the fork reads it next
                    return None
                if not self.last_eval or self.last_eval.get("step") != self.steps:
                    self.evaluate()
                # the final checkpoint: queued before the final eval (after_step), or on disk from an earlier launch
                if not self.final_queued:
                    self.wait_saved()   # what is queued, counted as checkpoint time, before the files are read
                saved = self.final_queued or self.ckpts.steps()[-1:] == [self.steps]
                if not self.d.sharded and finish.enabled():   # a sweep worker's run (harness.finish)
                    return self.finish_later(saved)
                if saved:
                    self.wait_saved()
                else:
                    self.save(wait=True)   # result.json last: after the checkpoint is on disk
                result = {**self.result(), **self.downstream()}
                if self.d.main:
                    self.rd.write_result(result)
                self.tracker.summary(result)
                return result
        except BaseException:
            self.ckpts.close(raise_errors=False)   # a checkpoint queued before the error is still good: finish it
            raise
        finally:
            if not self.handed_over:
                self.ckpts.close()
            prefetch.close()
            self.tracker.close()
            if getattr(self, "metrics", None) is not None:
                self.metrics.close()

    def finish_later(self, saved: bool) -> dict:
        """The end of a run inside harness.finish.deferred(): its result.json is queued behind the final checkpoint
        on the checkpoint writer, and the run returns without waiting for either (the caller's Finish.wait() does)."""
        if not saved:
            self.save()
        result = {**self.result(), **self.downstream()}
        self.tracker.summary(result)
        self.ckpts.then(lambda: self.rd.write_result(result))
        finish.defer(self.rd.path, self.ckpts)
        self.handed_over = True   # the writer is the Finish's to close now
        return result

    def skip_step(self, batch) -> None:
        """A batch a rollback skipped: not trained on; the schedule moves on; the log window restarts after it."""
        del batch
        self.step += 1
        self.tracker.step()
        self.window = Window(torch.zeros_like(self.window.sums), self.step)

    def roll_back(self, d: Diverged) -> None:
        """Back to the newest intact checkpoint before the suspect window; its batches are skipped from then on
        (recorded as a {"kind": "rollback"} metrics line); FloatingPointError once max_rollbacks are spent."""
        hint = f"lower train.optim.lr={self.spec.optim.lr} or raise train.optim.warmup_frac"
        if self.rollbacks >= self.runtime.max_rollbacks:
            raise FloatingPointError(f"{d}: the run diverged; gave up after {self.rollbacks} rollback(s) "
                                     f"(train.runtime.max_rollbacks={self.runtime.max_rollbacks}): {hint}") from None
        good = [s for s in self.ckpts.steps() if s <= d.first and self.ckpts.verify(s) is None]
        if not good:
            raise FloatingPointError(f"{d}: the run diverged and there is no checkpoint at or before step {d.first} "
                                     f"to roll back to (train.runtime.checkpoint_every): {hint}") from None
        self.ckpts.discard_after(good[-1])
        state = self.ckpts.load_latest(self.model, self.opt)
        skip, rollbacks = self.skip | set(range(d.first, d.last)), self.rollbacks + 1
        self.pending = None
        self.restore(state)
        self.skip, self.rollbacks = skip, rollbacks
        self.metrics.close()
        if self.d.main:
            self.rd.rewind_metrics(self.step, evals=self.evaluated_at_checkpoint())
        self.metrics = self.open_metrics()
        self.write({"kind": "rollback", "step": self.step, "detected_step": d.last, "loss": d.loss,
                    "skipped_steps": [d.first, d.last], "rollbacks": self.rollbacks, "reason": str(d)})

    def train_step(self, batch) -> None:
        lr = lr_at(self.spec.optim, self.step, self.steps)
        for group in self.opt.param_groups:
            group["lr"] = lr
        if self.d.sharded:
            self.sharded_micro_steps(batch)
        else:
            for mb in batch.split(self.n_micro):
                with self.hw.autocast():
                    loss, stats = self.loss_step(*step_args(mb))
                (loss / self.n_micro).backward()
                self.window.sums.add_(stats * self.scale)
        self.flush()  # the previous log step's stats are ready by now: read them while this step runs
        clip = self.spec.optim.grad_clip
        log_now = (self.step + 1) % self.runtime.log_every == 0 or self.step + 1 == self.steps
        grad_norm = None
        if clip > 0 or log_now:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip > 0 else float("inf"))
            grad_norm = distributed.full(grad_norm) if self.d.sharded else grad_norm
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        self.tracker.step()
        if log_now:
            self.queue_log(lr, grad_norm)

    def sharded_micro_steps(self, batch) -> None:
        """This rank's rows of the step: gradients reduced across ranks on the last micro-batch only."""
        for i, mb in enumerate(batch.split(self.n_micro)):
            with distributed.grad_sync(self.loss_step, self.model, self.d, last=i == self.n_micro - 1):
                with self.hw.autocast():
                    loss, stats = self.loss_step(*step_args(mb))
                (loss / self.n_micro).backward()
            self.window.sums.add_(stats * self.scale)

    def after_step(self, flag: PreemptionFlag) -> None:
        s = self.step
        if s == self.steps and self.overlaps_final_save():
            self.save()   # queued first: written while the final eval runs; result.json waits for it (train)
            self.final_queued = True
        if s % self.eval_every == 0 or s == self.steps:
            self.evaluate()
        preempted = bool(flag)
        if self.d.sharded:   # every rank stops at the same step: agree at log steps (a signal reaches ranks apart)
            preempted = s % self.runtime.log_every == 0 and distributed.any_rank(preempted)
        if preempted:
            self.save(wait=True)
            flag.chain()
            raise Preempted(flag.signum or signal.SIGTERM, s)
        if s % self.ckpt_every == 0 and s < self.steps:
            self.save()

    # ---------------------------------------------------------------- logging
    def queue_log(self, lr: float, grad_norm: torch.Tensor) -> None:
        """Copy the window's sums to the host without waiting; flush() reads them a step later."""
        sums = distributed.all_sum(self.window.sums) if self.d.sharded else self.window.sums
        stats = torch.cat([sums, grad_norm.detach().float().reshape(1)])
        if self.hw.device.type == "cuda":
            host = torch.empty(stats.shape, dtype=stats.dtype, pin_memory=True)
            host.copy_(stats, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        else:
            host, event = stats.clone(), None
        self.pending = (self.step, lr, host, event, self.window)
        self.window = Window(torch.zeros_like(self.window.sums), self.step)
        if event is None:  # CPU: nothing runs ahead, read now
            self.flush()

    def flush(self) -> None:
        if self.pending is None:
            return
        step, lr, host, event, window = self.pending
        self.pending = None
        if event is not None:
            event.synchronize()
        # time between two reads, each taken when the device has finished the step logged: the
        # windows tile the run's time however far the host had run ahead of the device
        now = time.perf_counter()
        seconds, self.t_mark = now - self.t_mark, now
        n_steps = step - window.start_step
        # a window that began before a resume was only timed since the resume
        tokens = (step - max(window.start_step, self.launch_step)) * self.spec.batch_tokens
        self.windows.append((tokens, seconds))
        v = self.log_stats.unpack(host.tolist())
        tps = tokens / seconds if seconds > 0 else None
        row = {"kind": "train", "step": step, "tokens": step * self.spec.batch_tokens,
               "flops": step * self.spec.batch_tokens * self.counts.flops_per_token, "lr": lr,
               "loss": v["ce"][0] / n_steps, "z_loss": v["z_loss"][0] / n_steps, "aux_loss": v["aux_loss"][0] / n_steps,
               "grad_norm": v["grad_norm"][0], "tokens_per_s": tps, "mfu": self.mfu(tps), "elapsed_s": self.elapsed()}
        for d, ce_sum, count in zip(self.domains, v["domain_ce_sum"], v["domain_tokens"]):
            row[f"train_loss_{d}"] = ce_sum / count if count else None
        if self.flops_masked is not None:   # per-document attention: count the pairs attended (counting.py)
            pairs, trained = v["attention_pairs"][0], n_steps * self.spec.batch_tokens
            self.flops_masked += model_zoo.counting.training_flops(self.spec.model, trained, round(pairs))
            row.update(flops_masked=self.flops_masked,
                       attention_pair_frac=pairs / (trained * (self.spec.model.seq_len + 1) / 2))
        moe = {k.removeprefix("moe_"): x for k, x in v.items() if k.startswith("moe_")}
        row.update(moe_window_metrics(moe, self.spec.model, n_steps))   # expert load, aux, z, dropped
        if not np.isfinite(row["loss"]):
            raise Diverged(window.start_step, step, row["loss"], "not finite")
        factor = self.runtime.spike_factor
        if factor > 0 and len(self.recent) >= RECENT and row["loss"] > factor * min(self.recent):
            raise Diverged(window.start_step, step, row["loss"], f"a spike: over {factor:g}x the lowest of the "
                                                                   f"last {RECENT} log windows, {min(self.recent):.4g}")
        self.recent = (self.recent + [row["loss"]])[-RECENT:]
        self.write(row)
        self.last_train = row

    def mfu(self, tokens_per_s: float | None) -> float | None:
        """Model FLOPs utilisation against the GPUs' bf16 peak (all G of them); None on CPU (no meaningful peak)."""
        if tokens_per_s is None or not self.hw.peak:
            return None
        return tokens_per_s * self.counts.flops_per_token / (self.hw.peak * self.d.world)

    def open_metrics(self):
        """metrics.jsonl on rank 0; the other ranks compute the same rows and write them nowhere."""
        return self.rd.open_metrics() if self.d.main else open(os.devnull, "w")

    def write(self, row: dict) -> None:
        self.metrics.write(json.dumps(row) + "\n")
        self.tracker.log(row)

    def evaluate(self) -> None:
        self.flush()
        if self.hw.device.type == "cuda":
            torch.cuda.synchronize()
        if not self.eval_warm:   # the compiled eval's graph, compiled on one call before the first eval: warm-up time
            t = time.perf_counter()
            with regions_in_eval(self.model, self.eval_regional):
                self.heldout.warm(self.model, self.hw.device, self.eval_batch, self.hw.autocast(),
                                  compiled=self.eval_compiled)
            dt = time.perf_counter() - t
            self.t_mark += dt
            self.timing["time_warmup_s"] += dt
            self.eval_warm = True
        t = time.perf_counter()
        # eval.curve_tokens: the evals before the last score the curve subset alone (curve_loss* keys, no loss*);
        # the last scores the full set and the subset from the same forward (both), so the run's result is the
        # full set's and its curve is on the subset throughout
        curve = self.spec.eval.curve_tokens > 0 and self.step < self.steps
        with regions_in_eval(self.model, self.eval_regional):
            losses = self.heldout.evaluate(self.model, self.hw.device, self.eval_batch, self.hw.autocast(),
                                           self.d.rank, self.d.world, compiled=self.eval_compiled,
                                           fixed_shape=self.eval_regional, curve=curve)
        tokens = self.step * self.spec.batch_tokens
        row = {"kind": "eval", "step": self.step, "tokens": tokens,
               "flops": tokens * self.counts.flops_per_token, **losses}
        if self.spec.eval.curve_tokens:
            row["curve_tokens"] = self.spec.eval.curve_tokens
        self.write(row)
        self.last_eval = row
        if self.downstream_evals is not None:   # the fixed subset of the downstream suite (eval.downstream_items)
            for ds_row in self.downstream_evals.at_eval(self.model, self.step):
                self.write(ds_row)
        dt = time.perf_counter() - t
        self.t_mark += dt  # eval time is not training time
        self.timing["time_eval_s"] += dt

    def downstream(self) -> dict:
        """The full downstream suite's columns at the end of the run (spec.eval.downstream; harness.downstream)."""
        if self.downstream_evals is None or not self.d.main:   # over ranks: rank 0's full DDP replica (FSDP refused)
            return {}
        scores, rows = self.downstream_evals.at_end(self.model, self.step)
        for row in rows:
            self.write(row)
        return scores

    # ---------------------------------------------------------------- result
    def result(self) -> dict:
        steady_tokens, steady_s = self.steady()
        tps = steady_tokens / steady_s if steady_s > 0 else self.last_train.get("tokens_per_s")
        row = result_row(self.spec, self.counts, sweep=self.sweep,
                         weights=zip(self.domains, self.stream.stage_weights[0].tolist()), last_eval=self.last_eval,
                         train_loss=self.last_train.get("loss"), wall_s=self.elapsed(), tokens_per_s=tps,
                         mfu=self.mfu(tps), device=self.hw.name, git_sha=git_sha(), corpus=self.corpus.name,
                         tokenizer_sha256=self.corpus.tokenizer_sha256)
        # each domain's unique train tokens: analysis derives the natural mixture and repetition caps from them
        row.update({f"corpus_tokens_{d}": int(self.corpus.manifest["domains"][d]["train_tokens"])
                    for d in self.corpus.domains})
        # the corpus's one hash (tokenizer and shards; harness.data.prepare.corpus_sha256): the report names it
        row.update(corpus_sha256=self.corpus.corpus_sha256, rollbacks=self.rollbacks, skipped_steps=len(self.skip))
        if self.d.sharded:
            row.update(world_size=self.d.world, parallel=self.d.parallel)
        if self.flops_masked is not None:   # `flops` keeps the grid's convention; this one counts the mask
            row.update(flops_masked=self.flops_masked)
        if self.spec.data.document_mask == "on":   # the kernel the masks ran in (the report names it)
            row.update(attention=docmask.training_kernel(self.hw.device.type, self.hw.compile, self.hw.dtype))
        row.update(self.timing_so_far(), time_train_s=steady_s)
        if self.branch:  # forked from a trunk: the tokens and FLOPs above are the whole run's, this dir spent the rest
            start = self.branch["branch_start_tokens"]
            fpt = self.counts.flops_per_token
            row.update(self.branch, flops_trunk_share=fpt * start, flops_spent=fpt * (row["tokens"] - start))
        return row


def compile_step(step_module: LossStep, hw: Hardware) -> torch.nn.Module:
    """The loss step the loop calls: compiled where the runtime says so (harness.warm compiles it the same way):
    whole (one graph: embedding, blocks, head, losses, statistics) or, runtime.compile=regional, the model's blocks
    and head + loss compiled apart (model_zoo.dense.Transformer.compile_regions) and the rest eager."""
    if not hw.compile:
        return step_module
    if hw.regional:
        step_module.model.compile_regions()
        return step_module
    return torch.compile(step_module)


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""
