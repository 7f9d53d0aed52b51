#!/usr/bin/env bash
# Reference trainer, then the scalemix harness, shape by shape on the same GPU in the same job, then
# the ratio table (harness tokens/s / reference tokens/s; target >= 1.0 at every size).
#
#   bash bench/gpu_throughput.sh [OUT_DIR] [WIDTHS]
#   bash bench/gpu_throughput.sh bench/out "128 192 256"     # a few minutes per call (compile dominates);
#   bash bench/gpu_throughput.sh bench/out "384 512"         # each call appends to OUT and prints the table
#   bash bench/gpu_throughput.sh bench/out "640 768"         # of everything measured so far
#
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench/out}
WIDTHS=${2:-128 192 256 384 512 640 768}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/gpu.txt"
# both sides' MFU against the same peak: the harness' table (harness/device.py) for this GPU
PEAK=$(python -c 'import torch; from harness.device import peak_flops; print(peak_flops(torch.device("cuda")) or "")')
for d in $WIDTHS; do
  L=$((d / 64))   # the reference ladder: 64-wide heads, d_model = 64 * n_layers
  python bench/ref_throughput.py --d "$d" --layers "$L" --heads "$L" ${PEAK:+--peak "$PEAK"} | tee -a "$OUT/ref.jsonl"
  python bench/throughput.py --device cuda --d "$d" | tee -a "$OUT/harness.jsonl"
done
python bench/throughput.py --compare "$OUT/ref.jsonl" "$OUT/harness.jsonl" | tee "$OUT/ratio.txt"
