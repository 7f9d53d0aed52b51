"""The GPU ladder's rungs as candidate shapes for `python -m analysis.holdout <sweep> --plan-big F --rungs FILE`.

    python bench/study_rungs.py runs/study > rungs.json     # the ladder rule, vocab and seq_len of the sweep's runs

analysis counts no models (it reads run directories only), so the rungs beyond a sweep's own sizes, where the run
at F x its largest budget may belong, are counted here by model_zoo: per depth, the name, FLOPs per token and every
N convention the runs table has (params_compute = active non-embedding + the vocab x d head, as harness.rundir).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.rundir import load_yaml, params_compute  # noqa: E402
from model_zoo import count  # noqa: E402
from model_zoo.spec import CPU_RULE, GPU_RULE  # noqa: E402


def rungs(sweep_dir: Path, depths=range(1, 33)) -> list[dict]:
    specs = sorted(sweep_dir.glob("*/spec.yaml"))
    if not specs:
        raise SystemExit(f"study_rungs: no spec.yaml under {sweep_dir}: give the study's sweep directory")
    m = load_yaml(specs[0])["model"]
    for rule in (GPU_RULE, CPU_RULE):   # the rule that reproduces the sweep's shapes
        same = rule.shape(int(m["n_layers"]), vocab_size=int(m["vocab_size"]), seq_len=int(m["seq_len"]))
        if same.d_model == int(m["d_model"]):
            break
    else:
        raise SystemExit(f"study_rungs: L{m['n_layers']}-d{m['d_model']} is on neither the GPU nor the CPU ladder")
    out = []
    for depth in depths:
        s = rule.shape(depth, vocab_size=int(m["vocab_size"]), seq_len=int(m["seq_len"]))
        c = count(s)
        out.append({"depth": depth, "name": f"L{depth}-d{s.d_model}", "flops_per_token": c.flops_per_token,
                    "params_compute": params_compute(c.params_active_nonembedding, s.vocab_size, s.d_model),
                    "params_nonembedding": c.params_nonembedding, "params_total": c.params_total,
                    "params_active_nonembedding": c.params_active_nonembedding, "params_active": c.params_active})
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sweep_dir", type=Path)
    print(json.dumps(rungs(p.parse_args().sweep_dir), indent=1))
