#!/usr/bin/env bash
# Rebuild a corpus from its transport archive on a machine without apt (the GPU machine) and check it:
# every shard's sha256 against the manifest (unpack refuses otherwise), then the corpus opened as a sweep reads it.
# Needs numpy + tokenizers only (no hydra/yaml). Run from the repo root with the archive or ALL its parts present:
#   python -m harness.data.transport pack data/large data/large.tar.xz     # where it was built (parts of <= 40 MiB)
#   carry data/large.tar.xz (or data/large.tar.xz.part1of2, .part2of2, one per call), then
#   OUT=/tmp/out CORPUS=large bash bench/gpu_corpus_transport.sh
# Writes $OUT/transport_unpack.txt (machine, versions, wall time, shard table). Takes well under a minute on 16 cores.
set -euo pipefail
: "${OUT:?set OUT to a directory for the results}"
CORPUS=${CORPUS:-large}
DATA=${SCALEMIX_DATA:-data}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
log="$OUT/transport_unpack.txt"
shopt -s nullglob
archive=("$DATA/$CORPUS.tar.xz" "$DATA/$CORPUS.tar.xz".part*)
archive=($(for f in "${archive[@]}"; do [ -f "$f" ] && echo "$f"; done))
{
  echo "date: $(date -u +%FT%TZ)  host: $(hostname)  cores: $(nproc)"
  python -c "import sys, numpy, tokenizers; print('python', sys.version.split()[0], 'numpy', numpy.__version__, 'tokenizers', tokenizers.__version__)"
  echo "archive: ${archive[*]:-none}"
  ls -l "${archive[@]}" 2>/dev/null || true
} | tee "$log"
if [ ${#archive[@]} -eq 0 ]; then
  echo "error: no $DATA/$CORPUS.tar.xz nor $DATA/$CORPUS.tar.xz.part*: carry the archive (or its parts) first" | tee -a "$log"
  exit 2
fi
start=$(date +%s.%N)
set +e
python -m harness.data.transport unpack "${archive[@]}" --out "$DATA/$CORPUS" --force 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
set -e
echo "unpack exit $rc, wall $(python -c "print(round($(date +%s.%N) - $start, 1))") s" | tee -a "$log"
[ "$rc" -eq 0 ] || exit "$rc"
python -m harness.data.transport verify "$DATA/$CORPUS" 2>&1 | tee -a "$log"
python - "$DATA/$CORPUS" <<'PY' 2>&1 | tee -a "$log"
import sys
from harness.data.corpus import Corpus
c = Corpus(sys.argv[1])
for d in c.domains:
    print(f"{d:<14} train {len(c.train(d)):>12,} heldout {len(c.heldout(d)):>10,}  sha256 {c.manifest['domains'][d]['train_sha256'][:16]}")
print(f"total train tokens {sum(len(c.train(d)) for d in c.domains):,}")
PY
