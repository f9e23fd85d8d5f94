"""The flagship spec end to end on data laid out like the paper's, at laptop scale, real stages.

`experiments/paper_vitl16.yaml data.root=DIR scale=laptop` reads K400 / SSv2 CSV pairs, an
ImageNet folder and the VideoMix2M mixture (K710 + SSv2 + HowTo100M) of real encoded files of
varied codecs, sizes and rates (tests/paper_layout.py), broken files included, and must end with a
table of k400, ssv2 and in1k for the V-JEPA encoder and the official baseline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from paper_layout import build_paper_layout, paper_run_args, write_official_checkpoint

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def paper_data(tmp_path_factory) -> tuple[Path, Path]:
    """(data root laid out like the paper's, an official-layout vit_micro checkpoint)."""
    base = tmp_path_factory.mktemp("paper")
    build_paper_layout(base / "data")
    return base / "data", write_official_checkpoint(base / "vitm16.pth.tar")


def make_project(base: Path) -> tuple[Path, dict[str, str]]:
    """git + dvc + the committed paper spec, in ``base/proj``."""
    root = base / "proj"
    (root / "experiments").mkdir(parents=True)
    shutil.copy(REPO / "experiments" / "paper_vitl16.yaml", root / "experiments")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "COLUMNS": "200",
    }
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=root, check=True, env=env)
    return root, env


def vx(root: Path, env: dict[str, str], *args: str, check: bool = True):
    out = subprocess.run(
        [str(BIN / "vjepa-exp"), *args], cwd=root, env=env, capture_output=True, text=True
    )
    if check:
        assert out.returncode == 0, f"{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


def check_table(root: Path, env: dict[str, str], args: list[str]) -> list[dict]:
    """The run's results: every (encoder, task) cell of the paper table is there."""
    rows = json.loads(vx(root, env, "results", *args, "--format", "json").stdout)
    cells = {(r["variant"], r["task"]) for r in rows}
    assert cells == {(v, t) for v in ("vjepa", "official") for t in ("k400", "ssv2", "in1k")}
    assert all(r["metric"] == "top1" and 0.0 <= r["mean"] <= 100.0 and r["n"] == 1 for r in rows)
    return rows


def test_paper_spec_runs_end_to_end_at_laptop_scale(paper_data, tmp_path) -> None:
    data_root, checkpoint = paper_data
    root, env = make_project(tmp_path)
    args = paper_run_args(data_root, checkpoint)
    first = vx(root, env, "run", *args, "-j", "2")
    for column in ("k400", "ssv2", "in1k"):
        assert column in first.stdout
    check_table(root, env, args)

    # one data stage per dataset; the broken files listed in the CSVs are rows marked bad
    metrics = {
        p.name.split("-")[0]: json.loads(p.read_text())
        for p in (root / "metrics" / "data").glob("*.json")
    }
    assert set(metrics) == {"k400", "ssv2", "in1k", "k710", "howto100m"}
    assert metrics["k400"]["bad"] == 3 and metrics["ssv2"]["bad"] == 4
    pretrain = json.loads(next((root / "metrics" / "pretrain").glob("*.json")).read_text())
    assert set(pretrain["mixture"]) == {"k710", "ssv2", "howto100m"}

    # nothing stale afterwards; `dvc status` agrees
    assert "nothing to do" in vx(root, env, "run", *args).stdout
    status = subprocess.run(
        [str(BIN / "dvc"), "status", "--json"], cwd=root, env=env, capture_output=True, text=True
    )
    assert json.loads(status.stdout.strip().splitlines()[-1]) == {}

    # the same study with streamed features: no extract stage; the probes encode the clips
    stream = [*args, "eval.features=stream"]
    planned = vx(root, env, "run", *stream, "--dry-run").stdout
    assert "extract-" not in planned and planned.count("stream-") == 6
    assert "stream" in planned and "eval.features=stream" in planned
    vx(root, env, "run", *stream, "-j", "2")
    check_table(root, env, stream)
    streamed = [json.loads(p.read_text()) for p in (root / "metrics" / "stream").glob("*.json")]
    assert len(streamed) == 6 and all(m["features"] == "stream" for m in streamed)
    assert all(m["stream"]["clips_encoded"] > 0 for m in streamed)


def test_auto_streams_when_the_store_estimate_exceeds_the_budget(paper_data, tmp_path) -> None:
    """``eval.features=auto`` (the default) with a budget smaller than the laptop stores."""
    data_root, checkpoint = paper_data
    root, env = make_project(tmp_path)
    args = paper_run_args(data_root, checkpoint)
    stored = vx(root, env, "compile", *args, "--dry-run").stdout
    assert stored.count("extract-") == 12  # 2 encoders x 3 tasks x (train, eval)
    out = vx(root, env, "run", *args, "eval.store_budget=100kB", "--dry-run").stdout
    assert "extract-" not in out
    for task in ("k400", "ssv2", "in1k"):
        row = next(line for line in out.splitlines() if line.startswith(f"│ {task} "))
        assert "stream" in row and "exceeds eval.store_budget" in row
    # a budget that holds them all: every task stores
    out = vx(root, env, "run", *args, "eval.store_budget=10GB", "--dry-run").stdout
    assert out.count("extract-") == 12 and "exceeds" not in out
    bad = vx(root, env, "run", *args, "eval.store_budget=lots", "--dry-run", check=False)
    assert bad.returncode != 0 and "eval.store_budget" in bad.stdout + bad.stderr
