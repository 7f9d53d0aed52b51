#!/usr/bin/env bash
# Per-document attention on one GPU (issue 18), one call: masks off vs flex with the tuned kernel options (the default,
# model_zoo/docmask.py) vs varlen with the sequences built on the host at d 128, 384 and 768 (compiled bf16, seq 1024),
# 3 interleaved rounds of 60 timed steps a variant; each kernel in CHECKS checked against the dense mask (logits and
# gradients); everything in $OUT.
#
#   OUT=/tmp/out bash bench/gpu_docmask.sh          # from the repository root; LIMIT=330 s by default
#   (PYTHONPATH=/tmp/site:$PWD where hydra/omegaconf/submitit wheels are installed to /tmp/site)
#
# One process a width (bench/docmask_bench.py --d D: every variant in it, each its own model, optimizer and compiled
# step from the same weights), all widths in parallel, beside a compiled smoke of each checked kernel (T = 1023, vs
# SDPA with the dense mask) and the agreement check (--agree KERNEL: compiled vs eager dense, bf16 and fp32 where the
# kernel takes it, logits and every gradient). Each process compiles and warms up under $LOCK's shared lock and times
# under the exclusive one: the timed rounds run alone on the GPU and the CPU, once every compile is done. A width's
# rounds go off, varlen, flex, off, varlen, ... (a drift falls on all variants alike); its JSON is rewritten after
# each round, so a process cut by the time limit keeps its finished rounds. Then the attention alone at each width
# (eager: causal SDPA vs varlen, forward + backward). A crashed smoke is run again with CUDA_LAUNCH_BLOCKING=1.
# VARIANTS may also name varlen_old (varlen with the sequences built inside the step: a graph break and a host read a
# forward) and dense (the boolean mask through SDPA).
# Needs torch with CUDA, numpy, flock.
# A dry run of the plumbing on a CPU (the smoke fails there: no CUDA; eager, so every masked variant is the dense mask):
#   OUT=/tmp/o DEVICE=cpu WIDTHS="64 128" BATCH=1 EXTRA="--seq 128 --doc-median 40" STEPS=2 LIMIT=3000 \
#     bash bench/gpu_docmask.sh
# $OUT gets ratio.txt (the table, the agreement, each part's exit code and seconds) and docmask.tgz, which holds
# docmask/ (built in $WORK): ratio.txt, docmask.csv, d*.json, agree_*.json, agreement.txt, status.txt, gpu.txt,
# logs/*.log.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
WIDTHS=${WIDTHS:-128 384 768}
VARIANTS=${VARIANTS:-off varlen flex}
STEPS=${STEPS:-60}       # timed steps a variant a round
REPEATS=${REPEATS:-3}    # interleaved rounds
CHECKS=${CHECKS:-flex varlen} # the kernels smoked and checked against the dense mask
LIMIT=${LIMIT:-330}
DEVICE=${DEVICE:-cuda}   # cpu: a dry run of this script's plumbing (eager; flex, varlen and the smoke need CUDA)
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
BENCH=(python bench/docmask_bench.py --out "$W" --device "$DEVICE" ${BATCH:+--batch "$BATCH"} ${EXTRA:-})

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

# everything in parallel: the smokes and checks (shared lock throughout), one process a width
l1=$(( $(left) - 15 ))
for kind in $CHECKS; do
  part "smoke_$kind" $(( l1 < 120 ? l1 : 120 )) "${SHARED[@]}" env KIND=$kind python -c "$SMOKE" &
  part "agree_$kind" $(( l1 < 200 ? l1 : 200 )) "${SHARED[@]}" "${BENCH[@]}" --agree $kind &
done
for d in $WIDTHS; do
  part "d$d" "$l1" "${BENCH[@]}" --d "$d" --variants "$VARIANTS" --steps "$STEPS" --repeats "$REPEATS" \
    "${LOCKARG[@]}" &
done
wait
echo "all parts done at $((SECONDS - START)) s" | tee -a "$W/status.txt"

# a crashed smoke again with CUDA_LAUNCH_BLOCKING=1, for a trace at the fault
first=$(grep -m1 -E '^smoke_' "$W/failed.txt" 2> /dev/null)
if [ -n "$first" ]; then
  part "blocking_$first" "$(( $(left) - 4 ))" env CUDA_LAUNCH_BLOCKING=1 KIND="${first#smoke_}" python -c "$SMOKE"
fi

"${BENCH[@]}" --table > "$W/logs/table.log" 2>&1
{ echo "parts:"; cat "$W/status.txt"; echo "wall $((SECONDS - START)) s"; } >> "$W/ratio.txt"
cat "$W/ratio.txt"
cp "$W/ratio.txt" "$OUT/ratio.txt"
tar czf "$OUT/docmask.tgz" -C "$WORK" docmask
echo "wrote $OUT/docmask.tgz and $OUT/ratio.txt"
