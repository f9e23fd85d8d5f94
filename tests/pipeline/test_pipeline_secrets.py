"""Secrets and places stay out of the pipeline.

A credential in a spec, a config group or an override is refused before anything is written;
``env:NAME`` storages are read only where a sweep runs; and placement (executor, workers, the
Optuna storage) is outside every uid and params section, so switching it reruns nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import urllib.parse
import uuid
from pathlib import Path

import pytest
import yaml
from pg_server import pg_url_or_skip

from vjepa.errors import SpecError, UserError
from vjepa.pipeline import placement, schema
from vjepa.pipeline.compiler import compile_spec
from vjepa.pipeline.compose import Composer
from vjepa.pipeline.runner import publish
from vjepa.pipeline.spec import CONF_DIR, SCALE, flatten, load_spec
from vjepa.stages import run_stage
from vjepa.utils import secrets

BIN = Path(sys.executable).parent
PW = "hunter2-Xq9"
URL = f"postgresql://alice:{PW}@db.example/optuna"

SPEC = """\
name: tiny
defaults:
  - data: synth_tiny
  - sweep: lr_wd
seeds: [0]
tasks: [motion]
report: {rows: [variant], columns: [task], metric: top1}
"""

# every placement key of the config groups; every other key is identity
PLACEMENT_KEYS = {"data.workers", "pretrain.clip.num_workers", "sweep.workers", "sweep.storage"}


def write_spec(root: Path, text: str = SPEC, name: str = "tiny") -> Path:
    path = root / "experiments" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / ".dvc").mkdir()
    return tmp_path


def vx(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "vjepa-exp"), *args],
        cwd=root,
        env={**os.environ, "DVC_NO_ANALYTICS": "1", "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )


# ----------------------------------------------------------------------------- the secrets module
def test_credentials_are_found_masked_and_references_pass() -> None:
    for key in ("password", "db_password", "PGPASSWORD", "api_key", "authToken", "secret"):
        assert secrets.secret_key(key), key
    for key in ("tokens", "max_tokens", "pool", "storage", "workers", "passes"):
        assert not secrets.secret_key(key), key
    assert secrets.find_secret({"sweep": {"storage": URL}}) == (
        "sweep.storage",
        "a URL with a password",
    )
    assert (
        secrets.find_secret({"a": {"setup": ["x", f"export PGPASSWORD={PW}"]}})[0] == "a.setup[1]"
    )
    assert secrets.find_secret({"b": {"api_key": PW}}) == (
        "b.api_key",
        "a credential (key 'api_key')",
    )
    for fine in (
        {"storage": "env:VJEPA_OPTUNA_URL"},
        {"storage": "postgresql://alice@db.example/optuna"},
        {"setup": ["export PGPASSWORD=$(cat ~/.secret)"], "password": None},
        {"storage": "sqlite:///runs/x.db", "pool": "tokens"},
    ):
        assert secrets.find_secret(fine) is None, fine
    assert secrets.mask(f"open {URL} now") == "open postgresql://alice:***@db.example/optuna now"
    assert PW not in secrets.mask(f"PGPASSWORD={PW} x") and "PGPASSWORD=***" in secrets.mask(
        f"PGPASSWORD={PW} x"
    )


def test_env_reference_resolves_only_when_asked(monkeypatch) -> None:
    monkeypatch.setenv("VJEPA_T_URL", URL)
    assert secrets.resolve("env:VJEPA_T_URL", "sweep.storage") == URL
    assert secrets.resolve("runs/study.journal", "sweep.storage") == "runs/study.journal"
    monkeypatch.delenv("VJEPA_T_URL")
    with pytest.raises(
        UserError, match=r"^sweep.storage: env:VJEPA_T_URL: .*VJEPA_T_URL is not set"
    ):
        secrets.resolve("env:VJEPA_T_URL", "sweep.storage")


# ----------------------------------------------------------------------------- identity vs placement
def group_keys() -> list[tuple[str, str]]:
    """(file, dotted key) of every key of every config group file."""
    out = []
    for folder in sorted(p for p in CONF_DIR.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.yaml")):
            data = yaml.safe_load(path.read_text()) or {}
            if folder.name == SCALE:  # a global package: its keys are full paths
                data.pop("defaults", None)
                keys = [k.lstrip(".") for k, _ in flatten("", data)] if data else []
            else:
                keys = [k for k, _ in flatten(folder.name, data)]
            out += [(f"{folder.name}/{path.name}", key) for key in keys]
    return out


def test_every_config_key_is_classified_identity_or_placement() -> None:
    keys = group_keys()
    assert len(keys) > 300  # every group file was read
    for where, key in keys:
        expected = (
            placement.PLACEMENT
            if key in PLACEMENT_KEYS or key.startswith("executor.")
            else placement.IDENTITY
        )
        assert placement.classify(key) == expected, f"{where}: {key}"

    def schema_keys(path: str, node: schema.Schema) -> list[str]:
        fields = getattr(node, "fields", None)
        if not fields:
            return [path]
        return [k for key, child in fields.items() for k in schema_keys(f"{path}.{key}", child)]

    for key in schema_keys("", schema.CONFIG):  # every key the schema allows, set or not
        placement.classify(key.lstrip("."))
    with pytest.raises(KeyError, match="probe.new_knob: not classified"):
        placement.classify("probe.new_knob")
    assert (
        {k for k, c in placement.CLASSES.items() if c == placement.PLACEMENT}
        == {
            *PLACEMENT_KEYS,
            "executor",
        }
        == set(placement.IN_STAGE)
    )


PLACEMENTS = [
    ["sweep.storage=env:VJEPA_OPTUNA_URL"],
    ["sweep.storage=runs/shared/study.journal"],
    ["sweep.storage=postgresql://optuna@db.example:5432/optuna"],
    ["sweep.workers=4", "data.workers=2", "pretrain.clip.num_workers=3"],
    ["executor=slurm", "executor.resources.default.partition=debug", "executor.jobs=3"],
]


def test_placement_changes_no_uid_and_no_byte_of_the_pipeline(project: Path) -> None:
    spec = write_spec(project)
    base = compile_spec(spec, [], project)
    publish(project, [base])
    files = {n: (project / n).read_bytes() for n in ("dvc.yaml", "params.yaml")}
    names = sorted(s.name for s in base.stages)
    params = yaml.safe_load(files["params.yaml"])
    for stage in base.stages:
        section = params[stage.name]
        assert "workers" not in section and "num_workers" not in section.get("clip", {})
        assert not {"workers", "storage"} & set(section.get("sweep", {}))
    for overrides in PLACEMENTS:
        compiled = compile_spec(spec, overrides, project)
        assert sorted(s.name for s in compiled.stages) == names, overrides
        publish(project, [compiled])
        for name, text in files.items():
            assert (project / name).read_bytes() == text, (overrides, name)
    # the placement went to the untracked file the stages read when they run
    placed = json.loads((project / placement.FILE).read_text())
    probe = next(s.name for s in base.stages if s.kind == "probe")
    data = next(s.name for s in base.stages if s.kind == "data")
    assert placed[probe] == {"sweep.storage": None, "sweep.workers": 1}  # executor: not a stage's
    compile_and = compile_spec(spec, PLACEMENTS[3], project)
    publish(project, [compile_and])
    placed = json.loads((project / placement.FILE).read_text())
    assert placed[probe]["sweep.workers"] == 4 and placed[data] == {"workers": 2}
    # an identity key does change the probes (the check above can fail)
    other = compile_spec(spec, ["sweep.n_trials=3"], project)
    changed = {n.split("-")[0] for n in set(names) ^ {s.name for s in other.stages}}
    assert changed == {"probe", "report"}


def test_placement_axes_are_refused(project: Path) -> None:
    spec = write_spec(project, SPEC + "ablate:\n  sweep.workers: [1, 2]\n")
    with pytest.raises(SpecError, match="ablate.sweep.workers: a placement setting cannot be"):
        compile_spec(spec, [], project)


# ----------------------------------------------------------------------------- refusals
REFUSED = {
    "override": (SPEC, [f"sweep.storage={URL}"], "command line"),
    "override_key": (SPEC, [f"executor.resources.default.additional.api_key={PW}"], "api_key"),
    "spec_value": (SPEC + f"sweep: {{storage: '{URL}'}}\n", [], "set by the spec's sweep.storage"),
    "setup_line": (
        SPEC + f"executor:\n  resources: {{default: {{setup: ['export PGPASSWORD={PW}']}}}}\n",
        [],
        "PGPASSWORD=...",
    ),
}


@pytest.mark.parametrize(
    ("case", "command"), [*((c, "compile") for c in sorted(REFUSED)), ("override", "run")]
)
def test_a_credential_is_refused_with_nothing_written(
    project: Path, case: str, command: str
) -> None:
    text, overrides, where = REFUSED[case]
    spec = write_spec(project, text)
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    out = vx(project, command, str(spec.relative_to(project)), *overrides)
    message = (out.stdout + out.stderr).strip()
    assert out.returncode == 2, message
    assert message.startswith("error: experiments/tiny.yaml: ") and "\n" not in message
    assert where in message and "env:VJEPA_OPTUNA_URL" in message and "PGPASSWORD" in message
    assert PW not in message
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before


def test_a_credential_in_a_config_group_names_the_file(project: Path) -> None:
    conf = project / "conf"
    shutil.copytree(CONF_DIR, conf)
    group = yaml.safe_load((conf / "sweep" / "lr_wd.yaml").read_text())
    (conf / "sweep" / "shared_db.yaml").write_text(yaml.safe_dump({**group, "storage": URL}))
    spec = load_spec(write_spec(project, SPEC.replace("lr_wd", "shared_db")), [], project, conf)
    with Composer(conf) as composer, pytest.raises(SpecError) as err:
        composer.compose(spec, spec.groups, spec.values)
    assert (
        "sweep.storage: holds a URL with a password (set by config group sweep/shared_db.yaml)"
        in str(err.value)
    )
    assert PW not in str(err.value)


def test_a_bad_env_reference_is_refused(project: Path) -> None:
    with pytest.raises(SpecError, match=r"sweep.storage: env:9x: expected env:NAME"):
        compile_spec(write_spec(project), ["sweep.storage=env:9x"], project)


def test_run_stage_refuses_a_credential_before_writing(tmp_path: Path) -> None:
    config = {"task": "motion", "sweep": {"n_trials": 1}}
    with pytest.raises(UserError, match=r"probe stage placement: sweep.storage: holds a URL"):
        run_stage("probe", config, tmp_path / "out", placement={"sweep.storage": URL})
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- a full run
RUN_SPEC = """\
name: secret_run
defaults:
  - data: synth_tiny
  - sweep: lr_wd
data: {{synth: {{videos: 32, images: 8, seed: {seed}}}}}
eval: {{val_fraction: 0.3}}
pretrain: {{epochs: 1, iterations_per_epoch: 2, batch_size: 4}}
probe: {{epochs: 2, min_steps: 0}}
sweep: {{n_trials: 2, workers: 2, storage: env:VJEPA_OPTUNA_URL}}
seeds: [0]
tasks: [motion]
report: {{rows: [variant], columns: [task], metric: top1}}
"""


@pytest.mark.postgres
@pytest.mark.slow
def test_full_run_on_postgres_leaves_the_password_nowhere(tmp_path: Path) -> None:
    """A real run (data, pretrain, extract, a 2-worker sweep on PostgreSQL, report) with the
    password-bearing URL only in the environment: no file of the work tree holds the password
    (tracked files, runs/, metrics/, .vjepa/, the DVC cache), and moving the sweep to a journal
    file afterwards reruns nothing."""
    import optuna

    url = pg_url_or_skip()
    password = urllib.parse.urlsplit(url).password
    assert password and len(password) >= 6
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=root, check=True)
    write_spec(root, RUN_SPEC.format(seed=uuid.uuid4().int % 100_000), "secret_run")
    env = {"VJEPA_OPTUNA_URL": url}
    out = vx(root, "run", "experiments/secret_run.yaml", "-j", "2", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert password not in out.stdout + out.stderr
    probe_dir = next(p for p in (root / "runs" / "probe").iterdir() if p.is_dir())
    metrics = json.loads((probe_dir / "metrics.json").read_text())
    study = metrics["study"]
    try:
        assert study["n_complete"] == 2
        meta = json.loads((probe_dir / "meta.json").read_text())
        assert meta["placement"] == {"sweep.storage": "env:VJEPA_OPTUNA_URL", "sweep.workers": 2}
        assert "storage" not in meta["config"]["sweep"]
        assert not (
            probe_dir / "study" / "study.journal"
        ).exists()  # the trials are in the database
        trials = optuna.load_study(study_name=study["study_name"], storage=url).get_trials()
        assert sum(t.state.name == "COMPLETE" for t in trials) == 2
        subprocess.run(["git", "add", "-A"], cwd=root, check=True, capture_output=True)
        tracked = subprocess.run(
            ["git", "ls-files"], cwd=root, check=True, capture_output=True, text=True
        ).stdout.split()
        assert "params.yaml" in tracked and "dvc.yaml" in tracked
        assert any((root / ".dvc" / "cache").rglob("*"))  # the run's outputs were cached
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert password.encode() not in path.read_bytes(), path.relative_to(root)

        # the same study on a journal file: the same stages, nothing reruns
        journal = "sweep.storage=.vjepa/optuna/study.journal"
        again = vx(root, "run", "experiments/secret_run.yaml", journal, env=env)
        assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout
    finally:
        optuna.delete_study(study_name=study["study_name"], storage=url)


def test_status_masks_a_password_in_a_running_stages_log(tmp_path: Path) -> None:
    """A stage log may quote a URL (a driver's error message): status shows it masked."""
    from vjepa.pipeline import status
    from vjepa.pipeline.graph import Stage

    stage = Stage("probe", "p", {"x": 1})
    status.write_state(tmp_path, stage.name, state="running", runner_pid=os.getpid(), started=1.0)
    log = status.log_path(tmp_path, stage.name)
    log.parent.mkdir(parents=True)
    log.write_text("connecting to postgresql://alice:s3cret@db.example/optuna\n")
    (row,) = status.stage_statuses(tmp_path, [stage], stale={stage.name})
    assert row.state == "running" and "alice:***@db.example" in row.log_tail, row
    assert "s3cret" not in row.log_tail
