#!/usr/bin/env bash
# One run over G GPUs (harness.distributed) against the plain one-process path, same RunSpec, same call:
#   G = 1 (one H200): plain, then torchrun --nproc_per_node 1 with train.runtime.parallel=ddp and =fsdp:
#         they must train (DDP/NCCL, FSDP2 with bf16 parameters, compiled) with the plain run's loss curve
#         within bf16 tolerance (bench/multigpu.py LOSS_RTOL, relative, every logged train loss) and show
#         the wrappers' cost as tokens/s / plain tokens/s.
#   G >= 2 (the GPUs torch sees; NPROC=G overrides): plain on one GPU, then ddp and fsdp over G GPUs; the
#         table gives each one's tokens/s, its ratio to the 1-GPU plain run and the scaling efficiency
#         (ratio / G). ALL=1 also runs ddp and fsdp at G = 1 there.
# From the repo root, $OUT an empty directory for the results (multigpu.csv, summary.txt, each run's
# metrics.jsonl, result.json and log); the runs' checkpoints stay under $WORK (default /tmp).
#   OUT=/tmp/out bash bench/gpu_multigpu.sh            # LAYERS=12 (d 768) STEPS=30 BATCH=128 by default
#   OUT=/tmp/out2 LAYERS=20 MICRO=16 bash bench/gpu_multigpu.sh   # a larger rung: MICRO sequences a forward per rank
# About 3-4 minutes on one H200 with a cold compile cache (each run: start-up, compile, 30 steps, a DCP save).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to a directory for the results}
WORK=${WORK:-/tmp/scalemix_multigpu}
LAYERS=${LAYERS:-12}; STEPS=${STEPS:-30}; BATCH=${BATCH:-128}; RUN_TIMEOUT=${RUN_TIMEOUT:-110}
SEQ=${SEQ:-1024}; HELDOUT=${HELDOUT:-65536}; MICRO=${MICRO:-0}; BUDGET_S=${BUDGET_S:-215}   # no run starts after BUDGET_S seconds
export PYTHONPATH=${PYTHONPATH:-$PWD} WANDB_MODE=disabled SCALEMIX_NO_PROGRESS=1
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$WORK/inductor}   # a second call compiles warm
mkdir -p "$OUT" "$WORK"
rm -rf "$WORK/runs"
T0=$SECONDS
G=${NPROC:-$(python -c 'import torch; print(torch.cuda.device_count())')}
{ date -u; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null; python -c 'import torch; print("torch", torch.__version__)'; echo "G=$G LAYERS=$LAYERS STEPS=$STEPS BATCH=$BATCH SEQ=$SEQ"; } | tee "$OUT/summary.txt"
python bench/multigpu.py prepare "$WORK" --layers "$LAYERS" --steps "$STEPS" --batch "$BATCH" \
  --seq "$SEQ" --heldout "$HELDOUT" | tee -a "$OUT/summary.txt"
SPEC=$(cat "$WORK/spec.json")
rt() {  # runtime JSON: parallel=$1; one eval and one checkpoint, at the end
  echo "{\"parallel\": \"$1\", \"micro_batch_size\": $MICRO, \"log_every\": 5, \"checkpoint_every\": 100000, \"keep_checkpoints\": 1, \"wandb\": \"disabled\", \"progress\": false}"
}
train() {  # name procs parallel
  local name=$1 procs=$2 parallel=$3 dir="$WORK/runs/$1" t=$SECONDS
  if (( SECONDS - T0 > BUDGET_S )); then echo "$name: skipped (out of time)" | tee -a "$OUT/summary.txt"; return; fi
  mkdir -p "$OUT/runs/$name"
  if [[ $parallel == none ]]; then
    timeout "$RUN_TIMEOUT" python -m harness --spec-json "$SPEC" --runtime-json "$(rt none)" --out "$dir" \
      > "$OUT/runs/$name/log.txt" 2>&1
  else
    timeout "$RUN_TIMEOUT" torchrun --standalone --nproc_per_node "$procs" -m harness --spec-json "$SPEC" \
      --runtime-json "$(rt "$parallel")" --out "$dir" > "$OUT/runs/$name/log.txt" 2>&1
  fi
  echo "$name: exit $? after $((SECONDS - t)) s" | tee -a "$OUT/summary.txt"
  cp "$dir"/metrics.jsonl "$dir"/result.json "$OUT/runs/$name/" 2>/dev/null || true
}
train plain_g1 1 none
if (( G == 1 )) || [[ ${ALL:-0} == 1 ]]; then
  train ddp_g1 1 ddp
  train fsdp_g1 1 fsdp
fi
if (( G >= 2 )); then
  train "ddp_g$G" "$G" ddp
  train "fsdp_g$G" "$G" fsdp
fi
python bench/multigpu.py compare "$OUT" | tee -a "$OUT/summary.txt"
echo "total $((SECONDS - T0)) s" | tee -a "$OUT/summary.txt"
