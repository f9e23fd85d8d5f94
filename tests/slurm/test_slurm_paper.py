"""The flagship spec at laptop scale on the SLURM test cluster: real stages as real jobs.

The same run as tests/pipeline/test_pipeline_paper.py (a paper-like layout of real media, the
official baseline), submitted as an afterok DAG; it must end with the same complete table and a
pipeline DVC calls up to date.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from paper_layout import build_paper_layout, paper_run_args, write_official_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _paper_helpers() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "pipeline" / "test_pipeline_paper.py"
    spec = importlib.util.spec_from_file_location("pipeline_paper_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


P = _paper_helpers()


def test_paper_spec_runs_on_slurm_at_laptop_scale(slurm_folder: Path) -> None:
    data_root = slurm_folder / "data"
    build_paper_layout(data_root)
    checkpoint = write_official_checkpoint(slurm_folder / "vitm16.pth.tar")
    root, env = P.make_project(slurm_folder)
    # no resource overrides: `executor=slurm` asks what a laptop-scale stage needs
    args = [*paper_run_args(data_root, checkpoint), "executor=slurm"]
    out = P.vx(root, env, "run", *args)
    rows = P.check_table(root, env, args)
    assert {r["task"] for r in rows} == {"k400", "ssv2", "in1k"}, out.stdout
    states = [json.loads(p.read_text()) for p in (root / ".vjepa" / "state").glob("*.json")]
    assert states and all(s["handle"]["executor"] == "slurm" for s in states)
    status = subprocess.run(
        [str(P.BIN / "dvc"), "status", "--json"], cwd=root, env=env, capture_output=True, text=True
    )
    assert json.loads(status.stdout.strip().splitlines()[-1]) == {}
