"""Fixtures for the SLURM tests: the local test cluster and the PostgreSQL server.

Start them with ``.ci/services-up.sh`` (or scripts/slurm-up.sh, scripts/postgres-up.sh). Tests
skip when a service is not reachable, except under CI (env var CI set), where that is a failure.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: start the services with .ci/services-up.sh)")
    pytest.skip(reason)


def _slurm_conf() -> str | None:
    if os.environ.get("SLURM_CONF"):
        return os.environ["SLURM_CONF"]
    state = Path(os.environ.get("VJEPA_SLURM_DIR", REPO / ".vjepa" / "slurm-cluster"))
    env_file = state / "env.sh"
    if not env_file.is_file():
        return None
    for line in env_file.read_text().splitlines():
        if line.startswith("export SLURM_CONF="):
            return shlex.split(line.split("=", 1)[1])[0]
    return None


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slurm)


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """SLURM_CONF of a reachable cluster (exported for the tests and the jobs they submit)."""
    conf = _slurm_conf()
    if not conf:
        _missing("no SLURM test cluster (run scripts/slurm-up.sh)")
    os.environ["SLURM_CONF"] = conf
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _missing(f"SLURM not reachable ({exc})")
    if out.returncode != 0 or not out.stdout.strip():
        _missing(f"SLURM not reachable: {out.stderr.strip() or 'no nodes'}")
    return conf


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of the PostgreSQL test database (VJEPA_TEST_PG_URL or scripts/postgres-up.sh's file)."""
    from pg_server import pg_url_or_skip

    return pg_url_or_skip()


@pytest.fixture(scope="session")
def slurm_tmp(slurm_cluster: str):
    """This session's scratch folder under the repo's .vjepa/ (jobs and tests both see it).

    Not pytest's tmp_path: other pytest sessions on the machine prune /tmp/pytest-of-<user>.
    """
    base = REPO / ".vjepa" / "slurm-tests"
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def slurm_folder(slurm_tmp: Path, request) -> Path:
    """A fresh folder for one test's jobs (a single node: any local folder is 'shared')."""
    path = slurm_tmp / re.sub(r"\W+", "-", request.node.name)[:60]
    path.mkdir()
    return path
