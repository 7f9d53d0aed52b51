#!/usr/bin/env bash
# Issue 12, item 1 on one GPU, in ONE call: a chinchilla grid's sweep wall time against the sum of its runs'
# steady-state training times measured ALONE (target: wall / sum <= 1.15), and where the rest went.
#
#   OUT=/some/dir bash bench/gpu_sweep_efficiency.sh      # the issue's 12-run grid (1e15, 3e15, 1e16 x 4 sizes)
#
#   1. (BEFORE=<budgets>, optional) a shorter sweep with the whole-step compile (the old mode), its own cache
#   2. the sweep: +grid=chinchilla $GRID_ARGS (default scale=gpu data/mixture@data=large, the issue's grid) with
#      train.runtime.compile=$COMPILE, one run at a time on the GPU (sweep.jobs_per_gpu=$JOBS_PER_GPU), and
#      eval.curve_tokens=$CURVE_TOKENS (the evals before the last on that prefix of each domain's held-out set)
#   3. bench/solo_rates.py: every shape of the sweep trained alone for $SOLO_STEPS steps per mode in $SOLO_MODES
#      (warm caches): solo tokens/s; a run's solo time = its tokens / its shape's rate in the sweep's mode
#   4. bench/worker_ratio.py: per run, wall / sum(solo), the training share, and the wall outside the runs by phase
#      (sweeps.timeline); the per-mode solo tokens/s say whether compile=regional is at least as fast as on
#
# Settings (environment): COMPILE=regional|on|auto  BUDGETS='[1e15,3e15,1e16]'  SIZES=4  AHEAD=true|false
#   JOBS_PER_GPU=1  SOLO_MODES='$COMPILE on' (on: 'on regional')  SOLO_STEPS=40  BEFORE='[1e15,3e15]' (empty: skipped)
#   DEADLINE_S=530 (the whole script: a stage is cut to what is left, and the tarball is always written)
#   GRID_ARGS='scale=gpu data/mixture@data=large' (a CPU smoke test of this script: see bench/README.md "Sweep
#   efficiency on a GPU")  CURVE_TOKENS=32768 (0: every eval on the full set, as before eval.curve_tokens)
#   REGIONAL_EVAL=1: harness.evaluate.REGIONAL_EVAL set True in this checkout for the call (a sed; the file is put
#   back when the script ends), so that regional runs evaluate through their compiled regions
# Needs the corpus GRID_ARGS names (data/large, or $SCALEMIX_DATA/large), hydra/omegaconf/submitit importable
# (PYTHONPATH=/tmp/site:$PWD), no network. Everything goes into ONE tarball, $OUT/eff.tgz (summary.txt first).
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
OUT=${OUT:-bench/out/gpu_sweep_efficiency}
COMPILE=${COMPILE:-regional}
BUDGETS=${BUDGETS:-[1e15,3e15,1e16]}
SIZES=${SIZES:-4}
AHEAD=${AHEAD:-true}
JOBS_PER_GPU=${JOBS_PER_GPU:-1}
OTHER=on; [ "$COMPILE" = on ] && OTHER=regional
SOLO_MODES=${SOLO_MODES:-$COMPILE $OTHER}   # the sweep's mode first (the ratio needs every shape in it)
SOLO_STEPS=${SOLO_STEPS:-40}
BEFORE=${BEFORE:-}
GRID_ARGS=${GRID_ARGS:-scale=gpu data/mixture@data=large}
DEADLINE_S=${DEADLINE_S:-530}
CURVE_TOKENS=${CURVE_TOKENS:-32768}
REGIONAL_EVAL=${REGIONAL_EVAL:-0}
export PYTHONPATH=${PYTHONPATH:-$PWD} WANDB_MODE=disabled HYDRA_FULL_ERROR=1 SCALEMIX_NO_PROGRESS=1
export SCALEMIX_DATA=${SCALEMIX_DATA:-$PWD/data}
W=$(mktemp -d /tmp/gpu_eff.XXXXXX)      # what goes into the tarball
mkdir -p "$OUT" "$W"
left() { local s=$(( DEADLINE_S - ($(date +%s) - START) )); echo $(( s > 10 ? s : 10 )); }
pack() { tar -czf "$OUT/eff.tgz" -C "$W" . && echo "wrote $OUT/eff.tgz"; }
restore() { [ -f "$W/evaluate.py.orig" ] && cp "$W/evaluate.py.orig" harness/evaluate.py && rm "$W/evaluate.py.orig"; }
trap 'restore; pack' EXIT
if [ "$REGIONAL_EVAL" = 1 ]; then   # the eval through the compiled regions (off in the product until measured)
  cp harness/evaluate.py "$W/evaluate.py.orig"
  sed -i 's/^REGIONAL_EVAL = False$/REGIONAL_EVAL = True/' harness/evaluate.py
  grep -q '^REGIONAL_EVAL = True$' harness/evaluate.py || { echo "REGIONAL_EVAL=1: harness/evaluate.py has no" \
    "'REGIONAL_EVAL = False' line to flip"; exit 1; }
fi
{ date -u; uptime; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; git rev-parse HEAD
  nproc; echo "COMPILE=$COMPILE BUDGETS=$BUDGETS SIZES=$SIZES AHEAD=$AHEAD JOBS_PER_GPU=$JOBS_PER_GPU"
  echo "SOLO_MODES=$SOLO_MODES SOLO_STEPS=$SOLO_STEPS BEFORE=$BEFORE DEADLINE_S=$DEADLINE_S"
  echo "CURVE_TOKENS=$CURVE_TOKENS REGIONAL_EVAL=$REGIONAL_EVAL GRID_ARGS=$GRID_ARGS"
  python -c 'import harness.evaluate as e; print("REGIONAL_EVAL", e.REGIONAL_EVAL, "COMPILED_EVAL", e.COMPILED_EVAL)'
} > "$W/env.txt" 2>&1
cat "$W/env.txt" > "$W/summary.txt"

# sweep <name> <compile> <budgets> <limit s>: one timed sweep in a fresh root; leaves ROOT, T0, WALL, RC, LAUNCH
sweep() {
  local name=$1 mode=$2 budgets=$3 limit=$4
  ROOT=$(mktemp -d /tmp/gpu_eff_root.XXXXXX)
  # shellcheck disable=SC2206
  local args=(+grid=chinchilla $GRID_ARGS "grid.shapes.budgets=$budgets"
              "grid.shapes.sizes_per_budget=$SIZES" "sweep.jobs_per_gpu=$JOBS_PER_GPU" sweep.gpus=1
              "sweep.compile_ahead=$AHEAD" "train.runtime.compile=$mode" "sweep.root=$ROOT")
  [ "$CURVE_TOKENS" = 0 ] || args+=("eval.curve_tokens=$CURVE_TOKENS")
  mkdir -p "$W/$name"
  python sweep.py "${args[@]}" sweep.dry_run=true > "$W/$name/plan.txt" 2>&1 || { cat "$W/$name/plan.txt"; exit 1; }
  T0=$(date +%s.%N)
  timeout -s TERM -k 15 "$limit" python sweep.py "${args[@]}" > "$W/$name/sweep.log" 2>&1
  RC=$?
  WALL=$(python -c "print(round($(date +%s.%N) - $T0, 2))")
  SWEEP_DIR=$(ls -d "$ROOT"/*/ | head -n 1)   # runs/<grid><scale suffix>
  LAUNCH=$(ls -d "$SWEEP_DIR".hydra/*/ | tail -n 1)
  mkdir -p "$W/$name/launch" "$W/$name/runs"
  cp "$LAUNCH"/*.log "$LAUNCH"/*.jsonl "$W/$name/launch/" 2>/dev/null
  for d in "$SWEEP_DIR"*/; do   # each run's result and metrics (not its checkpoints)
    [ -f "$d/spec.yaml" ] || continue
    mkdir -p "$W/$name/runs/$(basename "$d")"
    cp "$d"/{spec.yaml,grid.json,result.json,metrics.jsonl,failed.json} "$W/$name/runs/$(basename "$d")/" 2>/dev/null
  done
  { echo "== $name: compile=$mode budgets=$budgets: sweep exit $RC, wall $WALL s (limit $limit s)"
    [ "$RC" = 0 ] || echo "WARNING: the sweep did not finish (exit $RC): NOT a valid measurement; lower BUDGETS/SIZES"
  } | tee -a "$W/summary.txt"
}

if [ -n "$BEFORE" ]; then
  sweep before on "$BEFORE" $(( $(left) / 3 ))
  python bench/worker_ratio.py "$SWEEP_DIR" --wall "$WALL" --label "before (compile=on, $BEFORE)" \
    --t0 "$T0" --launch "$LAUNCH" --csv "$W/before/runs.csv" 2>&1 | tee -a "$W/summary.txt"
  rm -rf "$ROOT"
fi

sweep sweep "$COMPILE" "$BUDGETS" $(( $(left) - 150 ))
SWEEP_ROOT=$ROOT SWEEP_DIR0=$SWEEP_DIR SWEEP_T0=$T0 SWEEP_WALL=$WALL SWEEP_LAUNCH=$LAUNCH
# each shape alone, caches warm from the sweep (the first window, compilation, is not in the rate anyway)
# shellcheck disable=SC2086
TORCHINDUCTOR_CACHE_DIR=$SWEEP_ROOT/.inductor_cache timeout -s TERM -k 10 $(( $(left) - 20 )) \
  python bench/solo_rates.py "$SWEEP_DIR0" --steps "$SOLO_STEPS" --compile $SOLO_MODES \
  --root "$SWEEP_ROOT/solo" --out "$W/solo.jsonl" > "$W/solo.log" 2>&1
echo "== solo: exit $? ($(wc -l < "$W/solo.jsonl" 2>/dev/null || echo 0) shape x mode lines; solo.log)" | tee -a "$W/summary.txt"
python - "$W/solo.jsonl" <<'EOF' 2>&1 | tee -a "$W/summary.txt"
import json, sys
rows = [json.loads(x) for x in open(sys.argv[1])] if __import__("os").path.exists(sys.argv[1]) else []
by = {}
for r in rows:
    by.setdefault(r["shape"], {})[r["mode"]] = r
modes = list(dict.fromkeys(r["mode"] for r in rows))
print("shape alone: tokens/s (first window = compile, s) per compile mode")
for shape, m in by.items():
    print(f"  {shape:<10} " + "  ".join(f"{k}: {m[k]['solo_tokens_per_s']:.4g} ({m[k]['time_warmup_s']:.1f} s)"
                                         for k in modes if k in m)
          + ("  regional/on tokens/s %.3f" % (m["regional"]["solo_tokens_per_s"] / m["on"]["solo_tokens_per_s"])
             if {"regional", "on"} <= set(m) else ""))
EOF
SOLO_MODE=$COMPILE; [ "$COMPILE" = auto ] && SOLO_MODE=
python bench/worker_ratio.py "$SWEEP_DIR0" --wall "$SWEEP_WALL" --label "compile=$COMPILE" \
  --t0 "$SWEEP_T0" --launch "$SWEEP_LAUNCH" --csv "$W/sweep/runs.csv" --solo "$W/solo.jsonl" \
  ${SOLO_MODE:+--solo-mode "$SOLO_MODE"} 2>&1 | tee -a "$W/summary.txt"
rm -rf "$SWEEP_ROOT"
