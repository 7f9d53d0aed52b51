#!/usr/bin/env bash
# The downstream suite's time per checkpoint on one GPU (the lead runs this on the H200 machine).
#
#   OUT=/some/dir CORPUS=data/large bash bench/gpu_downstream.sh   # from the repo root; at most ~2 minutes
#   (PYTHONPATH=/tmp/site:$PWD where the packages sit in /tmp/site; the script appends the repo root itself)
#
# Needs torch with CUDA, numpy, tokenizers and PyYAML (for the corpus recipe): NOT lm-eval, hydra or wandb (the
# local suite is scored by harness.scoring). Uses data/demo when it is there (carry it: 22 MB), else builds it from
# local sources (python stdlib, pydoc, licence texts; given 90 s), else falls back to a synthetic corpus
# (byte tokens: the same code paths, different items). Writes to $OUT: gpu.txt, corpus.txt, downstream_suite.csv,
# log.txt (4 files). Per shape: the full suite cold (tokenizing) and again (tokens memoised), the subset, the
# battery, batching-invariance and determinism checks, KV cache vs full forwards. Random-init models (scoring
# costs the same whatever the weights), seq_len 1024, bf16 autocast. SHAPES= and LIMIT_S= override the defaults.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out/gpu_downstream}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD SCALEMIX_NO_PROGRESS=1 WANDB_MODE=disabled
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/gpu.txt" 2>&1
python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' >> "$OUT/gpu.txt"
CORPUS=${CORPUS:-data/demo}   # any built corpus directory, e.g. CORPUS=data/large
if [ ! -f "$CORPUS/manifest.json" ] && [ "$CORPUS" = data/demo ]; then
  timeout 90 python -m harness.data.prepare corpus=demo >> "$OUT/log.txt" 2>&1 || true
fi
if [ ! -f "$CORPUS/manifest.json" ]; then
  CORPUS=/tmp/scalemix_synth_corpus
  python -c 'from harness.data.synthetic import make_synthetic_corpus as m; m("'$CORPUS'", domains=("code","docs","math","prose"), vocab_size=256, train_tokens=100000, heldout_tokens=400000)' >> "$OUT/log.txt" 2>&1
fi
echo "corpus $CORPUS" > "$OUT/corpus.txt"
timeout "${LIMIT_S:-110}" python bench/downstream_suite.py --corpus "$CORPUS" --device cuda --seq-len 1024 \
  --shapes "${SHAPES:-4x256,8x512,12x768}" --out "$OUT" 2>&1 | tee -a "$OUT/log.txt"
echo "exit ${PIPESTATUS[0]}" >> "$OUT/log.txt"
