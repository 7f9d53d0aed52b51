"""`python -m model_zoo`: the size ladders with exact parameter and FLOP counts (no model is built).

    python -m model_zoo                                            # GPU_RULE and CPU_RULE
    python -m model_zoo --rule 16,16,16 --vocab 2048 --seq 128 --depths 1 2 3 4 5 6 7 8
                                                                   # any rule, e.g. the demo's (conf/model/cpu.yaml)
"""
from __future__ import annotations

import argparse

from model_zoo.counting import count
from model_zoo.spec import CPU_RULE, GPU_RULE, LadderRule, ladder


def human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def table(rule: LadderRule, depths, vocab_size: int, seq_len: int) -> str:
    header = (f"{'name':<12}{'d_model':>8}{'layers':>7}{'heads':>6}{'ffn':>6}{'N non-emb':>11}{'total':>9}"
              f"{'FLOPs/tok':>11}{'6N':>9}{'exact/6N':>9}")
    lines = [header, "-" * len(header)]
    for name, spec in ladder(rule, depths, vocab_size=vocab_size, seq_len=seq_len).items():
        c = count(spec)
        lines.append(f"{name:<12}{spec.d_model:>8}{spec.n_layers:>7}{spec.n_heads:>6}{spec.ffn_hidden:>6}"
                     f"{human(c.params_nonembedding):>11}{human(c.params_total):>9}{human(c.flops_per_token):>11}"
                     f"{human(c.flops_per_token_6n):>9}{c.flops_per_token / c.flops_per_token_6n:>9.2f}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--seq", type=int, default=1024, help="seq_len for the attention FLOPs")
    p.add_argument("--gpu-depths", type=int, nargs="+", default=[*range(1, 7), *range(8, 29, 2)])
    p.add_argument("--cpu-depths", type=int, nargs="+", default=list(range(1, 7)))
    p.add_argument("--rule", metavar="ASPECT,HEAD_DIM,FFN_MULTIPLE",
                   help="print only this rule's ladder (a model config's `rule`), e.g. 16,16,16")
    p.add_argument("--depths", type=int, nargs="+", default=list(range(1, 9)), help="the depths --rule prints")
    a = p.parse_args(argv)
    ladders = (("GPU_RULE", GPU_RULE, a.gpu_depths), ("CPU_RULE", CPU_RULE, a.cpu_depths))
    if a.rule:
        try:
            aspect, head_dim, ffn_multiple = (int(x) for x in a.rule.split(","))
        except ValueError:
            p.error(f"--rule={a.rule!r}: give three integers, aspect,head_dim,ffn_multiple (e.g. 16,16,16)")
        ladders = (("rule", LadderRule(aspect=aspect, head_dim=head_dim, ffn_multiple=ffn_multiple), a.depths),)
    for title, rule, depths in ladders:
        print(f"{title} {rule}  (vocab {a.vocab}, seq_len {a.seq}, untied; FLOPs/tok = exact training "
              f"FLOPs per token incl. head and causal attention)")
        print(table(rule, depths, a.vocab, a.seq))
        print()


if __name__ == "__main__":
    main()
