#!/usr/bin/env bash
# Reference trainer, then the scalemix harness, on the same GPU in the same job, then the ratio table.
#   bash bench/gpu_throughput.sh [OUT_DIR]        (REF=path/to/ref_throughput.py to override)
# Target: ratio >= 1.0 at every size (harness tokens/s over reference tokens/s).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-bench/out}}
REF=${REF:-../shared/bench/ref_throughput.py}
[ -f "$REF" ] || REF=shared/bench/ref_throughput.py
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python "$REF" | tee "$OUT/ref.jsonl"
python bench/throughput.py --device cuda | tee "$OUT/harness.jsonl"
python bench/throughput.py --compare "$OUT/ref.jsonl" "$OUT/harness.jsonl" | tee "$OUT/ratio.txt"
