#!/usr/bin/env bash
# A private one-node Slurm cluster on localhost, for tests and for trying
# `gyrus run --executor slurm` (docs/cluster.md). Needs Debian's slurmctld, slurmd,
# slurm-client and munge (scripts/install-deps.sh) and root (slurmd runs jobs as any user).
#
#   tests/slurm/cluster.sh start DIR   writes DIR/slurm.conf, starts munged, slurmctld and
#                                      slurmd with their state, logs and sockets in DIR, and
#                                      waits until the node is idle; prints the
#                                      `export SLURM_CONF=...` line to use it
#   tests/slurm/cluster.sh stop DIR    cancels every job, stops the daemons it started
#
# Nothing outside DIR is used: own ports (from $GYRUS_SLURM_PORT, default 16817..16818),
# own munge key and socket, no systemd. The daemons' pids are in DIR/pids/.
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
conf="$dir/slurm.conf"
socket="$dir/munge/munge.socket"
export SLURM_CONF="$conf"

# A daemon's pid from its pid file, if it is still alive (a zombie is not).
alive() {
  local pid
  pid="$(cat "$1" 2>/dev/null)" || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/status" ] && ! grep -q '^State:.*Z' "/proc/$pid/status"
}

# Stops the daemon whose pid file is $1: SIGTERM, then SIGKILL after 5 s.
stop_daemon() {
  local pidfile="$1" pid i
  alive "$pidfile" || return 0
  pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    alive "$pidfile" || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

stop() {
  if [ -f "$conf" ] && alive "$dir/pids/slurmctld.pid"; then
    scancel --quiet --user="$(id -un)" 2>/dev/null || true
    scontrol shutdown >/dev/null 2>&1 || true
  fi
  stop_daemon "$dir/pids/slurmd.pid"
  stop_daemon "$dir/pids/slurmctld.pid"
  stop_daemon "$dir/pids/munged.pid"
}

start() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "cluster.sh: the test cluster runs slurmd, which must run as root" >&2
    exit 1
  fi
  local port="${GYRUS_SLURM_PORT:-16817}"
  mkdir -p "$dir/munge" "$dir/pids" "$dir/log" "$dir/state" "$dir/spool"
  chmod 0700 "$dir/munge"
  # munged wants its socket directory readable by clients, its key private.
  chmod 0755 "$dir/munge"
  if [ ! -s "$dir/munge/munge.key" ]; then
    head -c 1024 /dev/urandom > "$dir/munge/munge.key"
  fi
  chmod 0600 "$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" --socket="$socket" \
         --pid-file="$dir/pids/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munge.seed"
  # The node's hardware as slurmd sees it (a larger RealMemory would make the node invalid).
  local hw
  hw="$(slurmd -C | head -n 1 | sed -e 's/^NodeName=[^ ]* //')"
  cat > "$conf" <<CONF
ClusterName=gyrustest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
MpiDefault=none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/pids/slurmctld.pid
SlurmdPidFile=$dir/pids/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1,batch_sched_delay=0,sched_min_interval=0
MinJobAge=600
# One task per array: every level of the test sweep (two stages) goes out as two
# arrays, so gyrus's splitting of large levels runs here.
MaxArraySize=1
NodeName=localhost NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  slurmctld -c -f "$conf"
  slurmd -N localhost -f "$conf"
  local i state=""
  for i in $(seq 300); do
    state="$(sinfo -h -n localhost -o %t 2>/dev/null || true)"
    if [ "$state" = "idle" ]; then
      echo "export SLURM_CONF=$conf"
      return 0
    fi
    sleep 0.1
  done
  echo "cluster.sh: the node did not become idle within 30 s (state '$state'); logs in $dir/log" >&2
  stop
  exit 1
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
