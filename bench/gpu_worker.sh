#!/usr/bin/env bash
# Issue 12, sweep efficiency: on one GPU, a chinchilla grid's sweep wall time against the sum of its runs'
# steady-state training times (result.json time_train_s: each launch's first log window, compilation, left
# out), in the same call. With sweep.jobs_per_gpu=1 each run has the GPU to itself, so time_train_s is its
# steady-state time alone. Target: wall / sum <= 1.15.
#
#   OUT=/some/dir bash bench/gpu_worker.sh                 # sweep.worker=true (the default)
#   OUT=/some/dir MODE=process bash bench/gpu_worker.sh    # before: a process per run (sweep.worker=false)
#   OUT=/some/dir AHEAD=false bash bench/gpu_worker.sh     # the worker without compiling the next shapes ahead
#   BUDGETS='[1e15,3e15,1e16]' SIZES=4 ...                 # the issue's 12-run grid (about 5 min of training)
#
# Needs the demo corpus at data/demo (or $SCALEMIX_DATA/demo), hydra/omegaconf/submitit importable
# (PYTHONPATH=/tmp/site:$PWD after `pip install --no-index --target /tmp/site .whl/*.whl`), no network.
# Writes to $OUT: plan.txt, sweep.log, runs.csv, ratio.txt (the summary line last), env.txt, logs/.
# Run directories and the inductor cache go to a fresh temporary directory (checkpoints are not copied back).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out/gpu_worker}
MODE=${MODE:-worker}
BUDGETS=${BUDGETS:-[1e15,3e15]}
SIZES=${SIZES:-4}
AHEAD=${AHEAD:-true}
LIMIT_S=${LIMIT_S:-200}            # the sweep is stopped (SIGTERM: runs checkpoint) after this many seconds
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-$PWD} WANDB_MODE=disabled HYDRA_FULL_ERROR=1 SCALEMIX_NO_PROGRESS=1
export SCALEMIX_DATA=${SCALEMIX_DATA:-$PWD/data}
ROOT=$(mktemp -d /tmp/gpu_worker.XXXXXX)
case "$MODE" in worker) W=true ;; process) W=false ;; *) echo "MODE=worker|process" >&2; exit 2 ;; esac
ARGS=(+grid=chinchilla scale=gpu data/mixture@data=demo model.vocab_size=2048 "grid.shapes.budgets=$BUDGETS"
      "grid.shapes.sizes_per_budget=$SIZES" sweep.jobs_per_gpu=1 sweep.gpus=1 "sweep.worker=$W"
      "sweep.compile_ahead=$AHEAD" "sweep.root=$ROOT")
{ date -u; uptime; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; git rev-parse HEAD || true
  echo "MODE=$MODE AHEAD=$AHEAD BUDGETS=$BUDGETS SIZES=$SIZES"; } > "$OUT/env.txt" 2>&1
python sweep.py "${ARGS[@]}" sweep.dry_run=true > "$OUT/plan.txt" 2>&1 || { cat "$OUT/plan.txt"; exit 1; }
T0=$(date +%s.%N)
set +e
timeout -s TERM -k 15 "$LIMIT_S" python sweep.py "${ARGS[@]}" > "$OUT/sweep.log" 2>&1
RC=$?
set -e
T1=$(date +%s.%N)
WALL=$(python -c "print(round($T1 - $T0, 2))")
echo "sweep exit $RC, wall $WALL s (limit $LIMIT_S s)" | tee "$OUT/ratio.txt"
if [ "$RC" != 0 ]; then   # cut off or failed: the ratio below covers only the finished runs, not the sweep
  echo "WARNING: the sweep did not finish (exit $RC): the ratio is NOT a valid measurement; lower BUDGETS/SIZES" \
    | tee -a "$OUT/ratio.txt"
fi
tail -n 5 "$OUT/sweep.log"
# the launch's logs: worker<k>.log (per run: seconds inside the worker), ahead.log (shapes compiled ahead),
# <run id>.log (each run's output: its summary line, or the traceback of a failure)
mkdir -p "$OUT/logs"
cp "$ROOT"/chinchilla-gpu/.hydra/*/*.log "$OUT/logs/" 2>/dev/null || true
python bench/worker_ratio.py "$ROOT/chinchilla-gpu" --wall "$WALL" --csv "$OUT/runs.csv" --label "$MODE" \
  | tee -a "$OUT/ratio.txt"
rm -rf "$ROOT"
