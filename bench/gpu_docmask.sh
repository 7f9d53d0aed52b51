#!/usr/bin/env bash
# Per-document attention on one GPU (issue 18), one call: masks off vs the dense boolean mask vs flex at d 128, 384
# and 768 (compiled bf16, seq 1024), flex checked against dense, everything in $OUT/docmask.tgz.
#
#   OUT=/tmp/out bash bench/gpu_docmask.sh          # from the repository root; about 3 minutes
#   (PYTHONPATH=/tmp/site:$PWD where hydra/omegaconf/submitit wheels are installed to /tmp/site)
#
# Each variant runs in its own process (bench/docmask_bench.py), so a crash of one (flex's "illegal memory access"
# on the H200 with the first flex path) leaves the others measured:
#   1. smoke: one compiled flex forward + backward at T = 1023 (not a multiple of the 128-token tile), vs SDPA;
#   2. compile-ahead, processes in parallel (two waves, by GPU memory): every variant compiles and warms up without
#      timing, filling inductor's on-disk cache; alongside, --agree (compiled flex vs eager dense at T = 1023, fp32
#      and bf16, logits and gradients: the verdict on flex's correctness);
#   3. timed, one process at a time (each loads its compiled kernels from the cache): tokens/s, first-step loss and
#      gradient norm; a variant whose compile-ahead crashed is not run again;
#   4. the first crash (the smoke's first) is run again with CUDA_LAUNCH_BLOCKING=1, for a trace at the fault.
# Parts that would end past LIMIT seconds (default 170) are skipped and listed. Needs torch with CUDA and numpy.
# A dry run of the plumbing on a CPU (the smoke fails there: no CUDA):
#   OUT=/tmp/o DEVICE=cpu WIDTHS="64 128" BIG=128 BATCH=1 EXTRA="--steps 2" SLOW=8 LIMIT=3000 bash bench/gpu_docmask.sh
# $OUT gets two files (the device returns few): ratio.txt and docmask.tgz, which holds docmask/ (built in $WORK):
# ratio.txt (the table, the agreement, each part's exit code and seconds), docmask.csv, agreement.txt, status.txt,
# gpu.txt, logs/*.log.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
WIDTHS=${WIDTHS:-128 384 768}
LIMIT=${LIMIT:-170}
BIG=${BIG:-768}          # widths from here on compile ahead in a second wave (GPU memory)
DEVICE=${DEVICE:-cuda}   # cpu: a dry run of this script's plumbing (eager; flex and the smoke need CUDA)
SLOW=${SLOW:-1}          # multiplies each part's time limit (a dry run on a slow machine)
WORK=${WORK:-/tmp/docmask-work}
W="$WORK/docmask"
rm -rf "$W" && mkdir -p "$W/logs" "$OUT"
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD WANDB_MODE=disabled PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/docmask-inductor}   # shared by the processes
START=$SECONDS
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$W/gpu.txt" 2>&1
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" >> "$W/gpu.txt" 2>&1
cat "$W/gpu.txt"

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
BENCH=(python bench/docmask_bench.py --out "$W" --device "$DEVICE" ${BATCH:+--batch "$BATCH"} ${EXTRA:-})

SMOKE='
import torch
from torch.nn.attention.flex_attention import flex_attention
from model_zoo import docmask
T, EOD = 1023, 99
x = torch.randint(0, EOD, (2, T), device="cuda")
x[:, 100::300] = EOD
docs = docmask.document_ids(x, EOD)
q, k, v = (torch.randn(2, 4, T, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
f = torch.compile(lambda q, k, v, d: flex_attention(q, k, v, block_mask=docmask.block_mask(d)))
out = f(q, k, v, docs)
out.float().square().sum().backward()
torch.cuda.synchronize()
grads = [t.grad for t in (q, k, v)]
for t in (q, k, v):
    t.grad = None
ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=docmask.dense_mask(docs))
ref.float().square().sum().backward()
gap = float((out - ref).abs().max())
gaps = [float((a - t.grad).abs().max() / t.grad.abs().max()) for a, t in zip(grads, (q, k, v))]
print(f"compiled flex forward+backward at T={T} ran; max |flex - sdpa| output {gap:.3g}, dq dk dv (relative) {gaps}")
assert gap < 0.1 and max(gaps) < 0.1, "MISMATCH: flex differs from SDPA with the dense mask by more than bf16 rounding"
print("smoke OK")
'

# 1 + 2. smoke, agreement and compile-ahead in parallel (GPU memory: d 128 and 384 together, then d 768)
# (the agreement check, the verdict on flex, may run on through the second wave: it needs little GPU memory)
part smoke $((50 * SLOW)) python -c "$SMOKE" &
part agree $((90 * SLOW)) "${BENCH[@]}" --agree &
pids=()
for d in $WIDTHS; do
  [ "$d" -ge "$BIG" ] && continue
  for v in off dense flex; do
    part "compile_${v}_d$d" $((50 * SLOW)) "${BENCH[@]}" --variant $v --d "$d" --steps 0 --warmup 1 &
    pids+=($!)
  done
done
[ ${#pids[@]} -eq 0 ] || wait "${pids[@]}"
for d in $WIDTHS; do
  [ "$d" -lt "$BIG" ] && continue
  l=$(( $(left) - 75 ))   # what the timed runs need after it
  for v in off dense flex; do
    part "compile_${v}_d$d" $(( l < 45 * SLOW ? l : 45 * SLOW )) "${BENCH[@]}" --variant $v --d "$d" --steps 0 --warmup 1 &
  done
done
wait
echo "compile-ahead done at $((SECONDS - START)) s" | tee -a "$W/status.txt"

# 3. timed, one at a time (a variant whose compile-ahead crashed is not run again: its log has the crash, and the
#    time goes to the CUDA_LAUNCH_BLOCKING re-run)
for d in $WIDTHS; do
  for v in off dense flex; do
    if grep -qx "compile_${v}_d$d" "$W/failed.txt" 2>/dev/null; then
      echo "time_${v}_d$d skipped (compile_${v}_d$d crashed)" >> "$W/status.txt"; continue
    fi
    l=$(( $(left) - 10 )); part "time_${v}_d$d" $(( l < 35 * SLOW ? l : 35 * SLOW )) "${BENCH[@]}" --variant $v --d "$d"
  done
done

# 4. the first crash again, with CUDA_LAUNCH_BLOCKING=1 (the smoke is the cheapest repro; a timed variant next)
if [ -s "$W/failed.txt" ]; then
  first=$(grep -m1 -x smoke "$W/failed.txt" || grep -m1 -E '^(time|compile)_' "$W/failed.txt" || head -1 "$W/failed.txt")
  case $first in
    smoke) part blocking_smoke "$(( $(left) - 4 ))" env CUDA_LAUNCH_BLOCKING=1 python -c "$SMOKE" ;;
    agree) part blocking_agree "$(( $(left) - 4 ))" env CUDA_LAUNCH_BLOCKING=1 "${BENCH[@]}" --agree ;;
    *) v=$(echo "$first" | cut -d_ -f2); d=$(echo "$first" | cut -d_ -f3 | tr -d d)
       part "blocking_$first" "$(( $(left) - 4 ))" env CUDA_LAUNCH_BLOCKING=1 "${BENCH[@]}" --variant "$v" --d "$d" ;;
  esac
fi

"${BENCH[@]}" --table > "$W/logs/table.log" 2>&1
{ echo "parts:"; cat "$W/status.txt"; echo "wall $((SECONDS - START)) s"; } >> "$W/ratio.txt"
cat "$W/ratio.txt"
cp "$W/ratio.txt" "$OUT/ratio.txt"
tar czf "$OUT/docmask.tgz" -C "$WORK" docmask
echo "wrote $OUT/docmask.tgz and $OUT/ratio.txt"
