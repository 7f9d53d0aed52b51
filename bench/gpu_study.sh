#!/usr/bin/env bash
# The GPU scaling study of record (issue 12, item 4) in device calls of <= 10 minutes: one phase per call, resumable.
#
#   OUT=<dir> bash bench/gpu_study.sh PHASE     PHASE: stage | lr | lr2 | grid | grid2 | big | big2 | downstream |
#                                                      posthoc | status
#
#   stage   only stage the carried corpus parts in $STAGE (the first part alone fills a call's 64 MiB carry); unpacks
#           once every part is there
#   lr      the study's lr sweep           python sweep.py +grid=study_lr   (runs/study-lr, 25 runs, ~9 GPU-min est.)
#   lr2     its second part, L7 at 3 lrs   python sweep.py +grid=study_lr_big (runs/study-lr, 3 runs, ~7 GPU-min est.)
#   grid    the isoFLOP grid               python sweep.py +grid=study      (runs/study, 36 runs, ~27 GPU-min est.)
#   grid2   the grid with a batch per run  python sweep.py +grid=study2     (runs/study2, 36 runs, ~28 GPU-min est.: every
#           run >= 1000 steps; the 14 runs whose batch stays 128 sequences have runs/study's run ids, and 2 those of
#           bench/residual_check.sh's 32-sequence runs: copied from runs/study and runs/study-check when finished
#           there, leaving 20 runs, ~10 GPU-min est.)
#   big     the compute-optimal run at 4x the largest budget, sized by the grid's law
#           (python -m analysis.holdout runs/study --plan-big 4 --rungs <bench/study_rungs.py's>; runs/study-big)
#   big2    the same from grid2's law (runs/study2 -> runs/study2-big, that grid's batch rule: >= 1000 steps)
#   downstream  the downstream-accuracy grid (issue 17)  python sweep.py +grid=study_downstream (runs/study-downstream,
#           16 runs at 1e15..1.3e16 with eval=downstream, ~10 GPU-min est.)
#   posthoc the downstream suite on the final checkpoint of every finished run of study2 and study2-big that still has
#           one (those trained on this machine while it stayed warm; carried runs have none): python -m
#           harness.downstream --write, each run's scores in its downstream.json, which analysis.results joins to its
#           row (issue 17 on the study's own runs, no second grid); trains nothing
#   status  restore and print the progress line; trains nothing
#
# Each call: (a) copies carried corpus parts ($DATA/$CORPUS.tar.xz.part*) to $STAGE and, if $DATA/$CORPUS is absent,
# unpacks the staged parts (harness.data.transport checks every shard's sha256); (b) installs the carried wheels
# (.whl) to /tmp/site when hydra is missing; (c) merges the carried state $STATE (the previous call's study.tgz) into
# $ROOT, keeping newer local run directories (a warm machine still has them); (d) runs the phase's sweep under
# `timeout`: SIGTERM $MARGIN s before $LIMIT s after the script started (the runs checkpoint and exit; a relaunch
# resumes them bit-exactly), SIGKILL $MARGIN/2 s later, so that packing still ends before $LIMIT; (e) packs every
# study sweep into ONE tarball $OUT/study.tgz (finished runs without checkpoints; unfinished runs with their latest
# checkpoint while the tarball stays under $MAX_MIB: in practice only L1's fits, so on a COLD machine an interrupted
# run restarts from step 0, while a warm one resumes it from its own run directory) and prints the progress line
# (runs done / planned, and the seconds of the study's commands so far, from the ledger inside the tarball; machine
# start and transfers are not in it).
#
# Between calls: copy the returned study.tgz to .study/runs.tgz and carry .study (and .whl, and data parts while
# data/large is not built there). The machine stays warm only ~30 s after a call: call again at once. In order:
#   carry [data/large.tar.xz.part1of2]                          OUT=$OUT bash bench/gpu_study.sh stage
#   carry [data/large.tar.xz.part2of2, .whl, .study]            OUT=$OUT bash bench/gpu_study.sh lr   (still warm)
#   carry [data/large.tar.xz.part2of2, .whl, .study]            ... grid (until 36/36), then big
#   (a cold machine answers "corpus ... could not be unpacked" in seconds: stage part 1 again, then repeat the call)
# Writes to $OUT (at most 8 files come back): study.tgz, plan.txt, sweep.log, progress.txt, env.txt, logs.tgz.
#
# Env: LIMIT (600: the call's limit, s), MARGIN (60), JOBS_PER_GPU (2), ROOT (runs), STATE (.study/runs.tgz),
# STAGE (/tmp/scalemix_stage), CORPUS (large), EXTRA (more sweep overrides; the CPU test's toy scale),
# MAX_MIB (15: the tarball's checkpoint budget; a returned file may be 16 MiB), BIG_FACTOR (4), BIG_MAX_TOKENS
# (786000000: 5 epochs of the large corpus, scale/study.yaml's cap; the law does not model repeated data).
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s.%N)
PHASE=${1:?usage: OUT=<dir> bash bench/gpu_study.sh stage|lr|lr2|grid|grid2|big|big2|downstream|posthoc|status}
: "${OUT:?set OUT to a directory for the results}"
LIMIT=${LIMIT:-600}; MARGIN=${MARGIN:-60}; JOBS_PER_GPU=${JOBS_PER_GPU:-2}; ROOT=${ROOT:-runs}
STATE=${STATE:-.study/runs.tgz}; STAGE=${STAGE:-/tmp/scalemix_stage}; CORPUS=${CORPUS:-large}; EXTRA=${EXTRA:-}
MAX_MIB=${MAX_MIB:-15}
DATA=${SCALEMIX_DATA:-data}
SWEEPS=(study-lr study study2 study-big study2-big study-downstream study-check study-superseded)
BIG_FROM=study
case "$PHASE" in
  stage|status|posthoc) GRID= ;;
  lr) GRID=study_lr; SWEEP=study-lr ;;
  lr2) GRID=study_lr_big; SWEEP=study-lr ;;
  grid) GRID=study; SWEEP=study ;;
  grid2) GRID=study2; SWEEP=study2 ;;
  big) GRID=study_big; SWEEP=study-big ;;
  big2) GRID=study_big; SWEEP=study2-big; BIG_FROM=study2 ;;
  downstream) GRID=study_downstream; SWEEP=study-downstream ;;
  *) echo "error: PHASE=$PHASE: use stage | lr | lr2 | grid | grid2 | big | big2 | downstream | posthoc | status" >&2
     exit 2 ;;
esac
mkdir -p "$OUT" "$STAGE" "$ROOT"
TMP=$(mktemp -d)     # side files stay out of $OUT: at most 8 files come back from a call
export WANDB_MODE=disabled SCALEMIX_NO_PROGRESS=1 HYDRA_FULL_ERROR=1 PYTHONUNBUFFERED=1 SCALEMIX_DATA=$DATA
elapsed() { python3 -c "import time; print(int(time.time() - $T0))"; }

# (a) the corpus
shopt -s nullglob
for f in "$DATA/$CORPUS".tar.xz "$DATA/$CORPUS".tar.xz.part*; do [ -f "$f" ] && cp -f "$f" "$STAGE/"; done
if [ ! -f "$DATA/$CORPUS/manifest.json" ]; then
  parts=("$STAGE/$CORPUS".tar.xz*)
  echo "corpus $DATA/$CORPUS absent; staged: ${parts[*]:-none}"
  if ! PYTHONPATH=$PWD python -m harness.data.transport unpack "${parts[@]}" --out "$DATA/$CORPUS" --force; then
    if [ "$PHASE" = stage ]; then
      echo "staged in $STAGE; the next call (machine still warm) brings the rest"; exit 0
    fi
    echo "error: corpus $CORPUS could not be unpacked from $STAGE: carry every part of $DATA/$CORPUS.tar.xz" >&2
    exit 3
  fi
  PYTHONPATH=$PWD python -m harness.data.transport verify "$DATA/$CORPUS" || exit 3
  echo "corpus unpacked and verified at $(elapsed) s"
fi
[ "$PHASE" = stage ] && { echo "corpus $DATA/$CORPUS ready"; exit 0; }

# (b) hydra, omegaconf, submitit
if ! python -c 'import hydra, submitit' 2>/dev/null; then
  python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "error: hydra/submitit missing and no wheels in .whl: carry .whl" >&2; exit 3; }
fi
export PYTHONPATH=/tmp/site:$PWD
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
  python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  git rev-parse HEAD 2>/dev/null
  echo "PHASE=$PHASE LIMIT=$LIMIT MARGIN=$MARGIN JOBS_PER_GPU=$JOBS_PER_GPU EXTRA=$EXTRA"; } > "$OUT/env.txt" 2>&1

# (c) the carried state
if [ -f "$STATE" ]; then python bench/study_state.py restore "$STATE" --root "$ROOT" || exit 3
else echo "no carried state at $STATE: starting from what $ROOT holds"; fi

# (d) the phase's sweep (posthoc: the downstream suite on the finished runs' final checkpoints)
RC=0
if [ "$PHASE" = posthoc ]; then
  todo=()
  for run in "$ROOT"/study2/*/ "$ROOT"/study2-big/*/; do
    run=${run%/}
    [ -f "$run/result.json" ] && [ -d "$run/ckpt" ] && [ ! -f "$run/downstream.json" ] && todo+=("$run")
  done
  LEFT=$((LIMIT - MARGIN - $(elapsed)))
  echo "posthoc: ${#todo[@]} finished run(s) with a checkpoint and no downstream.json; at most $LEFT s"
  if [ ${#todo[@]} -gt 0 ]; then
    timeout -s TERM -k 10 "$LEFT" python -m harness.downstream --write "${todo[@]}" > "$TMP/posthoc.json" \
      2> "$OUT/sweep.log"
    RC=$?
    echo "posthoc exit $RC at $(elapsed) s; $(grep -c '^\[' "$OUT/sweep.log") scored"
    tail -n 3 "$OUT/sweep.log"
    [ $RC = 124 ] && RC=0    # cut off by the limit: the rest are scored by the next call (the machine still warm)
  fi
fi
STOPPED=0
PLANNED=()
if [ -n "$GRID" ]; then
  read -r -a EXTRA_ARGS <<< "$EXTRA"     # word-split, never glob-expanded: overrides hold [ ] { }
  ARGS=(+grid=$GRID "sweep.root=$ROOT" "sweep.jobs_per_gpu=$JOBS_PER_GPU" "${EXTRA_ARGS[@]}")
  if [[ $PHASE == big* ]]; then    # its shape from the grid's law: fit it here first if the state carries none
    laws=$ROOT/$BIG_FROM/report/laws.json
    if [ ! -f "$laws" ] || [ -n "$(find "$ROOT/$BIG_FROM" -name result.json -newer "$laws" | head -n 1)" ]; then
      python -m analysis.report "$ROOT/$BIG_FROM" > "$TMP/report.log" 2>&1 || { tail -n 20 "$TMP/report.log"; exit 3; }
    fi
    # shellcheck disable=SC2207
    python bench/study_rungs.py "$ROOT/$BIG_FROM" > "$TMP/rungs.json" || exit 3
    BIG=($(python -m analysis.holdout "$ROOT/$BIG_FROM" --plan-big "${BIG_FACTOR:-4}" --rungs "$TMP/rungs.json" \
      --overrides \
      --max-tokens "${BIG_MAX_TOKENS:-786000000}")) \
      || { echo "error: no plan for the big run (python -m analysis.holdout $ROOT/$BIG_FROM --plan-big 4)" >&2; exit 3; }
    [ "$PHASE" = big2 ] && BIG+=(grid.name=study2-big grid.batch.rule=steps)
    ARGS+=("${BIG[@]}")
  fi
  if [[ $PHASE != lr* ]] && [[ " $EXTRA " != *" grid.lr_from=null "* ]]; then
    # the grid's lrs come from the lr sweep, and a run's lr is part of its id: a partial lr sweep would train runs
    # that its completion then orphans
    for lr_grid in study_lr:lr study_lr_big:lr2; do
      python sweep.py +grid=${lr_grid%%:*} "sweep.root=$ROOT" sweep.dry_run=true > "$TMP/plan_lr.txt" 2>&1
      need=$(sed -n 's/^total: \([0-9]*\) runs.*/\1/p' "$TMP/plan_lr.txt")
      have=$(grep -cE '^[0-9a-f]{12} .* done$' "$TMP/plan_lr.txt")
      if [ -z "$need" ] || [ "$have" -lt "$need" ]; then
        echo "error: +grid=${lr_grid%%:*} has ${have}/${need:-?} runs done: run the ${lr_grid##*:} phase first (its" \
          "lrs set the grid's)" >&2
        exit 3
      fi
    done
  fi
  python sweep.py "${ARGS[@]}" sweep.dry_run=true > "$OUT/plan.txt" 2>&1 || { tail -n 30 "$OUT/plan.txt"; exit 3; }
  if [[ $PHASE != lr* ]]; then   # runs an earlier lr law planned, at lrs the plan no longer holds: set aside, kept
    python bench/study_state.py supersede --root "$ROOT" --sweep "$SWEEP" --plan "$OUT/plan.txt" || exit 3
  fi
  if [ "$PHASE" = grid2 ]; then   # the same specs, so the same run ids: runs/study's runs whose batch stays 128
    # sequences, and bench/residual_check.sh's two runs at 32 (C5.5e15 L7-d448, C1.3e16 L8-d512)
    for id in $(grep -oE '^[0-9a-f]{12} ' "$OUT/plan.txt" | sort -u); do
      for from in study study-check; do
        if [ -f "$ROOT/$from/$id/result.json" ] && [ ! -e "$ROOT/study2/$id" ]; then
          mkdir -p "$ROOT/study2" && cp -r "$ROOT/$from/$id" "$ROOT/study2/$id" && echo "reused runs/$from/$id"
        fi
      done
    done
  fi
  PLANNED=("$SWEEP=$(sed -n 's/^total: \([0-9]*\) runs.*/\1/p' "$OUT/plan.txt")")
  grep -E "^(total|warning)" "$OUT/plan.txt"
  LEFT=$((LIMIT - MARGIN - $(elapsed)))
  if [ "$LEFT" -lt "${MIN_LEFT:-30}" ]; then
    echo "error: only $LEFT s left before the margin: raise LIMIT" >&2; exit 3
  fi
  echo "sweep $GRID for at most $LEFT s (SIGTERM then; $MARGIN s kept for checkpoints and packing)"
  # sweep.deadline_s: the sweep starts only the runs its throughput table expects to end in time and leaves the rest
  # for the next call (a run cut off here restarts from step 0 on a cold machine: its checkpoint is too big to carry);
  # the SIGTERM at $LEFT s stays as the backstop for an estimate that was short (90%: the H200 table has 2 rows)
  timeout -s TERM -k $((MARGIN / 2)) "$LEFT" python sweep.py "${ARGS[@]}" "sweep.deadline_s=$(( (LEFT - 10) * 9 / 10 ))" \
    > "$OUT/sweep.log" 2>&1
  RC=$?
  case $RC in 124|137) STOPPED=1; echo "sweep exit $RC at $(elapsed) s (stopped by the time limit: relaunch resumes)" ;;
    3) STOPPED=1; echo "sweep exit 3 at $(elapsed) s (runs held for the next call: sweep.deadline_s)" ;;
    *) STOPPED=0; echo "sweep exit $RC at $(elapsed) s" ;; esac
  grep -E "would end past it" "$OUT/sweep.log" | tail -n 1
  tail -n 5 "$OUT/sweep.log"
  logs=("$ROOT/$SWEEP"/.hydra/*/*.log)
  [ ${#logs[@]} -gt 0 ] && tar czf "$OUT/logs.tgz" "${logs[@]}" 2>/dev/null
fi

# (e) the state for the next call, and where the study stands
python bench/study_state.py ledger --root "$ROOT" --phase "$PHASE" --start "$T0" --rc "$RC"
python bench/study_state.py pack --root "$ROOT" --sweeps "${SWEEPS[@]}" --out "$OUT/study.tgz" --max-mib "$MAX_MIB"
python bench/study_state.py progress --root "$ROOT" --sweeps "${SWEEPS[@]}" --planned "${PLANNED[@]}" \
  | tee "$OUT/progress.txt"
echo "next call: copy $OUT/study.tgz to $STATE and carry $(dirname "$STATE") (and .whl)"
exit $(( ${STOPPED:-0} ? 0 : RC ))    # cut off by the limit is the plan, not a failure
