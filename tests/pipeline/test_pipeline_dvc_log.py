"""DVC's own output stays in .vjepa/logs/dvc.log, and a DVC error reaches the user as one line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

BIN = Path(sys.executable).parent

SPEC = """\
name: tiny
defaults: [{data: synth_tiny}]
seeds: [0]
tasks: [motion]
report: {rows: [variant], columns: [task], metric: top1}
"""


def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "proj"
    (root / "experiments").mkdir(parents=True)
    (root / "experiments" / "tiny.yaml").write_text(textwrap.dedent(SPEC))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "COLUMNS": "200"}
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=root, check=True, env=env)
    return root, env


def vx(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "vjepa-exp"), *args], cwd=root, env=env, capture_output=True, text=True
    )


def test_a_dvc_error_is_one_line_naming_the_log(tmp_path: Path) -> None:
    root, env = project(tmp_path)
    assert vx(root, env, "compile", "experiments/tiny.yaml").returncode == 0
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: [this is: not a lock\n")
    out = vx(root, env, "status", "experiments/tiny.yaml")
    assert out.returncode == 2, out.stdout + out.stderr
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: DVC: "), lines
    assert ".vjepa/logs/dvc.log" in lines[0]
    log = (root / ".vjepa" / "logs" / "dvc.log").read_text()
    assert "Traceback" in log and "dvc.lock" in log  # the details are in the log, not the terminal


def test_dvc_prints_nothing_on_the_terminal(tmp_path: Path) -> None:
    """A status asks DVC about every stage; DVC's bars, drawn even off a terminal here
    (DVC_IGNORE_ISATTY), and its notes go to the log."""
    root, env = project(tmp_path)
    env["DVC_IGNORE_ISATTY"] = "true"
    assert vx(root, env, "compile", "experiments/tiny.yaml").returncode == 0
    out = vx(root, env, "status", "experiments/tiny.yaml")
    assert out.returncode == 0, out.stderr
    assert (root / ".vjepa" / "logs" / "dvc.log").is_file()  # DVC was asked
    assert out.stderr == ""
    assert "Collecting" not in out.stdout and "Waiting to acquire" not in out.stdout
