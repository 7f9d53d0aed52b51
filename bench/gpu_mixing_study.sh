#!/usr/bin/env bash
# Issue 13: the GPU data-mixing study (conf/grid/study_mixture.yaml) end to end in one command, on one H200:
#   1. fit sweep  python sweep.py +grid=study_mixture: L3-d192 x 10M tokens x (28 Dirichlet mixtures around the large
#                 corpus's natural proportions + uniform + natural), seed 0;
#   2. the law    python -m analysis.mixing_report --holdout 8: 8 Dirichlet mixtures held out of the fit and scored
#                 (mixture_holdout.csv), the recommendation (or "no recommendation" and the best candidate) from the
#                 law on the other 22 inside their convex hull, with its predicted gain over uniform and natural;
#   3. confirmation: the candidate, uniform and natural at L4-d256 x 40M tokens, seeds 0 1 (confirm.sh's sweep);
#   4. python -m analysis.report and mixing_report --confirm: measured against predicted, and the verdict.
# Planner total 9.1 H200-minutes (fit 7.0, confirmation 2.1; grid.batch.rule=steps: each run's batch halved until it
# trains >= 1000 steps); stages are time-limited from LIMIT_S (default 560 s)
# and everything (run directories' small files, reports, logs) is packed into $OUT/mixing.tgz even when a stage fails.
#
#   OUT=$OUT bash bench/gpu_mixing_study.sh        # on the device machine: data/large built (bench/gpu_study.sh stage),
#                                                  # hydra importable (PYTHONPATH=/tmp/site:$PWD after its wheel step)
#   TOY=1 JOBS=2 OUT=/tmp/o bash bench/gpu_mixing_study.sh   # the same pipeline on the CPU at toy scale (demo corpus)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=${PYTHONPATH:-$PWD} WANDB_MODE=disabled SCALEMIX_NO_PROGRESS=1 MPLBACKEND=Agg
export SCALEMIX_DATA=${SCALEMIX_DATA:-$PWD/data}
PY=${PYTHON:-python}
TOY=${TOY:-0}
LIMIT_S=${LIMIT_S:-560}
OUT=${OUT:-$PWD/out}
NAME=${NAME:-study-mixture}
ROOT=${ROOT:-$(mktemp -d /tmp/mixgpu.XXXXXX)}
BOOT=${BOOT:-200}
HOLDOUT=${HOLDOUT:-8}
export SCALEMIX_RUNS=$ROOT
if [ "$TOY" = 1 ]; then
  # the study's grid and commands at CPU toy scale: the demo corpus (4 domains), L1 runs of 5k tokens, L2 confirmation
  JOBS=${JOBS:-2}
  FIT="scale=cpu data/mixture@data=demo grid.shapes.depth=1 grid.shapes.tokens=5120 grid.mixtures.samples=${SAMPLES:-14}"
  FIT="$FIT train.runtime.device=cpu sweep.max_parallel=$JOBS eval.points=1 eval.heldout_tokens=2048"
  CONFIRM="scale=cpu data/mixture@data=demo grid.shapes.depth=2 train.runtime.device=cpu sweep.max_parallel=$JOBS"
  CONFIRM="$CONFIRM eval.points=1 eval.heldout_tokens=2048"
  HOLDOUT=${TOY_HOLDOUT:-4}; BOOT=${TOY_BOOT:-20}
else
  JOBS=${JOBS:-2}                       # runs per GPU at once (sweep.jobs_per_gpu)
  FIT="sweep.jobs_per_gpu=$JOBS"
  CONFIRM="scale=study grid.shapes.depth=4 train.optim.lr=2.0e-3 grid.batch.rule=steps sweep.jobs_per_gpu=$JOBS"
  CONFIRM="$CONFIRM sweep.throughput_table=bench/results/throughput_h200.json"
fi
PACK_S=20                               # s kept for packing
. bench/mixing_stages.sh                # SW, LOGS, START; left, stage, pack (on exit); the cwd is the repository root
echo "start $(date -u), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), TOY=$TOY JOBS=$JOBS holdout $HOLDOUT" \
  | tee "$LOGS/times.txt"
read -r -a FIT_ARGS <<< "$FIT"         # word-split, never glob-expanded: overrides hold [ ] { }
$PY sweep.py +grid=study_mixture "${FIT_ARGS[@]}" sweep.dry_run=true > "$LOGS/plan.txt" 2>&1 \
  || { tail -n 20 "$LOGS/plan.txt"; exit 3; }
grep -E "^total" "$LOGS/plan.txt" | tee -a "$LOGS/times.txt"
stage fit_sweep 70 $PY sweep.py +grid=study_mixture "${FIT_ARGS[@]}"
# the law on 22 of the mixtures, scored on the 8 held out -> the recommendation (or candidate) and confirm.sh
stage recommend 30 $PY -m analysis.mixing_report "$SW" --holdout "$HOLDOUT" --tokens-factor 4 --seeds 0 1 \
  --curriculum none --bootstrap "$BOOT" --sweep-args "$CONFIRM"
if [ -f "$SW/confirm.sh" ]; then
  grep ' sweep.py ' "$SW/confirm.sh" > "$SW/confirm_sweep.sh"
  stage confirm_sweep 75 env PYTHON="$PY" sh -e "$SW/confirm_sweep.sh"
fi
if [ -d "$ROOT/${NAME}_confirm" ]; then
  stage compare 50 $PY -m analysis.mixing_report "$SW" --confirm "$ROOT/${NAME}_confirm" --bootstrap "$BOOT"
fi
stage report 100 $PY -m analysis.report "$SW" --bootstrap "$BOOT"
echo "end $(date -u), $(( $(date +%s) - START )) s" | tee -a "$LOGS/times.txt"
