#!/usr/bin/env bash
# Stop the test services started by .ci/services-up.sh (state folders are kept for the next start).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
status=0
"$repo/scripts/slurm-down.sh" "$@" || status=$?
"$repo/scripts/postgres-down.sh" "$@" || status=$?
rm -f "$repo/.vjepa/services.env"
exit "$status"
