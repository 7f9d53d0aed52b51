#!/usr/bin/env bash
# A real one-node Slurm cluster for the tests marked `slurm` (tests/test_slurm.py), and for trying
# `python sweep.py ... hydra/launcher=slurm hydra.launcher.partition=debug` on one machine.
#   .ci/slurm.sh start   install the Debian packages if missing (root, apt), then .ci/slurm/start.sh:
#                        munge, mariadb+slurmdbd (accounting, for sacct), slurmctld and slurmd
#   .ci/slurm.sh stop    .ci/slurm/stop.sh: stop only the daemons start.sh started ([--purge]: and their state)
# Without a cluster the slurm tests skip (no `sinfo`) or fail (sinfo present but no partition up).
set -euo pipefail
cd "$(dirname "$0")"
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
    bash slurm/start.sh
    ;;
  stop)
    bash slurm/stop.sh "${@:2}"
    ;;
  *) echo "usage: $0 start|stop [--purge]" >&2; exit 2 ;;
esac
