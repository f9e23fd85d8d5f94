#!/usr/bin/env bash
# Stop the private PostgreSQL server started by scripts/postgres-up.sh (data is kept).
#
# Usage: scripts/postgres-down.sh [--purge]   (--purge also deletes the state folder)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
state="${VJEPA_PG_DIR:-$repo/.vjepa/postgres}"

log() { printf 'postgres-down: %s\n' "$*"; }

if [[ -s "$state/data/PG_VERSION" ]]; then
  bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if runuser -u postgres -- "$bindir/pg_ctl" -D "$state/data" status >/dev/null 2>&1; then
    log "stopping the server in $state/data"
    runuser -u postgres -- "$bindir/pg_ctl" -D "$state/data" -m fast -w -t 30 stop >/dev/null
  else
    log "not running"
  fi
else
  log "no server state at $state: nothing to stop"
fi
rm -f "$state/postgres.url"
if [[ "${1:-}" == "--purge" ]]; then
  log "removing $state"
  rm -rf "$state"
fi
log "done"
