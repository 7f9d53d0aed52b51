#!/usr/bin/env bash
# Per-document attention on one GPU (issue 18), one call: masks off vs flex vs varlen (and the dense boolean mask
# with VARIANTS="off flex varlen dense") at d 128, 384 and 768 (compiled bf16, seq 1024), flex and varlen checked
# against the dense mask (logits and gradients), everything in $OUT/docmask.tgz.
#
#   OUT=/tmp/out bash bench/gpu_docmask.sh          # from the repository root; LIMIT=210 s by default
#   (PYTHONPATH=/tmp/site:$PWD where hydra/omegaconf/submitit wheels are installed to /tmp/site)
#
# Each variant runs in its own process (bench/docmask_bench.py), so a crash of one leaves the others measured:
#   1. wave 1, processes in parallel: for each kernel in CHECKS (default varlen; CHECKS="flex varlen" for both) a
#      smoke (one compiled attention forward + backward at T = 1023, not a multiple of any tile, vs SDPA with the
#      dense mask) and the agreement check (--agree: compiled vs eager dense, logits and gradients; fp32 and bf16
#      for flex, bf16 for varlen), and every variant at the widths below BIG. Each variant process compiles and warms up under $LOCK's shared lock and times its steps
#      under the exclusive one (the smokes and checks hold the shared lock throughout): a timed loop runs alone on
#      the GPU and the CPU, once every compile of its wave is done, without a second process start per variant;
#   2. wave 2 (GPU memory), the same for the widths from BIG on;
#   3. the first crash (the smokes' first) is run again with CUDA_LAUNCH_BLOCKING=1, for a trace at the fault.
# Parts that would end past LIMIT seconds are cut or skipped and listed. Needs torch with CUDA, numpy, flock.
# A dry run of the plumbing on a CPU (the smokes fail there: no CUDA; eager, so every masked variant is the dense mask):
#   OUT=/tmp/o DEVICE=cpu WIDTHS="64 128" BIG=128 BATCH=1 EXTRA="--steps 2 --seq 128" SLOW=4 LIMIT=3000 \
#     bash bench/gpu_docmask.sh
# $OUT gets two files (the device returns few): ratio.txt and docmask.tgz, which holds docmask/ (built in $WORK):
# ratio.txt (the table, the agreement, each part's exit code and seconds), docmask.csv, agreement.txt, status.txt,
# gpu.txt, logs/*.log.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
WIDTHS=${WIDTHS:-128 384 768}
VARIANTS=${VARIANTS:-off flex varlen}
STEPS=${STEPS:-20}       # timed steps a variant
CHECKS=${CHECKS:-varlen} # the kernels smoked and checked against the dense mask (flex's passed on 2026-12-01)
LIMIT=${LIMIT:-210}
BIG=${BIG:-768}          # widths from here on run in a second wave (GPU memory)
DEVICE=${DEVICE:-cuda}   # cpu: a dry run of this script's plumbing (eager; flex, varlen and the smokes need CUDA)
SLOW=${SLOW:-1}          # multiplies the time reserved for wave 2 (a dry run on a slow machine)
WORK=${WORK:-/tmp/docmask-work}
W="$WORK/docmask"
LOCK="$W/gpu.lock"
rm -rf "$W" && mkdir -p "$W/logs" "$OUT" && : > "$LOCK"
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD WANDB_MODE=disabled PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/docmask-inductor}   # shared by the processes
START=$SECONDS
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$W/gpu.txt" 2>&1
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" >> "$W/gpu.txt" 2>&1
cat "$W/gpu.txt"
if command -v flock > /dev/null; then SHARED=(flock -s "$LOCK"); LOCKARG=(--lock "$LOCK")
else SHARED=(); LOCKARG=(); echo "no flock: timed loops may overlap other processes' compiles" | tee -a "$W/status.txt"; fi

left() { echo $((LIMIT - (SECONDS - START))); }
# part NAME SECONDS CMD...: run CMD with a time limit, log to logs/NAME.log, record "NAME rc seconds" in status.txt
part() {
  local name=$1 limit=$2 t0=$SECONDS rc; shift 2
  if [ "$limit" -lt 10 ]; then echo "$name skipped (past LIMIT=$LIMIT s)" >> "$W/status.txt"; return 0; fi
  timeout -k 5 "$limit" "$@" > "$W/logs/$name.log" 2>&1; rc=$?
  echo "$name rc=$rc ${limit}s-limit $((SECONDS - t0))s" >> "$W/status.txt"
  case $rc in 0|124|137) ;; *) echo "$name" >> "$W/failed.txt" ;; esac   # a crash, not a time limit
  return 0
}
# shellcheck disable=SC2206
BENCH=(python bench/docmask_bench.py --out "$W" --device "$DEVICE" --steps "$STEPS" ${BATCH:+--batch "$BATCH"} ${EXTRA:-})

SMOKE='
import os
import torch
from model_zoo import docmask
kind = os.environ["KIND"]
T, EOD = 1023, 99
x = torch.randint(0, EOD, (2, T), device="cuda")
x[:, 100::300] = EOD
x[0, 500:505] = EOD
docs = docmask.document_ids(x, EOD)
q, k, v = (torch.randn(2, 4, T, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
if kind == "flex":
    from torch.nn.attention.flex_attention import flex_attention
    f = torch.compile(lambda q, k, v, d: flex_attention(q, k, v, block_mask=docmask.block_mask(d)))
else:
    f = torch.compile(lambda q, k, v, d: docmask.attend(q, k, v, docmask.sequences(d)))
out = f(q, k, v, docs)
out.float().square().sum().backward()
torch.cuda.synchronize()
if kind == "varlen":
    assert docmask._VARLEN, f"torch {torch.__version__}: no usable varlen_attn (the dense mask ran)"
    print("varlen_attn:", docmask._VARLEN)
grads = [t.grad for t in (q, k, v)]
for t in (q, k, v):
    t.grad = None
ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=docmask.dense_mask(docs))
ref.float().square().sum().backward()
gap = float((out - ref).abs().max())
gaps = [float((a - t.grad).abs().max() / t.grad.abs().max()) for a, t in zip(grads, (q, k, v))]
print(f"compiled {kind} forward+backward at T={T} ran; max |{kind} - sdpa| output {gap:.3g}, dq dk dv (relative) {gaps}")
assert gap < 0.1 and max(gaps) < 0.1, f"MISMATCH: {kind} differs from SDPA with the dense mask by more than bf16 rounding"
print("smoke OK")
'

# run the variants of the widths in $1 (a test: "small" or "big") in parallel, each limited to $2 seconds
wave() {
  local which=$1 limit=$2 d v
  for d in $WIDTHS; do
    if [ "$which" = small ] && [ "$d" -ge "$BIG" ]; then continue; fi
    if [ "$which" = big ] && [ "$d" -lt "$BIG" ]; then continue; fi
    for v in $VARIANTS; do
      part "${v}_d$d" "$limit" "${BENCH[@]}" --variant "$v" --d "$d" "${LOCKARG[@]}" &
    done
  done
}
big=0; for d in $WIDTHS; do [ "$d" -ge "$BIG" ] && big=1; done
reserve=$(( big ? 100 * SLOW : 0 ))   # for wave 2 and the table
# 1. wave 1
l1=$(( $(left) - reserve - 10 ))
for kind in $CHECKS; do
  part "smoke_$kind" $(( l1 < 120 ? l1 : 120 )) "${SHARED[@]}" env KIND=$kind python -c "$SMOKE" &
  part "agree_$kind" "$l1" "${SHARED[@]}" "${BENCH[@]}" --agree $kind &
done
wave small "$l1"
wait
echo "wave 1 done at $((SECONDS - START)) s" | tee -a "$W/status.txt"
# 2. wave 2
if [ $big = 1 ]; then
  wave big $(( $(left) - 10 ))
  wait
  echo "wave 2 done at $((SECONDS - START)) s" | tee -a "$W/status.txt"
fi

# 3. the first crash again, with CUDA_LAUNCH_BLOCKING=1 (a smoke is the cheapest repro; a variant next)
if [ -s "$W/failed.txt" ]; then
  first=$(grep -m1 -E '^smoke_' "$W/failed.txt" || head -1 "$W/failed.txt")
  case $first in
    smoke_*) part "blocking_$first" "$(( $(left) - 4 ))" env CUDA_LAUNCH_BLOCKING=1 KIND="${first#smoke_}" python -c "$SMOKE" ;;
    agree_*) part "blocking_$first" "$(( $(left) - 4 ))" env CUDA_LAUNCH_BLOCKING=1 "${BENCH[@]}" --agree "${first#agree_}" ;;
    *) v=${first%_d*}; d=${first##*_d}
       part "blocking_$first" "$(( $(left) - 4 ))" env CUDA_LAUNCH_BLOCKING=1 "${BENCH[@]}" --variant "$v" --d "$d" ;;
  esac
fi

"${BENCH[@]}" --table > "$W/logs/table.log" 2>&1
{ echo "parts:"; cat "$W/status.txt"; echo "wall $((SECONDS - START)) s"; } >> "$W/ratio.txt"
cat "$W/ratio.txt"
cp "$W/ratio.txt" "$OUT/ratio.txt"
tar czf "$OUT/docmask.tgz" -C "$WORK" docmask
echo "wrote $OUT/docmask.tgz and $OUT/ratio.txt"
