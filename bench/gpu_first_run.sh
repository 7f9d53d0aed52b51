#!/usr/bin/env bash
# Where a sweep worker's start and its first run's warm-up go, on one GPU, in ONE call (issue 12 item 1; ~1.5-2
# minutes on a cold H200, at most DEADLINE_S=115 s plus the summary; nothing to carry: synthetic tokens, needs only
# torch, triton and numpy; no corpus, no hydra):
#
#   OUT=$OUT bash bench/gpu_first_run.sh          # from the repository root
#
# bench/first_run_profile.py (its docstring says what each mark is and where each number comes from) in FRESH python
# processes, one after another:
#   1. cold:    a new, empty TORCHINDUCTOR_CACHE_DIR: imports, CUDA, L4-d256 then L6-d384 (micro-batch 128, seq 1024,
#               vocab 8192, runtime.compile=regional), each shape's first step split by phase, steps 2-3, steady
#               step, the trainer's eval warm-up (if it compiles anything under the default settings) and first evals
#   2. warm:    the same in a second process on the SAME cache dir (the FX-graph, AOTAutograd and Triton caches on
#               disk warm, the process cold), as a sweep's later worker or a re-launch finds them
#   3. prewarm: (only if >= 45 s of DEADLINE_S are left) cold again, on another new cache dir, with Inductor's compile
#               worker pool started and awaited before CUDA starts (--prewarm-pool): how much of the cold first
#               compile is the pool not being up yet (Inductor compiles in-process until it answers)
# Then a table, one row per mark, one column per process (the one to read first), on stdout and in first_run.txt.
# A dry run of the plumbing on a CPU (seconds; the numbers are the CPU's, not the GPU's):
#   OUT=/tmp/o EXTRA='--smoke' bash bench/gpu_first_run.sh
# $OUT gets first_run.txt (every process' output, then the table), first_run.json (every process' marks and
# phases), first_run_<label>.json per process, env.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
OUT=${OUT:-bench/out/first_run}
COMPILE=${COMPILE:-regional}  # runtime.compile for every process (the session-12 sweeps' mode; on: the whole step)
EXTRA=${EXTRA:-}              # more first_run_profile.py arguments for every process (a CPU dry run: --smoke)
DEADLINE_S=${DEADLINE_S:-115} # no process runs past this many seconds from the start (each is cut by `timeout`)
PREWARM_MIN_S=${PREWARM_MIN_S:-45}   # the third process starts only with this much of DEADLINE_S left
mkdir -p "$OUT"
: > "$OUT/first_run.txt"
export PYTHONPATH=${PYTHONPATH:-$PWD} WANDB_MODE=disabled
unset TORCHINDUCTOR_CACHE_DIR TRITON_CACHE_DIR   # each process gets its own below: a cold one must be cold
{ date -u; uptime; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
  git rev-parse HEAD   # torch's version is in each process's JSON: no import here, the cold process's is the first
  nproc; echo "COMPILE=$COMPILE DEADLINE_S=$DEADLINE_S PREWARM_MIN_S=$PREWARM_MIN_S EXTRA=$EXTRA"; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
left() { echo $(( DEADLINE_S - ($(date +%s) - START) )); }
profile() {   # profile <label> <inductor cache dir> [more arguments]
  local label=$1 cache=$2 t=$(left)
  shift 2
  if [ "$t" -lt 10 ]; then echo "[$label] not started: $t s of DEADLINE_S left" | tee -a "$OUT/first_run.txt"; return; fi
  echo "=== [$label] TORCHINDUCTOR_CACHE_DIR=$cache, at most $t s" | tee -a "$OUT/first_run.txt"
  local t0=$(date +%s.%N)
  # LAUNCH_T: this shell's clock just before python starts (the script reports the interpreter's start from it)
  LAUNCH_T=$(date +%s.%N) TORCHINDUCTOR_CACHE_DIR=$cache timeout "$t" \
    python bench/first_run_profile.py --label "$label" --json "$OUT/first_run_$label.json" --compile "$COMPILE" $EXTRA "$@" 2>&1 \
    | tee -a "$OUT/first_run.txt"
  echo "[$label] exit ${PIPESTATUS[0]}, $(python -c "import time; print(round(time.time() - $t0, 1))") s of wall" \
    | tee -a "$OUT/first_run.txt"
}
COLD=$(mktemp -d /tmp/first_run_cache.XXXXXX)
profile cold "$COLD"
profile warm "$COLD"
if [ "$(left)" -ge "$PREWARM_MIN_S" ]; then
  profile prewarm "$(mktemp -d /tmp/first_run_cache.XXXXXX)" --prewarm-pool
else
  echo "[prewarm] skipped: $(left) s of DEADLINE_S left (< PREWARM_MIN_S=$PREWARM_MIN_S)" | tee -a "$OUT/first_run.txt"
fi
python bench/first_run_profile.py --compare "$OUT/first_run.json" "$OUT"/first_run_cold.json \
  "$OUT"/first_run_warm.json "$OUT"/first_run_prewarm.json 2>&1 | tee -a "$OUT/first_run.txt"
echo "total: $(( $(date +%s) - START )) s" | tee -a "$OUT/first_run.txt"
