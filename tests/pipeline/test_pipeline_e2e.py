"""A tiny spec compiled and run through the real stages, in a project set up like this repository.

No stand-ins: the synthetic videos are encoded and decoded by PyAV, a ViT pretrains for a few
steps, features are extracted, probes train, the report writes its table and plots. Then the
DVC side is checked with DVC's own commands (status, repro, metrics, plots), the git tree is
clean, a second run is a no-op, and an edited output is seen again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vjepa.pipeline.uptodate import VERDICTS
from vjepa.utils.progress import read_progress

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SPEC = """\
name: e2e
defaults: [{data: synth_tiny}, {model: vit_micro}]
seeds: [0]
tasks: [motion]
pretrain: {epochs: 1, iterations_per_epoch: 6, batch_size: 4, warmup_epochs: 0,
           checkpoint_every: 3, log_every: 1}
probe: {epochs: 2, min_steps: 4, batch_size: 16}
ablate: {pretrain.target: [feature]}
baselines:
  random_init: {encoder: random}
report: {rows: [target], columns: [task], metric: top1, baseline: random_init}
"""


def sh(root: Path, env: dict[str, str], *cmd: str, check: bool = True) -> str:
    out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} -> {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict[str, str], str]:
    """(project, env, output of the first run) after one full run of the tiny spec."""
    root = tmp_path_factory.mktemp("e2e") / "proj"
    (root / "experiments").mkdir(parents=True)
    (root / "experiments" / "e2e.yaml").write_text(textwrap.dedent(SPEC))
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "COLUMNS": "200",
    }
    sh(root, env, "git", "init", "-q")
    sh(root, env, str(BIN / "dvc"), "init", "-q")
    # the repository's own DVC and git settings: what a clone of it works with
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")
    shutil.copy(REPO / ".gitignore", root / ".gitignore")
    sh(root, env, str(BIN / "vjepa-exp"), "compile", "experiments/e2e.yaml")
    sh(root, env, "git", "add", "-A")
    sh(root, env, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "e2e")
    first = sh(root, env, str(BIN / "vjepa-exp"), "run", "experiments/e2e.yaml")
    return root, env, first


def test_the_real_stages_end_with_a_table_and_progress(finished) -> None:
    root, env, first = finished
    assert "e2e: ran 9 stages" in first, first
    table = json.loads(
        sh(root, env, str(BIN / "vjepa-exp"), "results", "experiments/e2e.yaml", "--format", "json")
    )
    rows = {r["target"]: r for r in table}
    assert set(rows) == {"feature", "random_init"}
    assert all(0.0 <= r["mean"] <= 100.0 and r["n"] == 1 for r in rows.values())
    (pretrain,) = (root / "runs" / "pretrain").iterdir()
    record = read_progress(pretrain)
    assert record and record["phase"] == "pretrain" and record["done"] == record["total"] == 6
    assert {"loss", "lr"} <= set(record["figures"])
    (report,) = (root / "runs" / "report").iterdir()
    assert (report / "bars.png").read_bytes()[:4] == b"\x89PNG"


def test_dvc_agrees_and_git_stays_clean(finished) -> None:
    root, env, _ = finished
    dvc = str(BIN / "dvc")
    assert "up to date" in sh(root, env, dvc, "status")
    repro = sh(root, env, dvc, "repro")
    assert "Running stage" not in repro, repro  # the committed pipeline, reproduced: nothing to do
    metrics = sh(root, env, dvc, "metrics", "show", "--json")
    assert '"top1"' in metrics
    plots = json.loads(sh(root, env, dvc, "plots", "show", "--json"))["data"]
    assert any(name.endswith("/loss.png") for name in plots), plots  # the pretraining loss
    assert any(name.endswith("/summary.csv") for name in plots), plots  # the report's cells
    assert sh(root, env, "git", "status", "--porcelain") == ""  # dvc.lock, metrics/, runs/ ignored


def test_a_second_run_is_a_no_op_until_an_output_changes(finished) -> None:
    root, env, _ = finished
    vx = str(BIN / "vjepa-exp")
    assert json.loads((root / VERDICTS).read_text())  # DVC's verdict at the end of the run...
    stamp = (root / VERDICTS).stat().st_mtime_ns
    noop = sh(root, env, vx, "run", "experiments/e2e.yaml")
    assert "nothing to do, all 9 stages are up to date" in noop
    assert (root / VERDICTS).stat().st_mtime_ns == stamp  # ...reused: DVC was not asked again
    assert not (root / ".vjepa" / "logs" / "dvc.log").read_text().count("Traceback")
    (pretrain,) = (root / "runs" / "pretrain").iterdir()
    with open(pretrain / "log.jsonl", "a") as fh:  # an output edited by hand: DVC must be asked
        fh.write('{"step": 99}\n')
    dry = sh(root, env, vx, "run", "experiments/e2e.yaml", "--dry-run")
    assert f"pretrain-{pretrain.name}" in dry and "report-" in dry, dry
