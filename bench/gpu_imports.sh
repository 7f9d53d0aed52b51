#!/usr/bin/env bash
# Where a fresh GPU machine's start-up seconds go (issue 12 item 1: a sweep worker spent 10.4 s from spawn to
# imported on the H200, the machine check beside it 9.4 s; this VM's CPU torch imports the same in ~3 s).
#
#   OUT=$OUT bash bench/gpu_imports.sh
#
# bench/import_stages.py in fresh processes: first on the machine (cold page cache, empty Triton cache), again
# (warm), two at once (as a sweep's worker and its machine check start), then `python -X importtime` of the
# worker's imports (importtime.txt: the 40 slowest modules, self and cumulative). Also one CPU core's Python speed
# (a fixed loop), for comparing machines, and the bytecode state of the packages (.pyc present, writable).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out/gpu_imports}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-$PWD}
{
  date -u; nproc; lscpu | grep -E 'Model name|^CPU\(s\)|MHz' ; free -g | head -2
  echo "PYTHONDONTWRITEBYTECODE=${PYTHONDONTWRITEBYTECODE:-} PYTHONPYCACHEPREFIX=${PYTHONPYCACHEPREFIX:-}"
  echo "triton cache: $(ls ~/.triton/cache 2>/dev/null | wc -l) entries; TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-}"
  python -c 'import timeit; print("python loop (20 x sum(range(1e6))):", round(timeit.timeit("sum(range(10**6))", number=20), 3), "s")'
} 2>&1 | tee "$OUT/imports.txt"
for run in cold warm; do
  echo "== $run process" | tee -a "$OUT/imports.txt"
  python bench/import_stages.py --json "$OUT/$run.json" 2>&1 | tee -a "$OUT/imports.txt"
done
echo "triton cache after: $(ls ~/.triton/cache 2>/dev/null | wc -l) entries" | tee -a "$OUT/imports.txt"
echo "== two processes at once" | tee -a "$OUT/imports.txt"
python bench/import_stages.py --json "$OUT/par1.json" > "$OUT/par1.txt" 2>&1 &
python bench/import_stages.py --json "$OUT/par2.json" > "$OUT/par2.txt" 2>&1
wait
paste "$OUT/par1.txt" "$OUT/par2.txt" | head -14 | tee -a "$OUT/imports.txt"
python -X importtime -c 'import torch._dynamo, harness.train, harness.__main__, harness.branches, torch._inductor.compile_fx' \
  2> "$OUT/importtime_raw.txt"
grep -E '^import time: +[0-9]' "$OUT/importtime_raw.txt" | sort -t'|' -k1.13 -n | tail -40 > "$OUT/importtime_self.txt"
grep -E '\| [a-zA-Z_]' "$OUT/importtime_raw.txt" | sort -t'|' -k2 -n | tail -25 > "$OUT/importtime_top.txt"
{ echo "== slowest modules, self time (us)"; cat "$OUT/importtime_self.txt"
  echo "== top-level imports, cumulative (us)"; cat "$OUT/importtime_top.txt"; } | tee -a "$OUT/imports.txt"
