#!/usr/bin/env bash
# examples/study*: the GPU study of record's tables, laws, reports and figures, rebuilt from its run directories on
# the CPU (no GPU needed; ~1 minute on 2 cores). The run directories come from the carried state:
#   python bench/study_state.py restore .study/runs.tgz --root runs      # runs/study-lr, study, study-big, ...
#   bash bench/study_examples.sh                                         # writes examples/study, examples/study-lr
#   GRID=study2 bash bench/study_examples.sh                            # the grid with a batch per run: examples/study2
# runs/study-check (bench/residual_check.sh's runs) is optional: its table is added (GRID=study) when present.
# Env: ROOT (runs), EX (examples), GRID (study: the grid's sweep), BIG (its 4x run's sweep: study-big for study,
# else <GRID>-big), BIG_FACTOR (4), BIG_MAX_TOKENS (786000000: scale/study.yaml's 5-epoch cap).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${ROOT:-runs}; EX=${EX:-examples}; G=${GRID:-study}
if [ "$G" = study ]; then B=${BIG:-study-big}; else B=${BIG:-$G-big}; fi
export PYTHONPATH=${PYTHONPATH:-$PWD} MPLBACKEND=Agg SCALEMIX_NO_PROGRESS=1
for s in study-lr "$G" "$B"; do
  [ -d "$ROOT/$s" ] || { echo "error: $ROOT/$s missing: restore the state first (python bench/study_state.py" \
    "restore .study/runs.tgz --root $ROOT)" >&2; exit 2; }
done
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
python -m analysis.report "$ROOT/study-lr" > "$TMP/lr.log" 2>&1 || { tail -n 20 "$TMP/lr.log"; exit 3; }
python -m analysis.report "$ROOT/$G" > "$TMP/report.log" 2>&1 || { tail -n 20 "$TMP/report.log"; exit 3; }
python -m analysis.holdout "$ROOT/$G" --hold-largest > /dev/null
python bench/study_rungs.py "$ROOT/$G" > "$TMP/rungs.json"
python -m analysis.holdout "$ROOT/$G" --plan-big "${BIG_FACTOR:-4}" --rungs "$TMP/rungs.json" \
  --max-tokens "${BIG_MAX_TOKENS:-786000000}" > /dev/null
big=("$ROOT"/$B/*/result.json)
[ ${#big[@]} -eq 1 ] || { echo "error: expected one finished run in $ROOT/$B, found ${#big[@]}" >&2; exit 3; }
python -m analysis.holdout "$ROOT/$G" --predict-run "$(dirname "${big[0]}")" > /dev/null

mkdir -p "$EX/$G/figures" "$EX/study-lr/figures"
cp "$ROOT/$G/report/"{report.md,holdout.md,laws.json} "$EX/$G/"
cp "$ROOT/$G/report/figures/"*.png "$EX/$G/figures/"
cp "$ROOT/study-lr/report/"{report.md,laws.json} "$EX/study-lr/"
cp "$ROOT/study-lr/report/figures/"*.png "$EX/study-lr/figures/"
# the runs tables: one CSV per sweep (result.json's scalar fields), small enough for git
python - "$ROOT" "$EX" "$G" "$B" <<'EOF'
import sys, warnings
from pathlib import Path
from analysis import results
root, ex, grid, big = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
warnings.simplefilter("ignore")
extra = (("study-check", "study/residual_check_runs.csv"), ("study-superseded", "study/superseded_runs.csv")) \
    if grid == "study" else ()
for sweep, out in ((grid, f"{grid}/runs.csv"), ("study-lr", "study-lr/runs.csv"), (big, f"{grid}/big_run.csv"), *extra):
    if (root / sweep).is_dir():
        runs = results.load(root / sweep).runs
        runs = runs[[c for c in runs.columns if runs[c].map(lambda v: not isinstance(v, (dict, list))).all()]]
        runs.sort_values(["budget", "params_compute", "seed"] if "budget" in runs else ["run_id"]).to_csv(
            ex / out, index=False, float_format="%.6g")
        print(f"wrote {ex / out}: {len(runs)} runs")
EOF
if [ "$G" = study ] && [ -d "$ROOT/study-check" ]; then
  python bench/residual_check_eval.py "$ROOT/study" "$ROOT/study-check" --study-big "$ROOT/$B" \
    > "$EX/$G/residual_check.txt"
fi
python bench/study_state.py progress --root "$ROOT" --sweeps study-lr "$G" "$B" > "$EX/$G/progress.txt"
python - "$ROOT/.study_ledger.jsonl" > "$EX/$G/device_calls.md" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print("| start (UTC) | phase | exit | wall s |\n|---|---|---|---|")
for r in rows:
    print(f"| {r['start']} | {r['phase']} | {r['rc']} | {r['wall_s']:.1f} |")
total = sum(r["wall_s"] for r in rows)
print(f"\n{len(rows)} calls, {total:.0f} s = {total / 60:.1f} GPU-minutes of study commands (machine start and "
      "transfers not included; exit 3 or 124: the call's time ran out and the next call resumed)")
EOF

python bench/study_key_figure.py "$ROOT/$G" "$ROOT/$B" \
  $([ "$G" = study ] && [ -d "$ROOT/study-check" ] && echo --check "$ROOT/study-check") --out "$EX/$G/figures/key.png" 2>/dev/null
du -sh "$EX"
