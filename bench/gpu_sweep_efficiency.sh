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
# WARM_CACHE=1: the sweep with a WARM compile cache, as a study's later sweeps have it (its lr sweep, then the grid,
#   then relaunches share ${sweep.root}/.inductor_cache). Step 3 moves before step 2: bench/prepare_runs.py writes
#   the grid's run directories into a scratch root (the same config as the timed sweep, nothing launched) and
#   bench/solo_rates.py trains each shape there with TORCHINDUCTOR_CACHE_DIR=<a fresh cache>, which both fills that
#   cache with every shape's graphs and measures the solo rates; then the timed sweep in a fresh root with
#   sweep.inductor_cache=<that cache>, and step 4 as above. SOLO_MODES defaults to $COMPILE alone there (every mode
#   listed is compiled cold in front of the sweep). Unset or 0: the cold cache, exactly as before.
#
# Settings (environment): COMPILE=regional|on|auto  BUDGETS='[1e15,3e15,1e16]'  SIZES=4  AHEAD=true|false
#   JOBS_PER_GPU=1  SOLO_MODES='$COMPILE on' (on: 'on regional')  SOLO_STEPS=40  BEFORE='[1e15,3e15]' (empty: skipped)
#   DEADLINE_S=530 (the whole script: a stage is cut to what is left, and the tarball is always written)
#   GRID_ARGS='scale=gpu data/mixture@data=large' (a CPU smoke test of this script: see bench/README.md "Sweep
#   efficiency on a GPU")  CURVE_TOKENS=32768 (0: every eval on the full set, as before eval.curve_tokens)
#   WARM_CACHE=0|1 (above)
#   REGIONAL_EVAL=1|0: harness.evaluate.REGIONAL_EVAL set True|False in this checkout for the call (a sed; the file is put
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
WARM_CACHE=${WARM_CACHE:-0}
case "$WARM_CACHE" in 0|1) ;; *) echo "WARM_CACHE=$WARM_CACHE: expected 0 (a cold cache, the default) or 1 (the" \
  "grid's shapes compiled before the sweep)"; exit 2 ;; esac
if [ "$WARM_CACHE" = 1 ]; then SOLO_MODES=${SOLO_MODES:-$COMPILE}   # each mode here is a cold compile before the sweep
else SOLO_MODES=${SOLO_MODES:-$COMPILE $OTHER}; fi   # the sweep's mode first (the ratio needs every shape in it)
SOLO_STEPS=${SOLO_STEPS:-40}
BEFORE=${BEFORE:-}
GRID_ARGS=${GRID_ARGS:-scale=gpu data/mixture@data=large}
DEADLINE_S=${DEADLINE_S:-530}
CURVE_TOKENS=${CURVE_TOKENS:-32768}
REGIONAL_EVAL=${REGIONAL_EVAL:-}   # empty: the product default
export PYTHONPATH=${PYTHONPATH:-$PWD} WANDB_MODE=disabled HYDRA_FULL_ERROR=1 SCALEMIX_NO_PROGRESS=1
export SCALEMIX_DATA=${SCALEMIX_DATA:-$PWD/data}
W=$(mktemp -d /tmp/gpu_eff.XXXXXX)      # what goes into the tarball
mkdir -p "$OUT" "$W"
left() { local s=$(( DEADLINE_S - ($(date +%s) - START) )); echo $(( s > 10 ? s : 10 )); }
pack() { tar -czf "$OUT/eff.tgz" -C "$W" . && echo "wrote $OUT/eff.tgz"; }
restore() { [ -f "$W/evaluate.py.orig" ] && cp "$W/evaluate.py.orig" harness/evaluate.py && rm "$W/evaluate.py.orig"; }
trap 'restore; pack' EXIT
if [ "$REGIONAL_EVAL" = 0 ] || [ "$REGIONAL_EVAL" = 1 ]; then   # the eval through the compiled regions (1) or eager (0)
  WANT=True; [ "$REGIONAL_EVAL" = 0 ] && WANT=False
  cp harness/evaluate.py "$W/evaluate.py.orig"
  sed -i "s/^REGIONAL_EVAL = \(True\|False\)\$/REGIONAL_EVAL = $WANT/" harness/evaluate.py
  grep -q "^REGIONAL_EVAL = $WANT\$" harness/evaluate.py || { echo "REGIONAL_EVAL=$REGIONAL_EVAL: harness/evaluate.py" \
    "has no 'REGIONAL_EVAL = True|False' line to set"; exit 1; }
fi
{ date -u; uptime; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; git rev-parse HEAD
  nproc; echo "COMPILE=$COMPILE BUDGETS=$BUDGETS SIZES=$SIZES AHEAD=$AHEAD JOBS_PER_GPU=$JOBS_PER_GPU"
  echo "SOLO_MODES=$SOLO_MODES SOLO_STEPS=$SOLO_STEPS BEFORE=$BEFORE DEADLINE_S=$DEADLINE_S"
  echo "CURVE_TOKENS=$CURVE_TOKENS REGIONAL_EVAL=$REGIONAL_EVAL WARM_CACHE=$WARM_CACHE GRID_ARGS=$GRID_ARGS"
  python -c 'import harness.evaluate as e; print("REGIONAL_EVAL", e.REGIONAL_EVAL, "COMPILED_EVAL", e.COMPILED_EVAL)'
} > "$W/env.txt" 2>&1
cat "$W/env.txt" > "$W/summary.txt"

# grid_args <compile> <budgets>: the sweep's overrides but its root (sets ARGS; prepare_runs.py takes the same)
grid_args() {
  # shellcheck disable=SC2206
  ARGS=(+grid=chinchilla $GRID_ARGS "grid.shapes.budgets=$2"
        "grid.shapes.sizes_per_budget=$SIZES" "sweep.jobs_per_gpu=$JOBS_PER_GPU" sweep.gpus=1
        "sweep.compile_ahead=$AHEAD" "train.runtime.compile=$1")
  [ "$CURVE_TOKENS" = 0 ] || ARGS+=("eval.curve_tokens=$CURVE_TOKENS")
}

# sweep <name> <compile> <budgets> <limit s> [<inductor cache> [<bytecode cache>]]: one timed sweep in a fresh root
# (its caches the root's own, empty, unless given); leaves ROOT, T0, WALL, RC, LAUNCH
sweep() {
  local name=$1 mode=$2 budgets=$3 limit=$4 cache=${5:-} pycache=${6:-}
  ROOT=$(mktemp -d /tmp/gpu_eff_root.XXXXXX)
  grid_args "$mode" "$budgets"
  local args=("${ARGS[@]}" "sweep.root=$ROOT")
  [ -z "$cache" ] || args+=("sweep.inductor_cache=$cache")
  [ -z "$pycache" ] || args+=("sweep.bytecode_cache=$pycache")
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

# solo <sweep dir> <cache dir> <root> <limit s>: step 3, each shape of the sweep's runs alone (solo.jsonl), its table
solo() {
  # shellcheck disable=SC2086
  TORCHINDUCTOR_CACHE_DIR=$2 timeout -s TERM -k 10 "$4" "${SOLO_ENV[@]}" \
    python bench/solo_rates.py "$1" --steps "$SOLO_STEPS" --compile $SOLO_MODES \
    --root "$3" --out "$W/solo.jsonl" > "$W/solo.log" 2>&1
  echo "== solo: exit $? ($(wc -l < "$W/solo.jsonl" 2>/dev/null || echo 0) shape x mode lines; solo.log)" | tee -a "$W/summary.txt"
  python - "$W/solo.jsonl" <<'PY' 2>&1 | tee -a "$W/summary.txt"
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
PY
}

LABEL="compile=$COMPILE"
SOLO_ENV=(env)   # the prefill's environment (warm mode, where needed: the bytecode cache it shares with the sweep)
if [ "$WARM_CACHE" = 1 ]; then
  # the grid's shapes compiled into a fresh cache by the solo runs, in a scratch root the timed sweep never sees
  WARM=$(mktemp -d /tmp/gpu_eff_warm.XXXXXX)
  # the earlier sweeps' processes also left their Python bytecode where the product keeps it (sweeps.bytecode:
  # only where the installed torch ships none and Python may not write it, e.g. the GPU machine's image)
  if python -c 'import sys, sweeps.bytecode as b; sys.exit(0 if b.needed() else 1)'; then
    SOLO_ENV=(env -u PYTHONDONTWRITEBYTECODE "PYTHONPYCACHEPREFIX=$WARM/.pycache")
    echo "bytecode: the installed torch has none and may not be written; the prefill's processes write theirs to" \
      "$WARM/.pycache, the timed sweep's sweep.bytecode_cache" | tee -a "$W/summary.txt"
  else echo "bytecode: the installed torch has its own (no cache needed)" | tee -a "$W/summary.txt"; fi
  grid_args "$COMPILE" "$BUDGETS"
  "${SOLO_ENV[@]}" python bench/prepare_runs.py "${ARGS[@]}" "sweep.root=$WARM/prepared" > "$W/prepare.txt" 2>&1 \
    || { cat "$W/prepare.txt"; exit 1; }
  echo "== prepared $(( $(wc -l < "$W/prepare.txt") - 1 )) run directories (prepare.txt), nothing launched; the" \
    "solo runs compile their shapes into $WARM/.inductor_cache" | tee -a "$W/summary.txt"
  solo "$(tail -n 1 "$W/prepare.txt")" "$WARM/.inductor_cache" "$WARM/solo" $(( $(left) - 300 ))
  (cd "$WARM/.inductor_cache" 2>/dev/null && find . -type f | sort) > "$W/cache_before.txt"
  PYC_BEFORE=$(find "$WARM/.pycache" -name '*.pyc' 2>/dev/null | wc -l)
  sweep sweep "$COMPILE" "$BUDGETS" $(( $(left) - 20 )) "$WARM/.inductor_cache" "$WARM/.pycache"
  echo "bytecode cache: $PYC_BEFORE .pyc after the prefill, $(find "$WARM/.pycache" -name '*.pyc' 2>/dev/null | wc -l)" \
    "after the sweep" | tee -a "$W/summary.txt"
  # a file the sweep added to the cache is a graph (or kernel) the prefill did not compile: the sweep compiled it cold
  (cd "$WARM/.inductor_cache" && find . -type f | sort) | comm -13 "$W/cache_before.txt" - > "$W/cache_new.txt"
  echo "cache: $(wc -l < "$W/cache_before.txt") files after the prefill; the sweep added $(wc -l < "$W/cache_new.txt")" \
    "(cache_new.txt: what it compiled that the prefill had not)" | tee -a "$W/summary.txt"
  LABEL="$LABEL, warm cache: the grid's shapes were compiled before the sweep (bench/solo_rates.py), as in a study's later sweeps"
  echo "$LABEL" | tee -a "$W/summary.txt"
  SWEEP_ROOT=$ROOT SWEEP_DIR0=$SWEEP_DIR SWEEP_T0=$T0 SWEEP_WALL=$WALL SWEEP_LAUNCH=$LAUNCH
else
  sweep sweep "$COMPILE" "$BUDGETS" $(( $(left) - 150 ))
  SWEEP_ROOT=$ROOT SWEEP_DIR0=$SWEEP_DIR SWEEP_T0=$T0 SWEEP_WALL=$WALL SWEEP_LAUNCH=$LAUNCH
  # each shape alone, caches warm from the sweep (the first window, compilation, is not in the rate anyway)
  solo "$SWEEP_DIR0" "$SWEEP_ROOT/.inductor_cache" "$SWEEP_ROOT/solo" $(( $(left) - 20 ))
fi
SOLO_MODE=$COMPILE; [ "$COMPILE" = auto ] && SOLO_MODE=
python bench/worker_ratio.py "$SWEEP_DIR0" --wall "$SWEEP_WALL" --label "$LABEL" \
  --t0 "$SWEEP_T0" --launch "$SWEEP_LAUNCH" --csv "$W/sweep/runs.csv" --solo "$W/solo.jsonl" \
  ${SOLO_MODE:+--solo-mode "$SOLO_MODE"} 2>&1 | tee -a "$W/summary.txt"
rm -rf "$SWEEP_ROOT" ${WARM:+"$WARM"}
