#!/usr/bin/env bash
# Stop the private PostgreSQL server started by scripts/postgres-up.sh (data is kept).
#
# Usage: scripts/postgres-down.sh [--purge]   (--purge also deletes the state folder)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
state="${VJEPA_PG_DIR:-$repo/.vjepa/postgres}"

log() { printf 'postgres-down: %s\n' "$*"; }
as_pg() { (cd / && runuser -u postgres -- "$@"); }  # from /: the cwd may be private

pgroot="$state"
[[ -s "$state/pgroot" ]] && pgroot="$(cat "$state/pgroot")"  # see postgres-up.sh
if [[ -s "$pgroot/data/PG_VERSION" ]]; then
  bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if as_pg "$bindir/pg_ctl" -D "$pgroot/data" status >/dev/null 2>&1; then
    log "stopping the server in $pgroot/data"
    as_pg "$bindir/pg_ctl" -D "$pgroot/data" -m fast -w -t 30 stop >/dev/null
  else
    log "not running"
  fi
else
  log "no server state at $state: nothing to stop"
fi
rm -f "$state/postgres.url"
if [[ "${1:-}" == "--purge" ]]; then
  log "removing $state"
  [[ "$pgroot" != "$state" ]] && rm -rf "$pgroot"
  rm -rf "$state"
fi
log "done"
