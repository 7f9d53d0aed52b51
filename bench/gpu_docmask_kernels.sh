#!/usr/bin/env bash
# Attention kernels alone for per-document masks on one GPU (issue 18 item 1), one call: which kernel masks-off SDPA
# runs (default dispatch, and flash / cuDNN / efficient forced), and the packed-document candidates (varlen_attn,
# SDPA on nested jagged tensors under each backend, SDPA with the dense mask, compiled flex at tiles 128 and 64),
# forward + backward per layer at d 128 / 384 / 768 (bench/docmask_bench.py's shapes and documents), each checked
# against an fp32 reference; bench/docmask_kernels.py's docstring says what exactly.
#
#   OUT=/tmp/out bash bench/gpu_docmask_kernels.sh   # from the repository root; LIMIT=225 s (under 4 minutes in all)
#   TUNE=1 LIMIT=420 OUT=/tmp/out bash bench/gpu_docmask_kernels.sh   # instead: flex tuned (USE_TMA; the options
#     # training uses, docmask.FLEX_KERNEL_OPTIONS; Inductor's autotuning, its choices in logs/auto.log) beside varlen and off
#
# Two processes one after the other (never together: the timings are the GPU's alone): the kernels used or tried before
# (main), then sdpa_default with the untried ones (extra: varlen and nested SDPA inside torch.compile, flex at tile 64;
# a CUDA fault there must not take main's results with it; their ratio is to the sdpa_default timed in their own
# process). Then the table.
# $OUT gets kernels.txt (the table, the kernels each launches, the refusals), kern_main.json, kern_extra.json,
# gpu.txt, status.txt and logs/*.log. A CPU dry run of the plumbing (CUDA-only kernels refused, flex forward only):
#   OUT=/tmp/o DEVICE=cpu WIDTHS="128 192" ARGS="--batch 2 --seq 256 --doc-median 60 --calls 2 --rounds 2" \
#     bash bench/gpu_docmask_kernels.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
LIMIT=${LIMIT:-225}
DEVICE=${DEVICE:-cuda}
WIDTHS=${WIDTHS:-384 768 128}   # the widths where masks cost most first: a part cut by its time limit keeps them
ARGS=${ARGS:-}
mkdir -p "$OUT/logs"
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/docmask-kernels-inductor}
START=$SECONDS
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
: > "$OUT/status.txt"
left() { echo $((LIMIT - (SECONDS - START))); }
# part NAME SECONDS ARGS...: bench/docmask_kernels.py with a time limit, logged, "NAME rc seconds" in status.txt
part() {
  local name=$1 limit=$2 t0=$SECONDS rc; shift 2
  if [ "$limit" -lt 10 ]; then echo "$name skipped (past LIMIT=$LIMIT s)" >> "$OUT/status.txt"; return 0; fi
  eval "timeout -k 5 $limit python bench/docmask_kernels.py --out \"$OUT\" --device $DEVICE --tag $name --widths \"$WIDTHS\" $ARGS $*" \
    > "$OUT/logs/$name.log" 2>&1; rc=$?
  echo "$name rc=$rc ${limit}s-limit $((SECONDS - t0))s" >> "$OUT/status.txt"
  grep -E '^(d=|wrote|cpu dry)' "$OUT/logs/$name.log"
  return 0
}
if [ "${TUNE:-0}" = 1 ]; then   # flex's tuned candidates, each mode in its own process, beside varlen and masks off
  l=$(( $(left) / 3 ))
  part tma $l --kernels "'sdpa_default varlen flex_b128 flex_tma_b128 flex_opts_b128'"
  part auto $(( $(left) - 8 )) --kernels "'sdpa_default varlen flex_auto_b128 flex_auto_b64'"
else
  l=$(( $(left) - 90 ))
  part main $(( l < 140 ? l : 140 ))
  part extra $(( $(left) - 8 )) --kernels "'sdpa_default varlen_compiled njt_compiled flex_b64'"
fi
python bench/docmask_kernels.py --out "$OUT" --table > "$OUT/logs/table.log" 2>&1
{ echo "parts:"; cat "$OUT/status.txt"; echo "wall $((SECONDS - START)) s"
  [ -f "$OUT/logs/auto.log" ] && { echo "Inductor's autotuning (its top choices a kernel and shape):"
    grep -A6 '^AUTOTUNE' "$OUT/logs/auto.log" | grep -v '^strides\|^dtypes' | cut -c1-400; }; } >> "$OUT/kernels.txt"
cat "$OUT/kernels.txt"
