#!/usr/bin/env bash
# Issue 13: data-mixing laws across sizes on the demo corpus, on CPU, end to end in one command:
#   1. fit sweep: +grid=mixture_sizes (DEPTHS x TOKENS, crossed, x RegMix-style Dirichlet mixtures around the natural
#      proportions + pure + uniform + natural), then uniform, natural and one Dirichlet mixture with seed 1 at every size;
#   2. python -m analysis.mixing_report: fits the laws on ALL fit runs; with runs at several sizes the size law
#      (joint/additive, Shukor et al. 2025) recommends the mixture for the confirmation's size: the largest N at
#      FACTOR x the largest D;
#   3. confirmation sweep: the recommendation, uniform and natural at that size, seeds 0 1 2;
#   4. python -m analysis.report: the main report, whose data-mixture sections show the law per size, how the optimum
#      moves with N and D, and the confirmation's predicted vs measured with the verdict.
# Then packs the run directories' small files (result.json, metrics.jsonl, grid.json, spec.yaml, runtime.yaml; no
# checkpoints), the sweep-level files, the reports and the logs into $OUT/mixing.tgz (packed even when a stage fails
# or runs out of time).
#
#   bash bench/cpu_mixing_study.sh                       # the study (sized for 16 cores: JOBS=14, <= 9 min)
#   TOY=1 JOBS=2 OUT=/tmp/o bash bench/cpu_mixing_study.sh   # tiny budgets: checks the pipeline in a few minutes
#   on the device machine (CUDA hidden, wheels in /tmp/site):
#   CUDA_VISIBLE_DEVICES= PYTHONPATH=/tmp/site:$PWD bash bench/cpu_mixing_study.sh
#
# Needs the demo corpus ($SCALEMIX_DATA/demo, default data/demo). Every stage has a time limit taken from what is left
# of LIMIT_S (default 540 s), so the packing always happens. bench/README.md, "Data-mixing laws across sizes".
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=${PYTHONPATH:-$PWD} WANDB_MODE=disabled SCALEMIX_NO_PROGRESS=1 MPLBACKEND=Agg
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-}
export SCALEMIX_DATA=${SCALEMIX_DATA:-$PWD/data}
PY=${PYTHON:-python}
TOY=${TOY:-0}
JOBS=${JOBS:-14}                      # runs at once (one thread each)
LIMIT_S=${LIMIT_S:-540}               # the whole study, packing included
OUT=${OUT:-$PWD/out}
NAME=${NAME:-mixstudy}
ROOT=${ROOT:-$(mktemp -d /tmp/mixstudy.XXXXXX)}
export SCALEMIX_RUNS=$ROOT            # the sweeps, and the confirm.sh that mixing_report writes, use this root
if [ "$TOY" = 1 ]; then
  DEPTHS=${DEPTHS:-[1,2]}; TOKENS=${TOKENS:-[5120,10240]}; SPD=${SPD:-2}; FACTOR=${FACTOR:-2}; BOOT=${BOOT:-20}
  SEEDS=${SEEDS:-0 1}; HELDOUT=${HELDOUT:-2048}
else
  # sized with bench/README.md "Data-mixing laws across sizes": ~0.1 CPU-s per step of these models on the 2-core VM
  DEPTHS=${DEPTHS:-[1,2,4]}; TOKENS=${TOKENS:-[40000,120000]}; SPD=${SPD:-3}; FACTOR=${FACTOR:-3}; BOOT=${BOOT:-100}
  SEEDS=${SEEDS:-0 1 2}; HELDOUT=${HELDOUT:-8192}
fi
# one eval at the end (the law needs the final held-out losses only; 10 evals cost as much as training here)
COMMON="train.runtime.device=cpu sweep.max_parallel=$JOBS eval.points=1 eval.heldout_tokens=$HELDOUT"
PACK_S=25                               # s kept for packing
. bench/mixing_stages.sh                # SW, LOGS, START; left, stage, pack (on exit); the cwd is the repository root
{ echo "start $(date -u), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), TOY=$TOY JOBS=$JOBS";
  echo "depths $DEPTHS tokens $TOKENS samples_per_domain $SPD factor $FACTOR bootstrap $BOOT seeds $SEEDS"; } \
  | tee "$LOGS/times.txt"

GRID="+grid=mixture_sizes grid.name=$NAME grid.shapes.depth=$DEPTHS grid.shapes.tokens=$TOKENS"
# shellcheck disable=SC2086
stage fit_sweep 62 $PY sweep.py $GRID grid.mixtures.samples_per_domain=$SPD $COMMON
# seed replicates at every size, of uniform, natural and the first Dirichlet sample (the same draw as the fit
# sweep's first: same grid.mixtures.seed): the seed noise of the objective
# shellcheck disable=SC2086
stage replicates 20 $PY sweep.py $GRID grid.mixtures.samples=1 grid.mixtures.include_pure=false 'grid.seeds=[1]' $COMMON
# the law on all fit runs -> the recommendation at the confirmation's size and the confirm.sh that trains it
# shellcheck disable=SC2086
stage recommend 45 $PY -m analysis.mixing_report "$SW" --tokens-factor "$FACTOR" --seeds $SEEDS \
  --curriculum none --bootstrap "$BOOT" --sweep-args "$COMMON"
if [ -f "$SW/confirm.sh" ]; then
  # its sweep line only: the comparison (confirm.sh's last line) runs below, beside the main report
  grep ' sweep.py ' "$SW/confirm.sh" > "$SW/confirm_sweep.sh"
  stage confirm_sweep 60 env PYTHON="$PY" sh -e "$SW/confirm_sweep.sh"
fi
# the main report, and beside it (16 cores: no extra wall time) mixing_report's own comparison of the confirmation
# (mixture_confirmation.md/.csv/.png), so the confirmation's numbers come back even if the main report runs out of time
stage report 100 $PY -m analysis.report "$SW" --bootstrap "$BOOT" &
if [ -d "$ROOT/${NAME}_confirm" ]; then
  stage compare 100 $PY -m analysis.mixing_report "$SW" --confirm "$ROOT/${NAME}_confirm" --bootstrap "$BOOT" &
fi
wait
echo "end $(date -u), $(( $(date +%s) - START )) s" | tee -a "$LOGS/times.txt"
