#!/usr/bin/env bash
# A real one-node Slurm cluster for the tests marked `slurm` (tests/test_slurm.py).
#   .ci/slurm.sh start   install the Debian packages if missing (root), start munge, mariadb+slurmdbd,
#                        slurmctld and slurmd through ../shared/slurm/start-local-slurm.sh
#   .ci/slurm.sh stop    stop only the daemons that script started
# Without it the slurm tests skip (no `sinfo`) or fail (sinfo present but no cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SCALEMIX_SHARED:-../shared}/slurm"
PKGS=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

case "${1:-start}" in
  start)
    missing=()
    for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if ((${#missing[@]})); then
      echo "slurm.sh: installing ${missing[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    bash "$SHARED/start-local-slurm.sh"
    ;;
  stop)
    bash "$SHARED/stop-local-slurm.sh" "${@:2}"
    ;;
  *) echo "usage: $0 start|stop [--purge]" >&2; exit 2 ;;
esac
