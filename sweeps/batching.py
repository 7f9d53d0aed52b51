"""grid.batch: each run's batch (tokens per optimizer step), one for the whole grid or chosen per run.

    batch:
      rule: fixed           # fixed: every run at train.batch_tokens (the default: existing sweeps keep their run ids)
                            # steps: each run's batch is train.batch_tokens halved (whole sequences) until the run
                            #        trains >= target_steps optimizer steps or the batch reaches min_sequences
      target_steps: 1000    # rule=steps: the steps a run should reach (FEW_STEPS)
      min_sequences: 8      # rule=steps: the smallest batch, in sequences of model.seq_len (MIN_SEQUENCES)

Why: at one batch for a whole grid, a compute grid's largest sizes at its smallest budgets train a few hundred steps
and are optimisation-limited, which bends the fitted law (bench/README.md, "Per-run batch: grid.batch"). Porian et al.
2024 ("Resolving discrepancies in compute-optimal scaling") tune the batch per size for that reason; DeepSeek LLM
(2024) fits the batch as a power law of compute. rule=steps is the simplest rule that removes the short runs: it only
ever lowers a run's batch, and only as far as its step count needs. Each run keeps its size's lr (grid.lr_from or
train.optim.lr): the lr is not rescaled with the batch, so an lr sweep run at another batch is an approximation the
plan states.

The rule's batch reaches each run's RunSpec (its run id, the harness, result.json's batch_tokens) and so the plan
table, the cost estimate (sweeps.cost: a smaller batch's measured tokens/s) and sweep.deadline_s.
"""
from __future__ import annotations

from dataclasses import dataclass

# Runs of fewer optimizer steps are optimisation-limited: in the GPU study two runs of 284 and 463 steps (batch 128 x
# 1024) reached losses 26% and 33% above the same models on the same tokens at a 4x smaller batch (1139 and 1854
# steps), more than either run's lr at x0.5 or x2 recovered (bench/README.md, "Per-run batch: grid.batch"). A step
# count, not a time: it does not depend on the machine. The planner warns about fixed-batch grids with runs below it,
# and rule=steps aims at it by default.
FEW_STEPS = 1000
# rule=steps never halves a batch below this many sequences: smaller steps would be mostly per-step overhead on a
# GPU, and the gradient of a handful of sequences is noisy. 8 lets a 10M-token run reach FEW_STEPS at seq_len 1024.
MIN_SEQUENCES = 8
RULES = ("fixed", "steps")


@dataclass(frozen=True)
class BatchRule:
    rule: str = "fixed"
    target_steps: int = FEW_STEPS
    min_sequences: int = MIN_SEQUENCES

    def batch_tokens(self, base: int, seq_len: int, tokens: int) -> int:
        """The batch (tokens) of a run of `tokens` under this rule, from the grid's `base` (train.batch_tokens)."""
        if self.rule != "steps" or seq_len <= 0 or base % seq_len:
            return base   # a base that is not whole sequences is RunSpec.errors()' to report
        seqs = base // seq_len
        while tokens // (seqs * seq_len) < self.target_steps and seqs % 2 == 0 and seqs // 2 >= self.min_sequences:
            seqs //= 2
        return seqs * seq_len


def rule_from(cfg: dict | None, errors: list[str]) -> BatchRule:
    """grid.batch as a BatchRule (null: fixed); problems appended to errors, each naming its key. (A min_sequences
    above train.batch_tokens' sequences is no error: the rule then lowers no batch, and warnings() names the runs
    that stay short.)"""
    if not cfg:
        return BatchRule()
    rule = BatchRule(**{k: cfg[k] for k in ("rule", "target_steps", "min_sequences") if k in cfg})
    if rule.rule not in RULES:
        errors.append(f"grid.batch.rule={rule.rule!r}: use fixed (every run at train.batch_tokens) or steps (each "
                      "run's batch halved until it trains grid.batch.target_steps steps)")
    return rule


def micro_batch_errors(runs: list, micro_batch_size: int) -> list[str]:
    """train.runtime.micro_batch_size must divide each run's per-GPU share of its batch (the harness accumulates
    gradients over micro-batches of that many sequences): checked here, before compute, for every run's batch."""
    if micro_batch_size <= 0:
        return []
    bad = [r for r in runs if r.spec.batch_size % max(1, r.gpus) == 0
           and (r.spec.batch_size // max(1, r.gpus)) % micro_batch_size]
    if not bad:
        return []
    worst = min(bad, key=lambda r: r.spec.batch_size // max(1, r.gpus))
    share = worst.spec.batch_size // max(1, worst.gpus)
    fix = (f"raise grid.batch.min_sequences to a multiple of {micro_batch_size} x the run's GPUs"
           if len({r.spec.batch_tokens for r in runs}) > 1 else "change train.batch_tokens")
    return [f"train.runtime.micro_batch_size={micro_batch_size}: does not divide the per-GPU batch of {len(bad)} "
            f"run(s) (e.g. {worst.label!r}: {worst.spec.batch_size} sequences over {worst.gpus} GPU(s) = {share} "
            f"each): set train.runtime.micro_batch_size to a divisor of {share} (0: the whole share), or {fix}"]


def warnings(rule: BatchRule, runs: list, base: int) -> list[str]:
    """rule=steps: the runs that still train fewer than target_steps steps at the floor, named. rule=fixed: how many
    runs train fewer than FEW_STEPS steps although a smaller batch could give them more (suggest rule=steps)."""
    if rule.rule == "steps":
        short = [r for r in runs if r.spec.steps < rule.target_steps]
        if not short:
            return []
        named = ", ".join(f"{r.label!r} ({r.spec.steps} steps at {r.spec.batch_size} sequences)"
                          for r in sorted(short, key=lambda r: r.spec.steps)[:5])
        return [f"grid.batch.rule=steps: {len(short)} run(s) train fewer than grid.batch.target_steps="
                f"{rule.target_steps} steps at the smallest batch the rule allows (grid.batch.min_sequences="
                f"{rule.min_sequences}, halving from train.batch_tokens={base}): {named}"
                f"{' ...' if len(short) > 5 else ''}; lower grid.batch.min_sequences or give them more tokens"]
    halvable = [r for r in runs if r.spec.steps < FEW_STEPS and r.spec.batch_size % 2 == 0
                and r.spec.batch_size // 2 >= rule.min_sequences]
    if not halvable:
        return []
    fewest = min(halvable, key=lambda r: r.spec.steps)
    return [f"grid.batch.rule=fixed: {len(halvable)} of {len(runs)} runs train fewer than {FEW_STEPS} optimizer steps "
            f"at train.batch_tokens={base} (fewest: {fewest.label!r}, {fewest.spec.steps} steps); runs that short are "
            "optimisation-limited and bend the fitted law (bench/README.md, \"Per-run batch: grid.batch\"): set "
            "grid.batch.rule=steps to halve each such run's batch until it trains grid.batch.target_steps steps"]


def summary(rule: BatchRule, runs: list, base: int) -> list[str]:
    """The plan table's line on the batch, when the rule changed any run's."""
    batches = sorted({r.spec.batch_tokens for r in runs})
    if rule.rule != "steps" or batches == [base]:
        return []
    lowered = [r for r in runs if r.spec.batch_tokens != base]
    smaller = sorted({r.spec.batch_tokens for r in lowered})
    return [f"batch: grid.batch.rule=steps lowered the batch of {len(lowered)} of {len(runs)} runs from "
            f"train.batch_tokens={base} (to {', '.join(map(str, smaller))} tokens) so that each "
            f"trains >= {rule.target_steps} steps (floor {rule.min_sequences} sequences); each keeps its size's lr (the "
            "'lr from' column), not rescaled for the smaller batch: an lr sweep ran at its own batch"]
