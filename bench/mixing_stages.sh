# Sourced by bench/cpu_mixing_study.sh and bench/gpu_mixing_study.sh: each stage of a mixing study under a time limit
# taken from what is left of LIMIT_S (PACK_S kept for packing), its wall and CPU time noted in $LOGS/times.txt, and
# everything packed into $OUT/mixing.tgz when the script exits, even after a failed stage.
# Needs: LIMIT_S, PACK_S (s kept for packing), OUT, ROOT, NAME; sets SW (the fit sweep's directory), LOGS and START.
SW=$ROOT/$NAME
LOGS=$ROOT/logs
mkdir -p "$OUT" "$LOGS"
START=$(date +%s)
left() { echo $(( LIMIT_S - PACK_S - ($(date +%s) - START) )); }
stage() {   # stage NAME SHARE_OF_WHAT_IS_LEFT(%) CMD...: run with a time limit, log, and note its wall time
  local name=$1 share=$2; shift 2
  local budget=$(( $(left) * share / 100 ))
  if [ "$budget" -lt 5 ]; then echo "$name: skipped, no time left" | tee -a "$LOGS/times.txt"; return 1; fi
  local t0 rc TIMEFORMAT="%U CPU-s user, %S sys"; t0=$(date +%s)
  { time timeout -k 10 "$budget" "$@" > "$LOGS/$name.log" 2>&1; } 2> "$LOGS/$name.cpu"
  rc=$?
  echo "$name: rc $rc, $(( $(date +%s) - t0 )) s (limit $budget s), $(tail -n 1 "$LOGS/$name.cpu"), load" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOGS/times.txt"
  return $rc
}
pack() {
  cp "$LOGS/times.txt" "$OUT/mixing_times.txt" 2>/dev/null
  (cd "$ROOT" && tar czf "$OUT/mixing.tgz" --exclude='ckpt' --exclude='.hydra' --exclude='.inductor_cache' \
    --exclude='*.pt' logs "$NAME" $(ls -d "${NAME}"_confirm 2>/dev/null)) && echo "packed $OUT/mixing.tgz"
}
trap pack EXIT
