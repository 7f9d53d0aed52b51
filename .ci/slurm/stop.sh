#!/usr/bin/env bash
# Stop only the daemons .ci/slurm/start.sh started, by their pid files in /run/local-slurm (never by
# name, so a Slurm the machine already ran is left alone). Usage: .ci/slurm/stop.sh [--purge]
#   --purge also wipes slurm state (job queue, job-id counter) and the slurm accounting DB data files.
set -uo pipefail
RUNDIR=/run/local-slurm
stop_pid() {  # name pidfile
  local name=$1 pf=$2 pid
  [[ -s $pf ]] || return 0
  pid=$(cat "$pf")
  if ! kill -0 "$pid" 2>/dev/null; then echo "slurm/stop.sh: $name (pid $pid) was not running"; rm -f "$pf"; return 0; fi
  kill -TERM "$pid"
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "slurm/stop.sh: $name (pid $pid) ignored SIGTERM -> SIGKILL"; kill -KILL "$pid"; fi
  rm -f "$pf"; echo "slurm/stop.sh: stopped $name (pid $pid)"
}
if [[ ${1:-} == --purge && -s $RUNDIR/mariadbd.pid ]] && kill -0 "$(cat "$RUNDIR/mariadbd.pid")" 2>/dev/null; then
  mariadb --socket=/run/mysqld/mysqld.sock -u root -e 'DROP DATABASE IF EXISTS slurm_acct_db' || true
fi
# reverse start order; slurmd's TERM also ends running job steps
stop_pid slurmd    "$RUNDIR/slurmd.pid"
stop_pid slurmctld "$RUNDIR/slurmctld.pid"
stop_pid slurmdbd  "$RUNDIR/slurmdbd.pid"
stop_pid mariadbd  "$RUNDIR/mariadbd.pid"
stop_pid munged    "$RUNDIR/munged.pid"
if [[ ${1:-} == --purge ]]; then
  rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*
  echo "slurm/stop.sh: purged slurm state"
fi
exit 0
