#!/usr/bin/env bash
# The same 12-run sweep on 1 GPU and on all G GPUs of this machine (sweep.gpus=1, then sweep.gpus=G; JOBS_PER_GPU=2
# runs packed a GPU in both), its wall-clock each time and the speed-up (issue 14: >= 1.8x on 2 GPUs). Needs hydra,
# submitit (the sweep's local launcher). Small GPU-ladder runs on a synthetic corpus, compile off so that start-up does not
# swamp the comparison (both sweeps pay it equally per run).
#   OUT=/tmp/out bash bench/gpu_sweep_scaling.sh        # BUDGETS='[1.2e14,1.5e14,2e14]' SIZES=4 by default
# On one GPU it measures the 1-GPU sweep only. Writes $OUT/sweep_scaling.txt and the plan table.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to a directory for the results}
WORK=${WORK:-/tmp/scalemix_sweep_scaling}
BUDGETS=${BUDGETS:-[1.2e14,1.5e14,2e14]}; SIZES=${SIZES:-4}; SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-150}
export PYTHONPATH=${PYTHONPATH:-$PWD} WANDB_MODE=disabled SCALEMIX_NO_PROGRESS=1 SCALEMIX_DATA=$WORK/data
mkdir -p "$OUT" "$WORK"
rm -rf "$WORK/runs"
G=${NPROC:-$(python -c 'import torch; print(torch.cuda.device_count())')}
[[ -d $WORK/data/syn ]] || python bench/multigpu.py corpus "$WORK/data"
ARGS=(+grid=chinchilla scale=gpu data.corpus=syn "grid.shapes.budgets=$BUDGETS" "grid.shapes.sizes_per_budget=$SIZES"
      grid.shapes.min_each_side=0 grid.replicates=null grid.min_steps=5 train.batch_tokens=32768
      train.runtime.compile=off eval.heldout_tokens=32768 "sweep.jobs_per_gpu=${JOBS_PER_GPU:-2}" sweep.max_epochs=1000)
{ date -u; nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null; echo "G=$G"; } | tee "$OUT/sweep_scaling.txt"
python sweep.py "${ARGS[@]}" sweep.root="$WORK/runs/plan" sweep.dry_run=true > "$OUT/plan.txt" 2>&1
grep -E "^total:" "$OUT/plan.txt" | tee -a "$OUT/sweep_scaling.txt"
for g in 1 $G; do
  (( g == 1 )) && [[ -n ${DONE1:-} ]] && continue
  t=$SECONDS
  timeout "$SWEEP_TIMEOUT" python sweep.py "${ARGS[@]}" sweep.root="$WORK/runs/g$g" sweep.gpus=$g > "$OUT/sweep_g$g.log" 2>&1
  rc=$?
  echo "gpus=$g exit=$rc wall_s=$((SECONDS - t)) done=$(ls "$WORK"/runs/g$g/chinchilla-gpu/*/result.json 2>/dev/null | wc -l)" \
    | tee -a "$OUT/sweep_scaling.txt"
  DONE1=1
done
python - "$OUT/sweep_scaling.txt" <<'PY'
import re, sys
rows = dict(re.findall(r"gpus=(\d+) exit=0 wall_s=(\d+)", open(sys.argv[1]).read()))
if "1" in rows and len(rows) > 1:
    g = max(rows, key=int)
    line = f"speed-up on {g} GPUs: {int(rows['1']) / int(rows[g]):.2f}x (target >= 1.8x on 2)"
    print(line)
    open(sys.argv[1], "a").write(line + "\n")
PY
