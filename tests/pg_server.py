"""The PostgreSQL server of the test suite: its URL, or a skip (a failure under CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pg_url_or_skip() -> str:
    """VJEPA_TEST_PG_URL (or scripts/postgres-up.sh's file), checked to answer."""
    url = os.environ.get("VJEPA_TEST_PG_URL")
    if not url:
        state = Path(os.environ.get("VJEPA_PG_DIR", REPO / ".vjepa" / "postgres"))
        path = state / "postgres.url"
        url = path.read_text().strip() if path.is_file() else None
    reason = "no PostgreSQL test server (run scripts/postgres-up.sh)"
    if url:
        try:
            import psycopg2

            psycopg2.connect(url.replace("+psycopg2", ""), connect_timeout=5).close()
            return url
        except Exception as exc:  # noqa: BLE001 - any failure means: not reachable
            reason = f"PostgreSQL not reachable: {str(exc).strip()}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: start the services with .ci/services-up.sh)")
    pytest.skip(reason)
