#!/usr/bin/env bash
# Issue 12, sweep efficiency on CPU: the demo sweep (or a part of it) with a process per run (sweep.worker=false)
# and with a long-lived worker per slot (sweep.worker=true), each in a fresh sweep directory, one after the other.
#
#   bash bench/cpu_worker.sh                                   # the demo grid's smallest budget: 6 runs, 2 slots
#   GRID_ARGS='+grid=demo' bash bench/cpu_worker.sh            # the whole demo sweep (15 runs)
#   SCALEMIX_DATA=/tmp/d GRID_ARGS="$TINY" bash bench/cpu_worker.sh   # tiny runs on a synthetic corpus 'syn' (see
#       bench/README.md, "Sweep worker"): set-up and process starts dominate, so the difference shows under load
#
# Needs the demo corpus ($SCALEMIX_DATA/demo, default data/demo). Prints, per mode, the sweep's wall time and
# bench/worker_ratio.py's table (wall / sum of the runs' steady-state training time).
set -euo pipefail
cd "$(dirname "$0")/.."
GRID_ARGS=${GRID_ARGS:-+grid=demo grid.shapes.budgets=[6e10]}
REPEATS=${REPEATS:-1}
SLOTS=${SLOTS:-2}                  # sweep.max_parallel: the demo's 2 parallel slots on 2 cores
export PYTHONPATH=${PYTHONPATH:-$PWD} WANDB_MODE=disabled SCALEMIX_NO_PROGRESS=1
export SCALEMIX_DATA=${SCALEMIX_DATA:-$PWD/data}
echo "$(date -u)  $(uptime)"
for i in $(seq "$REPEATS"); do
  for W in false true; do
    ROOT=$(mktemp -d /tmp/cpu_worker.XXXXXX)
    # shellcheck disable=SC2086
    T0=$(date +%s.%N); python sweep.py $GRID_ARGS sweep.worker=$W sweep.max_parallel=$SLOTS sweep.root="$ROOT" > "$ROOT/sweep.log" 2>&1
    T1=$(date +%s.%N)
    WALL=$(python -c "print(round($T1 - $T0, 1))")
    echo "--- sweep.worker=$W: wall $WALL s, load $(cut -d' ' -f1-3 /proc/loadavg)"
    python bench/worker_ratio.py "$(ls -d "$ROOT"/*/ | head -n 1)" --wall "$WALL" --slots "$SLOTS" --label "worker=$W" | tail -n 2
    rm -rf "$ROOT"
  done
done
