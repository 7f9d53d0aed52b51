"""A sweep's run directories written from a known law, in the harness's format (spec.yaml from a RunSpec
on the CPU ladder, metrics.jsonl, result.json from harness.rundir.result_row), so that analysis reads a
synthetic sweep exactly as a real one. It writes the committed fixture:

    python tests/synthetic_sweep.py tests/fixtures/sweep_small
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.synthetic import DOMAIN_FACTORS, FIXTURE_LAW, KnownLaw  # noqa: E402
from harness.rundir import atomic_write_bytes, dump_yaml, result_row  # noqa: E402
from harness.spec import DataSpec, RunSpec  # noqa: E402
from model_zoo.counting import count  # noqa: E402
from model_zoo.spec import CPU_RULE, ladder  # noqa: E402


def write_sweep(out_dir: str | Path, law: KnownLaw = FIXTURE_LAW, budgets=(1e14, 3e14, 1e15, 3e15, 1e16),
                sizes_per_budget: int = 7, depths=range(2, 17), noise: float = 0.007, curve_noise: float = 0.004,
                evals_per_run: int = 8, seed: int = 0, n_col: str = "params_nonembedding", sweep: str = "synthetic",
                unfinished: int = 1, vocab_size: int = 256, seq_len: int = 128, batch_tokens: int = 2048) -> Path:
    """Write run directories in the harness's format for a sweep whose losses follow `law` (in N = n_col).

    As the planner does: per budget C (exact FLOPs), the `sizes_per_budget` CPU-ladder rungs around the law's
    optimum, each with D = C / flops_per_token (whole batches). Eval points follow the law at the tokens seen
    so far. `unfinished` extra run dirs get spec.yaml and a partial metrics.jsonl but no result.json."""
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rungs = [(spec, count(spec)) for spec in ladder(CPU_RULE, depths, vocab_size=vocab_size, seq_len=seq_len).values()]
    mixture = tuple(sorted((d, 1 / len(DOMAIN_FACTORS)) for d in DOMAIN_FACTORS))
    planned = []
    for C in budgets:
        D = np.array([C / c.flops_per_token // batch_tokens * batch_tokens for _, c in rungs])
        loss = np.array([law.loss(c.n(n_col.removeprefix("params_")), d) if d > 0 else np.inf
                         for (_, c), d in zip(rungs, D)])
        lo = int(np.clip(np.argmin(loss) - sizes_per_budget // 2, 0, len(rungs) - sizes_per_budget))
        planned += [(rungs[j], int(D[j])) for j in range(lo, lo + sizes_per_budget)]
    for i, ((spec, counts), tokens) in enumerate(planned + planned[:unfinished]):
        finished = i < len(planned)
        run = RunSpec(model=spec, tokens=tokens if finished else tokens * 2, batch_tokens=batch_tokens,
                      data=DataSpec(corpus="synthetic-fixture", weights=mixture), seed=seed).validate()
        d = out / run.run_id
        d.mkdir()
        atomic_write_bytes(d / "spec.yaml", dump_yaml(run.to_dict()).encode())
        N = counts.n(n_col.removeprefix("params_"))
        lines, last = [], {}
        steps = run.steps
        eval_steps = sorted({max(1, int(round(steps * f))) for f in np.geomspace(1 / 16, 1, evals_per_run)})
        if not finished:
            eval_steps = eval_steps[: len(eval_steps) // 2]
        for step in eval_steps:
            t = step * batch_tokens
            eps = noise if step == steps else curve_noise
            loss = float(law.loss(N, t) * np.exp(eps * rng.standard_normal()))
            lines.append({"kind": "train", "step": step, "tokens": t, "flops": t * counts.flops_per_token,
                          "lr": run.optim.lr, "loss": loss * 1.01, "grad_norm": 0.5, "tokens_per_s": 20000.0,
                          "mfu": 0.0, "elapsed_s": t / 20000.0})
            last = {"kind": "eval", "step": step, "tokens": t, "flops": t * counts.flops_per_token, "loss": loss,
                    **{f"loss_{dom}": loss * f for dom, f in sorted(DOMAIN_FACTORS.items())}}
            lines.append(last)
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        if not finished:
            continue
        row = result_row(run, counts, sweep=sweep, weights=mixture, last_eval=last, train_loss=last["loss"] * 1.01,
                         wall_s=tokens / 20000.0, tokens_per_s=20000.0, mfu=0.0, device="synthetic", git_sha="",
                         corpus="synthetic-fixture", tokenizer_sha256="")
        row["synthetic_law"] = json.dumps(law.__dict__)
        atomic_write_bytes(d / "result.json", json.dumps(row, indent=1).encode())
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python tests/synthetic_sweep.py", description="Write a synthetic sweep.")
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = write_sweep(args.out_dir, seed=args.seed)
    print(f"wrote {sum(1 for _ in out.iterdir())} run dirs to {out} from {FIXTURE_LAW}")


if __name__ == "__main__":
    main()
