#!/usr/bin/env bash
# Per-document attention masks on vs off on one GPU (issue 18): tokens/s of the harness' compiled bf16 step
# at d 128..768 in one call, the flex path's agreement with the dense-mask path, and the attention work.
#
#   OUT=/tmp/out bash bench/gpu_docmask.sh                  # d 128 and 768 (off, on with flex, on with the dense mask)
#   OUT=/tmp/out2 WIDTHS="256 512" bash bench/gpu_docmask.sh; OUT=/tmp/out3 WIDTHS="384 640" ...
#
# Needs torch with CUDA, numpy; nothing from the network. Writes $OUT/docmask.csv, ratio.txt, agreement.txt, gpu.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out/docmask}
WIDTHS=${WIDTHS:-128 768}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD WANDB_MODE=disabled
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
# shellcheck disable=SC2086
timeout 235 python bench/docmask_bench.py --out "$OUT" --d $WIDTHS --budget-s 150 ${FLEX:+--flex} 2>&1 | tee "$OUT/log.txt"
