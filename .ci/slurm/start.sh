#!/usr/bin/env bash
# A real one-node Slurm cluster on this host, for the tests marked `slurm` and for trying
# `hydra/launcher=slurm` locally: munged, (when installed) mariadbd + slurmdbd so that `sacct` works,
# slurmctld and slurmd. Run through `.ci/slurm.sh start`, which installs the Debian packages first.
# Idempotent: daemons this script started (pid files in /run/local-slurm) are left running.
# Needs root and the Debian packages slurmctld slurmd slurm-client munge [slurmdbd mariadb-server];
# works without systemd as PID 1 and without cgroups (Debian 12, Slurm 22.05).
#   LOCAL_SLURM_ACCOUNTING=auto|1|0  auto (default): slurmdbd + mariadb when both are installed. Without
#                                    accounting `sacct` fails, submitit cannot see CANCELLED/FAILED/TIMEOUT,
#                                    and job.result() of a killed job then waits forever.
#   LOCAL_SLURM_TIMEOUT=60           seconds to wait for the node to become idle.
# Stop with .ci/slurm/stop.sh (it stops only the pids recorded here).
set -euo pipefail

CONF=/etc/slurm/slurm.conf           # default location of the Debian client tools -> no SLURM_CONF needed
DBD_CONF=/etc/slurm/slurmdbd.conf
TIMEOUT="${LOCAL_SLURM_TIMEOUT:-60}"
ACCT="${LOCAL_SLURM_ACCOUNTING:-auto}"
RUNDIR=/run/local-slurm              # pid files of the daemons this script started
LOGDIR=/var/log/slurm
CTLD_SPOOL=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
MUNGE_KEY=/etc/munge/munge.key
MUNGE_SOCK=/run/munge/munge.socket.2
DB_SOCK=/run/mysqld/mysqld.sock
DB_PASS=scalemix-local-slurm         # a local-only account: mariadb listens on a unix socket only

die() { echo "slurm/start.sh: ERROR: $*" >&2; exit 1; }
log() { echo "slurm/start.sh: $*"; }
alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
start_once() {  # name: start Slurm daemon `name` (it forks, writing $RUNDIR/name.pid) unless it runs already
  local name=$1
  if alive "$RUNDIR/$name.pid"; then
    log "$name already running (pid $(cat "$RUNDIR/$name.pid"))"
  else
    log "starting $name"
    "$name" || die "$name failed; see $LOGDIR/$name.log"
  fi
}
running() {  # name check...: true (saying so) when `name` already runs, started by this script or not
  local name=$1; shift
  if alive "$RUNDIR/$name.pid"; then
    log "$name already running (pid $(cat "$RUNDIR/$name.pid"))"
  elif "$@" >/dev/null 2>&1; then
    log "using a $name not started by this script (.ci/slurm/stop.sh will leave it running)"
  else
    return 1
  fi
}
wait_for() {  # seconds description command...
  local t=$1 what=$2; shift 2; local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do (( SECONDS < end )) || die "timeout (${t}s) waiting for $what"; sleep 0.2; done
}

[[ $(id -u) -eq 0 ]] || die "must run as root"
for b in munged munge unmunge slurmctld slurmd sinfo scontrol sbatch; do
  command -v "$b" >/dev/null || die "'$b' not found; run: apt-get install -y slurmctld slurmd slurm-client munge"
done
if [[ $ACCT == auto ]]; then
  if command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null; then ACCT=1; else ACCT=0; fi
fi
if [[ $ACCT == 1 ]]; then
  command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null \
    || die "LOCAL_SLURM_ACCOUNTING=1 needs: apt-get install -y slurmdbd mariadb-server"
fi

mkdir -p "$RUNDIR" "$LOGDIR" "$CTLD_SPOOL" "$SLURMD_SPOOL" /etc/slurm
T0=$SECONDS

# ------------------------------------------------------------------ hostname
HOST="$(hostname -s)"
if ! getent hosts "$HOST" >/dev/null; then
  log "'$HOST' does not resolve; adding it to /etc/hosts"
  echo "127.0.0.1 $HOST" >> /etc/hosts
fi

# ------------------------------------------------------------------ munge
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s $MUNGE_KEY ]]; then
  log "creating munge key $MUNGE_KEY"
  if command -v mungekey >/dev/null; then mungekey --create --keyfile="$MUNGE_KEY" --force
  else dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none; fi
fi
chown munge:munge "$MUNGE_KEY"; chmod 0400 "$MUNGE_KEY"
munge_ok() { munge -n -S "$MUNGE_SOCK" | unmunge -S "$MUNGE_SOCK"; }
if ! running munged munge_ok; then
  log "starting munged"
  rm -f "$MUNGE_SOCK" "$MUNGE_SOCK.lock" /run/munge/munged.pid
  # as the munge user (munged refuses key/dirs it does not own); it forks and writes its pid file
  runuser -u munge -- munged --socket="$MUNGE_SOCK" --pid-file=/run/munge/munged.pid \
    || die "munged failed; see /var/log/munge/munged.log"
  wait_for 10 "munged pid file" test -s /run/munge/munged.pid
  cp -f /run/munge/munged.pid "$RUNDIR/munged.pid"
fi
wait_for 10 "munge self-test (see /var/log/munge/munged.log)" munge_ok

# ------------------------------------------------------------------ accounting (mariadb + slurmdbd)
if [[ $ACCT == 1 ]]; then
  install -d -o mysql -g mysql -m 0755 /run/mysqld /var/log/mysql
  if [[ ! -d /var/lib/mysql/mysql ]]; then
    log "initialising mariadb data dir"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  fi
  db_ok() { mariadb-admin --socket="$DB_SOCK" ping; }
  if ! running mariadbd db_ok; then
    log "starting mariadbd"
    setsid mariadbd --user=mysql --datadir=/var/lib/mysql --socket="$DB_SOCK" --skip-networking \
      --pid-file=/run/mysqld/mysqld.pid --innodb-buffer-pool-size=64M \
      --log-error=/var/log/mysql/mariadbd.log </dev/null >/dev/null 2>&1 &   # runs as mysql: paths must be mysql-writable
    echo $! > "$RUNDIR/mariadbd.pid"
  fi
  wait_for 30 "mariadb (see /var/log/mysql/mariadbd.log)" db_ok
  mariadb --socket="$DB_SOCK" -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL
  umask 077
  cat > "$DBD_CONF.new" <<DBD
# generated by scalemix .ci/slurm/start.sh
AuthType=auth/munge
DbdHost=$HOST
SlurmUser=root
PidFile=$RUNDIR/slurmdbd.pid
LogFile=$LOGDIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$DB_PASS
DBD
  umask 022
  cmp -s "$DBD_CONF.new" "$DBD_CONF" && rm -f "$DBD_CONF.new" || mv -f "$DBD_CONF.new" "$DBD_CONF"
  chmod 0600 "$DBD_CONF"          # slurmdbd refuses a world-readable conf holding a password
  start_once slurmdbd
  # port 6819 answers once slurmdbd finished creating its tables
  wait_for 60 "slurmdbd on port 6819 (see $LOGDIR/slurmdbd.log)" bash -c "exec 3<>/dev/tcp/$HOST/6819"
  ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$HOST"
else
  ACCT_LINES="AccountingStorageType=accounting_storage/none"
fi

# ------------------------------------------------------------------ slurm.conf
NODE_LINE="$(slurmd -C | head -n1)"     # real CPUs/Sockets/Cores/Threads/RealMemory, detected now
[[ $NODE_LINE == NodeName=* ]] || die "slurmd -C failed: $NODE_LINE"
NODE_LINE="$(sed -E "s/^NodeName=[^ ]+/NodeName=$HOST/" <<<"$NODE_LINE")"
cat > "$CONF.new" <<CONFEOF
# generated by scalemix .ci/slurm/start.sh
ClusterName=scalemix
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
StateSaveLocation=$CTLD_SPOOL
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=$RUNDIR/slurmctld.pid
SlurmdPidFile=$RUNDIR/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
$ACCT_LINES
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
$NODE_LINE State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONFEOF
if ! cmp -s "$CONF.new" "$CONF"; then
  if [[ -s $CONF ]] && ! grep -q '^# generated by scalemix .ci/slurm/start.sh' "$CONF"; then cp -f "$CONF" "$CONF.bak.$(date +%s)"; fi
  if alive "$RUNDIR/slurmctld.pid" || alive "$RUNDIR/slurmd.pid"; then
    log "WARNING: slurm.conf changed while daemons run; run .ci/slurm/stop.sh, then this script again"
  fi
  log "writing $CONF"
  mv -f "$CONF.new" "$CONF"
else
  rm -f "$CONF.new"
fi

# ------------------------------------------------------------------ slurmctld + slurmd
start_once slurmctld
wait_for 30 "slurmctld to answer (see $LOGDIR/slurmctld.log)" bash -c "scontrol ping | grep -q UP"
start_once slurmd

# ------------------------------------------------------------------ wait for an idle node
end=$((SECONDS + TIMEOUT)); state=""; resumed=0
while (( SECONDS < end )); do
  state="$(sinfo -h -n "$HOST" -o '%t' 2>/dev/null | head -n1 || true)"
  case "$state" in
    idle|mix|alloc) break ;;
    drain|drng|down|down\*|fail*)   # e.g. leftovers of an unclean stop
      if (( !resumed )); then scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true; resumed=1; fi ;;
  esac
  sleep 0.5
done
if [[ ! $state =~ ^(idle|mix|alloc)$ ]]; then
  { echo "---- sinfo -R"; sinfo -R; echo "---- slurmctld.log"; tail -n 20 "$LOGDIR/slurmctld.log"
    echo "---- slurmd.log"; tail -n 20 "$LOGDIR/slurmd.log"; } >&2 || true
  die "node '$HOST' not idle after ${TIMEOUT}s (state='${state:-none}')"
fi
log "cluster up in $((SECONDS - T0))s: node $HOST is $state (accounting: $([[ $ACCT == 1 ]] && echo slurmdbd || echo none))"
sinfo
