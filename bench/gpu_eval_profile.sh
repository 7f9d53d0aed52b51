#!/usr/bin/env bash
# The held-out eval on one GPU, in ONE call (issue 12 item 1; 3-4 minutes, at most ~5; nothing to carry: synthetic tokens,
# needs only torch and numpy):
#
#   OUT=$OUT bash bench/gpu_eval_profile.sh          # from the repository root
#
#   1. bench/eval_profile.py at the GPU study's eval: L2-d128 (micro-batch 128) and L8-d512 (micro-batch 16), seq_len
#      1024, vocab 8192, 5 domains x 262,144 held-out tokens (scale=gpu), runtime.compile regional, on and off; per
#      mode a training step, the old eval, the new eager eval (and under inference_mode), the compiled eval; under
#      regional also the compiled and the eager eval at 16, 128 and 256 sequences a call
#   2. the same with document masks on (the compiled eval's flex path, not yet run on a GPU): L2-d128, regional, off
# A fresh inductor cache: the first compile of each graph is cold, as a sweep's first run of a shape (later ones in
# the call may hit the cache: the rows' `cold` column says which). Each part stops starting variants at its deadline.
# A dry run of the plumbing on a CPU (seconds): OUT=/tmp/o EXTRA=--smoke bash bench/gpu_eval_profile.sh
# $OUT gets eval_profile.txt (tables and summaries), eval_profile.json, eval_profile_docmask.json, env.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out/eval_profile}
MAIN_S=${MAIN_S:-170}       # part 1 starts no variant after this many seconds
DOCMASK_S=${DOCMASK_S:-40}  # part 2 likewise
EXTRA=${EXTRA:-}            # more eval_profile.py arguments for both parts (a CPU dry run: EXTRA=--smoke)
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-$PWD} TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$(mktemp -d /tmp/inductor.XXXXXX)}
{ date -u; uptime; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; git rev-parse HEAD
  nproc; echo "MAIN_S=$MAIN_S DOCMASK_S=$DOCMASK_S TORCHINDUCTOR_CACHE_DIR=$TORCHINDUCTOR_CACHE_DIR"; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
T0=$(date +%s)
python bench/eval_profile.py --json "$OUT/eval_profile.json" --deadline-s "$MAIN_S" $EXTRA 2>&1 | tee "$OUT/eval_profile.txt"
echo "part 1: exit ${PIPESTATUS[0]}, $(( $(date +%s) - T0 )) s" | tee -a "$OUT/eval_profile.txt"
T1=$(date +%s)
python bench/eval_profile.py --shapes 2/64 --modes regional,off --docmask on --batches '' \
  --json "$OUT/eval_profile_docmask.json" --deadline-s "$DOCMASK_S" $EXTRA 2>&1 | tee -a "$OUT/eval_profile.txt"
echo "part 2 (document masks): exit ${PIPESTATUS[0]}, $(( $(date +%s) - T1 )) s" | tee -a "$OUT/eval_profile.txt"
