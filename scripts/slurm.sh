#!/usr/bin/env bash
# A throw-away single-node Slurm cluster for the Slurm integration test (tests/slurm.rs), from
# Debian's packages, without systemd: the daemons are started by hand and stopped by PID.
#
#   scripts/slurm.sh install     install slurmctld, slurmd, slurm-client and munge when missing
#                                (apt-get; needs root). Exit 3 when that is not possible here.
#   scripts/slurm.sh start DIR   install if needed, write DIR/slurm.conf for this host (all state,
#                                logs, sockets and PID files under DIR; free ports), start munged,
#                                slurmctld and slurmd, wait until the node is idle. Prints
#                                `SLURM_CONF=DIR/slurm.conf` on stdout: export it for sbatch & co.
#   scripts/slurm.sh stop DIR    stop the daemons started by `start DIR` (by their PIDs), idempotent.
#
# Nothing outside DIR is configured: /etc/slurm and /etc/munge are left alone, clients find the
# cluster through SLURM_CONF and munge through the socket named in slurm.conf (AuthInfo).
set -euo pipefail

die() { echo "slurm.sh: $*" >&2; exit "${2:-1}"; }

have_all() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
    command -v sbatch >/dev/null && command -v munged >/dev/null
}

install() {
  have_all && return 0
  [ "$(id -u)" = 0 ] || die "Slurm is not installed and installing it needs root (apt-get)" 3
  command -v apt-get >/dev/null || die "Slurm is not installed and there is no apt-get here" 3
  # Serialise concurrent first runs (apt holds its own lock, but fails instead of waiting).
  exec 8>/tmp/.simsweep-slurm-install.lock
  flock 8
  have_all && return 0
  echo "slurm.sh: installing slurmctld slurmd slurm-client munge (apt-get, one time)" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Package scripts must not try to start services (no systemd here): policy-rc.d says no.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
  fi
  local ok=0
  if apt-get update -qq >&2 &&
     apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >&2; then
    ok=1
  fi
  [ "$made_policy" = 1 ] && rm -f "$policy"
  [ "$ok" = 1 ] && have_all || die "apt-get could not install Slurm (see above)" 3
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pid_of() { [ -s "$1" ] && cat "$1" || true; }

stop() {
  local dir="$1" pid
  [ -d "$dir" ] || return 0
  for name in slurmd slurmctld munged; do
    pid="$(pid_of "$dir/$name.pid")"
    [ -n "$pid" ] || continue
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/$name.pid"
  done
}

start() {
  local dir="$1"
  install
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  chmod 700 "$dir"
  stop "$dir"
  mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
  chmod 700 "$dir/munge"
  local host; host="$(hostname -s)"

  # munge: our own key, socket and files; munged refuses a key others can read.
  if [ ! -s "$dir/munge/munge.key" ]; then
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  fi
  chmod 600 "$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/munge.seed" \
    || die "munged did not start; $dir/munged.log: $(tail -n 3 "$dir/munged.log" 2>/dev/null)"

  # The node's hardware as slurmd sees it (CPUs, sockets, cores, threads, memory).
  local hw; hw="$(slurmd -C | head -n 1 | sed -e 's/^NodeName=[^ ]* //' -e 's/ *UpTime=.*//')"
  local mem; mem="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")"
  hw="$(sed -e 's/ *RealMemory=[0-9]*//' <<<"$hw")"
  mem=$(( ${mem:-1024} * 9 / 10 ))
  local ctld_port slurmd_port
  ctld_port="$(free_port)"; slurmd_port="$(free_port)"
  while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port="$(free_port)"; done

  cat >"$dir/slurm.conf" <<EOF
# Written by simsweep's scripts/slurm.sh for a throw-away single-node test cluster.
ClusterName=simsweep-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
# Keep finished jobs visible to scontrol/squeue for an hour (there is no slurmdbd for sacct).
MinJobAge=3600
KillWait=5
InactiveLimit=0
Waittime=0
MaxArraySize=10001
NodeName=$host NodeAddr=127.0.0.1 $hw RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -f "$SLURM_CONF" -i || die "slurmctld did not start; $dir/slurmctld.log: $(tail -n 5 "$dir/slurmctld.log" 2>/dev/null)"
  slurmd -f "$SLURM_CONF" || die "slurmd did not start; $dir/slurmd.log: $(tail -n 5 "$dir/slurmd.log" 2>/dev/null)"
  local state=""
  for _ in $(seq 300); do
    state="$(sinfo -h -n "$host" -o '%T' 2>/dev/null | head -n 1 || true)"
    case "$state" in idle|mixed|allocated) break ;; esac
    sleep 0.1
  done
  case "$state" in
    idle|mixed|allocated) ;;
    *) stop "$dir"
       die "the node did not become idle (state: ${state:-unknown}); logs in $dir: $(tail -n 5 "$dir/slurmctld.log" "$dir/slurmd.log" 2>/dev/null)" ;;
  esac
  echo "SLURM_CONF=$SLURM_CONF"
}

case "${1:-}" in
  install) install ;;
  start) [ -n "${2:-}" ] || die "usage: $0 start DIR" 2; start "$2" ;;
  stop) [ -n "${2:-}" ] || die "usage: $0 stop DIR" 2; stop "$2" ;;
  *) die "usage: $0 install | start DIR | stop DIR" 2 ;;
esac
