#!/usr/bin/env bash
# Stop the test cluster started by scripts/slurm-up.sh (by its pid files; state is kept).
#
# Usage: scripts/slurm-down.sh [--purge]   (--purge also deletes the state folder: job ids restart at 1)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
state="${VJEPA_SLURM_DIR:-$repo/.vjepa/slurm-cluster}"
purge=0
[[ "${1:-}" == "--purge" ]] && purge=1

log() { printf 'slurm-down: %s\n' "$*"; }

stop() { # stop NAME PIDFILE
  local name=$1 pidfile=$2 pid
  [[ -s "$pidfile" ]] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop in 10 s: sending KILL"
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

if [[ -d "$state" ]]; then
  # Jobs first, so no step is left running without its daemon.
  if [[ -f "$state/etc/slurm.conf" ]] && command -v scancel >/dev/null; then
    SLURM_CONF="$state/etc/slurm.conf" timeout 10 scancel --user="$(id -un)" 2>/dev/null || true
  fi
  stop slurmd "$state/run/slurmd.pid"
  stop slurmctld "$state/run/slurmctld.pid"
  stop slurmdbd "$state/run/slurmdbd.pid"
  stop mariadb "$state/run/mariadb.pid"
else
  log "no cluster state at $state: nothing to stop"
fi
# munged is shared by anything on the host that uses munge: it is left running.
if ((purge)); then
  log "removing $state"
  rm -rf "$state"
fi
log "done"
