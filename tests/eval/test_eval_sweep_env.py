"""A sweep whose storage URL comes from the environment (``sweep.storage: env:NAME``), on the
real PostgreSQL server of the test suite: two worker processes share one study, a later worker
resumes it, and the password is in no file the sweep writes."""

from __future__ import annotations

import urllib.parse
import uuid
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState
from pg_server import pg_url_or_skip
from test_eval_sweep import make_config, make_store, start_worker

from vjepa.errors import UserError
from vjepa.eval.sweep import load_study
from vjepa.stages.sweep_workers import run_worker

pytestmark = pytest.mark.postgres
VAR = "VJEPA_OPTUNA_URL"


@pytest.fixture()
def pg_url() -> str:
    return pg_url_or_skip()


def env_config(tmp_path: Path, n_trials: int) -> dict:
    cfg = make_config(make_store(tmp_path / "train"), tmp_path / "no-eval", n_trials, epochs=2)
    cfg["sweep"].update(storage=f"env:{VAR}", study_name=f"env-{uuid.uuid4().hex[:10]}")
    return cfg


def drop_study(cfg: dict, url: str) -> None:
    import optuna

    optuna.delete_study(study_name=cfg["sweep"]["study_name"], storage=url)


def test_env_storage_shares_and_resumes_a_postgres_study(tmp_path, pg_url, monkeypatch):
    monkeypatch.setenv(VAR, pg_url)
    cfg = env_config(tmp_path, n_trials=4)
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    study_dir = tmp_path / "study"
    procs = [start_worker(cfg_path, study_dir, i) for i in range(2)]
    try:
        outputs = [p.communicate(timeout=180) for p in procs]
        for p, (_, err) in zip(procs, outputs, strict=True):
            assert p.returncode == 0, err
        summaries = [yaml.safe_load(out.strip().splitlines()[-1]) for out, _ in outputs]
        # one global budget: both workers saw the same 4 trials, none more
        assert [s["n_complete"] for s in summaries] == [4, 4]
        assert not (study_dir / "study.journal").exists()  # the database held the study
        trials = load_study(cfg, study_dir).get_trials(deepcopy=False)
        assert len(trials) == 4 and {t.state for t in trials} == {TrialState.COMPLETE}
        assert {t.user_attrs["owner"]["pid"] for t in trials} <= {p.pid for p in procs}

        # a later worker with a larger budget resumes the study: only the missing trials run
        cfg["sweep"]["n_trials"] = 6
        summary = run_worker(cfg, study_dir, worker_index=2)
        assert summary["n_complete"] == 6
        numbers = sorted(t.number for t in load_study(cfg, study_dir).get_trials())
        assert numbers == list(range(6))

        password = urllib.parse.urlsplit(pg_url).password
        assert password
        for path in [cfg_path, *study_dir.rglob("*")]:
            if path.is_file():
                assert password.encode() not in path.read_bytes(), path
        for out, err in outputs:
            assert password not in out + err
    finally:
        drop_study(cfg, pg_url)


def test_missing_variable_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    cfg = env_config(tmp_path, n_trials=1)
    with pytest.raises(UserError) as err:
        run_worker(cfg, tmp_path / "study")
    message = str(err.value)
    assert "\n" not in message and f"env:{VAR}" in message and "not set" in message
    assert not (tmp_path / "study" / "study.journal").exists()


def test_password_less_url_takes_pgpassword(tmp_path, pg_url, monkeypatch):
    """A URL without its password, the password from PGPASSWORD (libpq reads it, as ~/.pgpass)."""
    parts = urllib.parse.urlsplit(pg_url)
    bare = parts._replace(netloc=f"{parts.username}@{parts.hostname}:{parts.port}").geturl()
    monkeypatch.setenv("PGPASSWORD", parts.password)
    monkeypatch.setenv(VAR, bare)
    cfg = env_config(tmp_path, n_trials=1)
    try:
        assert run_worker(cfg, tmp_path / "study")["n_complete"] == 1
    finally:
        drop_study(cfg, pg_url)
    monkeypatch.delenv("PGPASSWORD")
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))  # no ~/.pgpass fallback either
    with pytest.raises(UserError) as err:
        run_worker(env_config(tmp_path, n_trials=1), tmp_path / "study2")
    assert "cannot open postgresql" in str(err.value) and parts.password not in str(err.value)
