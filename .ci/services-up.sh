#!/usr/bin/env bash
# Start the test services (SLURM cluster with accounting, PostgreSQL) and write their settings.
#
# Writes <repo>/.vjepa/services.env (SLURM_CONF, VJEPA_TEST_PG_URL); source it before pytest.
# The tests also find both without it, from the default state folders.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
start=$SECONDS
"$repo/scripts/slurm-up.sh"
"$repo/scripts/postgres-up.sh"

slurm_state="${VJEPA_SLURM_DIR:-$repo/.vjepa/slurm-cluster}"
pg_state="${VJEPA_PG_DIR:-$repo/.vjepa/postgres}"
# shellcheck disable=SC1091
source "$slurm_state/env.sh"
env_file="$repo/.vjepa/services.env"
mkdir -p "$(dirname "$env_file")"
cat >"$env_file" <<EOT
export SLURM_CONF="$SLURM_CONF"
export VJEPA_TEST_PG_URL="$(cat "$pg_state/postgres.url")"
EOT
echo "services-up: ready in $((SECONDS - start))s; settings in $env_file"
