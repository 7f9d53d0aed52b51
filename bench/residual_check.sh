#!/usr/bin/env bash
# Which of three causes puts the GPU study's low tokens-per-parameter runs above its law (bench/README.md, "GPU
# study: what the residuals track"): four of those runs trained again (a) at half and twice their lr (the lr
# sweep ran every size at D = 12 N only), (b) at their lr with a 4x smaller batch, 32 x 1024 tokens (4x the
# optimizer steps on the same tokens). If (a) or (b) brings them down to the law fitted to the other runs, the
# cause is the lr or the step count; if neither does, the law's form itself misses low D/N at this scale.
#   bash bench/residual_check.sh            the planner's table and cost for the 12 runs (dry run; CPU is fine)
#   RUN=1 bash bench/residual_check.sh      train them (runs/study-check; the device machine, one H200)
# The four: C5.5e15 L7-d448 (284 steps, 1.7 tokens per compute parameter), C1.3e16 L8-d512 (463, 1.9),
# C3e16 L9-d576 (831, 2.7), C3e16 L8-d512 (1069, 4.5); tokens and lrs from their spec.yaml in runs/study.
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=$([ "${RUN:-0}" = 1 ] && echo false || echo true)
ROOT=${ROOT:-runs}
#      depth tokens     lr
RUNS=("7 37349060 0.00173" "8 60773363 0.00173" "9 109030289 0.00174" "8 140246223 0.00173")
for r in "${RUNS[@]}"; do
  read -r depth tokens lr <<< "$r"
  half=$(python3 -c "print(f'{$lr / 2:.4g}')"); twice=$(python3 -c "print(f'{$lr * 2:.4g}')")
  common=(+grid=study_big "sweep.root=$ROOT" sweep.name=study-check grid.lr_from=null "grid.shapes.depth=$depth"
          "grid.shapes.tokens=$tokens" "sweep.dry_run=$DRY")
  python sweep.py "${common[@]}" "grid.lrs=[$half,$twice]" | grep -E "^([0-9a-f]{12} |total)" | head -n 3
  python sweep.py "${common[@]}" "grid.lrs=[$lr]" train.batch_tokens=32768 | grep -E "^([0-9a-f]{12} |total)" | head -n 2
done
