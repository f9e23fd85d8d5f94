#!/usr/bin/env bash
# Start a private PostgreSQL server for the Optuna storage tests.
#
# Needs root on a Debian-like machine. Idempotent. State folder:
#   $VJEPA_PG_DIR (default: <repo>/.vjepa/postgres)
# The server listens on 127.0.0.1:$VJEPA_PG_PORT (default 5433, or the next free port) and serves
# database `optuna` to user `optuna`; its SQLAlchemy URL is written to <state>/postgres.url.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
state="${VJEPA_PG_DIR:-$repo/.vjepa/postgres}"
port="${VJEPA_PG_PORT:-5433}"
db=optuna
user=optuna
pass=optuna-test

log() { printf 'postgres-up: %s\n' "$*"; }
die() { printf 'postgres-up: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts the server as user postgres)"
start_ts=$(date +%s.%N)

if ! dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "install ok installed"; then
  log "installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[[ -x "$bindir/pg_ctl" ]] || die "no PostgreSQL server binaries under /usr/lib/postgresql"

mkdir -p "$state"
state="$(cd "$state" && pwd)"
chown postgres:postgres "$state"
as_pg() { (cd / && runuser -u postgres -- "$@"); }  # from /: the cwd may be private
# The server runs as user postgres, which cannot enter a checkout under a private folder (e.g. one
# made by mktemp -d). Then its files live in a postgres-owned folder keyed by the state path, and
# <state>/pgroot says where.
pgroot="$state"
if ! as_pg test -w "$state"; then
  pgroot="/var/lib/postgresql/vjepa-test-$(printf '%s' "$state" | cksum | cut -d' ' -f1)"
  install -d -o postgres -g postgres -m 0700 "$pgroot"
  log "user postgres cannot write $state: server files go to $pgroot"
fi
printf '%s\n' "$pgroot" >"$state/pgroot"
data="$pgroot/data"
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [[ ! -s "$data/PG_VERSION" ]]; then
  log "initialising a cluster in $data"
  as_pg "$bindir/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$state/initdb.log" 2>&1 || die "initdb failed (see $state/initdb.log)"
fi

if as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  port="$(head -n 4 "$data/postmaster.pid" | tail -n 1)"
  log "already running on port $port"
else
  while port_busy "$port"; do port=$((port + 1)); done
  log "starting on 127.0.0.1:$port"
  as_pg "$bindir/pg_ctl" -D "$data" -l "$pgroot/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$pgroot -c max_connections=100 -c fsync=off" \
    start >/dev/null || die "the server did not start (see $pgroot/server.log)"
fi

psql_pg() { as_pg psql -h "$pgroot" -p "$port" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if [[ -z "$(psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname='$user'")" ]]; then
  psql_pg -c "CREATE ROLE $user LOGIN PASSWORD '$pass'"
fi
if [[ -z "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname='$db'")" ]]; then
  psql_pg -c "CREATE DATABASE $db OWNER $user"
fi

# An SQLAlchemy URL (what Optuna's RDBStorage takes). SQLAlchemy 2.1 maps a bare postgresql://
# to psycopg 3; the project ships psycopg2, so name the driver.
url="postgresql+psycopg2://$user:$pass@127.0.0.1:$port/$db"
printf '%s\n' "$url" >"$state/postgres.url"
elapsed=$(awk -v a="$start_ts" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
log "up in ${elapsed}s: $url (written to $state/postgres.url)"
