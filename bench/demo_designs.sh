#!/usr/bin/env bash
# Candidate CPU demo designs side by side on one many-core machine's CPUs (issue 11): for each candidate (a set of
# overrides of `+grid=demo`), both seeds' sweeps, reports and the two-seed check (bench/demo_stability.py --parallel),
# all candidates at once, each sweep at SWEEP_JOBS runs of one thread (3 candidates x 2 seeds x 2 = 12 cores).
#
#   OUT=<dir> bash bench/demo_designs.sh                    # the CANDIDATES below
#   OUT=<dir> CANDIDATES=<file> bash bench/demo_designs.sh  # one candidate a line: <name> <override> <override> ...
#
# Overrides must not contain spaces (Hydra takes {seeds:[1,2],budgets:[smallest]}). CPU only (CUDA hidden). The
# whole script ends within LIMIT_S seconds (default 510): sweeps still running at LIMIT_S - REPORT_S - PACK_S are
# stopped (SIGTERM, then SIGKILL) and the reports fit the runs that finished. Builds the demo corpus first when
# data/demo is missing or stale (harness.data.prepare returns at once otherwise). Writes
#   $OUT/designs.txt   one line per candidate: both seeds' verdicts and a (approach 3) with 90% intervals, noise,
#                      PASS/FAIL, each sweep's wall and CPU seconds (user + sys of the sweep and all its runs)
#   $OUT/designs.tgz   per candidate: the check's output and JSON, each seed's report.md, laws.json, runs table
#                      (runs.csv) and one run's grid.json (sweep_grid.json); no checkpoints
set -u
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the output folder}"
PY=${PYTHON:-python}
LIMIT_S=${LIMIT_S:-510}
REPORT_S=${REPORT_S:-100}     # reports and the check after the sweeps stop (6 reports at once)
PACK_S=${PACK_S:-25}
SWEEP_JOBS=${SWEEP_JOBS:-2}
WORK=${WORK:-$(mktemp -d /tmp/demo_designs.XXXXXX)}
export CUDA_VISIBLE_DEVICES= SCALEMIX_NO_PROGRESS=1 WANDB_MODE=${WANDB_MODE:-disabled} MPLBACKEND=Agg
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
START=$(date +%s)
mkdir -p "$OUT" "$WORK"

# name, then overrides: the candidates of the 2026-12-01 device check (bench/README.md, "CPU demo grid: budgets on
# the ladder's rungs"; "rung" became the default, with eval.points 3, so it now runs 3 evals a run). All three:
# tokens_per_param 18 (the D/N, compute N, of the isoFLOP minima the pinned corpus showed at 1.3e11-6e11: 20, 16, 17),
# adjacent rungs (spacing 1.6), and budgets where that optimum falls on a rung of the CPU ladder (L2-d16 near
# 1.3e11-1.8e11, L3-d24 near 5e11) so that 3 sizes put a rung on each side of it;
# the smallest budget (optimum at or below the smallest rung, L1-d8) trained again with 2 (R2) or 3 (R3) more seeds,
# so that the noise the residuals are judged against has 6 or 9 degrees of freedom instead of 3.
R2='scale.chinchilla.replicates={seeds:[1,2],budgets:[smallest]}'
R3='scale.chinchilla.replicates={seeds:[1,2,3],budgets:[smallest]}'
SHAPES='scale.chinchilla.tokens_per_param=18 grid.shapes.spacing=1.6'
DEFAULT_CANDIDATES="
rung scale.chinchilla.budgets=[5e10,1.3e11,1.8e11,5e11] $SHAPES $R2
rung_lite scale.chinchilla.budgets=[4.5e10,1.3e11,1.8e11,4.5e11] $SHAPES $R2 eval.points=3
rung_r3 scale.chinchilla.budgets=[5e10,1.3e11,1.8e11,5e11] $SHAPES $R3 eval.points=3
#geo scale.chinchilla.budgets=[5e10,1.08e11,2.32e11,5e11] $SHAPES $R2
"
if [ -n "${CANDIDATES:-}" ]; then LIST=$(cat "$CANDIDATES"); else LIST=$DEFAULT_CANDIDATES; fi

echo "== $(date -u +%FT%TZ) $(getconf _NPROCESSORS_ONLN) CPUs, $(uname -m); work in $WORK" | tee "$OUT/designs.log"
lscpu 2>/dev/null | grep -E 'Model name|^CPU\(s\)' | tee -a "$OUT/designs.log"
"$PY" -m harness.data.prepare corpus=demo >>"$OUT/designs.log" 2>&1 \
    || echo "corpus build failed" | tee -a "$OUT/designs.log"
echo "corpus ready after $(( $(date +%s) - START )) s" | tee -a "$OUT/designs.log"

SWEEP_S=$(( LIMIT_S - ($(date +%s) - START) - REPORT_S - PACK_S ))
NAMES=()
while read -r name overrides; do
    [ -z "$name" ] && continue
    case "$name" in \#*) continue ;; esac
    NAMES+=("$name")
    mkdir -p "$WORK/$name"
    # shellcheck disable=SC2086  # the overrides are space-separated words by design
    timeout -s TERM -k 15 $(( SWEEP_S + REPORT_S )) "$PY" bench/demo_stability.py --parallel --root "$WORK/$name" \
        --sweep-timeout "$SWEEP_S" --json "$WORK/$name/stability.json" \
        --set $overrides "sweep.max_parallel=$SWEEP_JOBS" scale.threads=1 \
        >"$WORK/$name/stability.txt" 2>&1 &
    echo "$name (pid $!): $overrides" | tee -a "$OUT/designs.log"
done <<<"$LIST"
echo "sweeps stop after $SWEEP_S s" | tee -a "$OUT/designs.log"
wait

# runs tables and one grid.json per sweep, then the summary lines
for name in "${NAMES[@]}"; do
    for sw in "$WORK/$name"/demo_s*; do
        [ -d "$sw" ] || continue
        "$PY" - "$sw" >"$sw/runs_table.log" 2>&1 <<'EOF'
import sys, warnings
warnings.simplefilter("ignore")
from analysis.results import load
r = load(sys.argv[1]).runs
keep = [c for c in ("run_id", "budget", "label", "seed", "n_layers", "d_model", "params_compute", "params_nonembedding",
                    "tokens", "flops", "steps", "loss", "loss_code", "loss_docs", "loss_prose", "train_loss", "wall_s",
                    "time_train_s", "time_eval_s", "time_setup_s", "device", "git_sha", "corpus_sha256") if c in r]
r.sort_values(["budget", "params_compute", "seed"])[keep].to_csv(f"{sys.argv[1]}/runs.csv", index=False)
print(len(r), "runs")
EOF
        g=$(ls "$sw"/*/grid.json 2>/dev/null | head -1); [ -n "$g" ] && cp "$g" "$sw/sweep_grid.json"
    done
done
"$PY" - "$WORK" "${NAMES[@]}" >"$OUT/designs.txt" <<'EOF'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
def f(x):
    return "nan" if x is None else f"{x:.3f}"
for name in sys.argv[2:]:
    p = work / name / "stability.json"
    if not p.exists():
        print(f"{name}: no result (see {name}/stability.txt)")
        continue
    s = json.loads(p.read_text())
    parts = []
    for r in s["rows"]:
        noise = f"{r['noise_sd']:.2%}/{r['noise_dof']}dof" if r.get("noise_sd") is not None else "noise -"
        cost = (f"sweep {r.get('sweep_wall_s', float('nan')):.0f} s wall {r.get('sweep_cpu_s', float('nan')):.0f} CPU-s"
                + (" TIMEOUT" if r.get("sweep_timed_out") else ""))
        parts.append(f"s{r['seed']}: {r['verdict']}, a {f(r.get('a3'))} [{f(r.get('a3_lo'))}, {f(r.get('a3_hi'))}], "
                     f"{noise}, {cost}")
    print(f"{name}: {'PASS' if s['pass'] else 'FAIL'} | " + " | ".join(parts) + " | " + " ".join(s["overrides"]))
EOF
cat "$OUT/designs.txt"
echo "== done after $(( $(date +%s) - START )) s" | tee -a "$OUT/designs.log"
cp "$OUT/designs.txt" "$OUT/designs.log" "$WORK/" 2>/dev/null
( cd "$WORK" && find . \( -name stability.txt -o -name stability.json -o -name runs.csv -o -name runs_table.log \
      -o -name designs.txt -o -name designs.log -o -path '*/report/report.md' -o -path '*/report/laws.json' \
      -o -name sweep_grid.json \) -print0 | tar --null -czf "$OUT/designs.tgz" -T - )
ls -la "$OUT"
