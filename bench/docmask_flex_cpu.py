"""The flex-attention path of data.document_mask=on, compiled by inductor on the CPU (forward only: flex has no
CPU backward), against the eager dense-mask path on the same weights: a check of the code the GPU runs compiled
(mask built inside the compiled graph, shared by the layers) that needs no GPU. Takes minutes (C++ compile).

    python bench/docmask_flex_cpu.py [--layers 1] [--seq 1023]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import model_zoo  # noqa: E402
from model_zoo import docmask  # noqa: E402
from model_zoo.spec import CPU_RULE  # noqa: E402

EOD = 63


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--seq", type=int, default=1023, help="tokens a row (1023: not a multiple of flex's tile)")
    a = p.parse_args()
    # the CUDA rule (flex when compiling), on the CPU
    docmask.wants_flex = lambda d: torch.compiler.is_compiling()
    torch.manual_seed(0)
    m = model_zoo.build(CPU_RULE.shape(a.layers, vocab_size=64, seq_len=a.seq)).eval()
    x = torch.randint(0, EOD, (2, a.seq), generator=torch.Generator().manual_seed(0))
    x[0, [30, 100, 101, 200, a.seq - 2]] = EOD
    x[1, [5, 128, 129, 700 % a.seq]] = EOD
    docs = docmask.document_ids(x, EOD)
    with torch.no_grad():
        t = time.time()
        flex = torch.compile(m, fullgraph=True)(x, documents=docs)
        seconds = time.time() - t
        dense, plain = m(x, documents=docs), m(x)
    gap, effect = float((flex - dense).abs().max()), float((dense - plain).abs().max())
    print(f"layers {a.layers}, seq {a.seq}: compiled in {seconds:.0f} s; max |flex - dense| {gap:.3g}, max |masked - unmasked| "
          f"{effect:.3g} (fp32 logits): {'OK' if gap < 1e-4 else 'MISMATCH'}")


if __name__ == "__main__":
    main()
