"""The speed scripts run: the GPU suite at toy size on a CPU, and the train-step benchmark
against a git revision (a temporary worktree, removed afterwards)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "DVC_NO_ANALYTICS": "1"}


def test_gpu_suite_toy_writes_every_part(tmp_path):
    out = tmp_path / "suite.json"
    done = subprocess.run(
        [sys.executable, "bench/gpu_suite.py", "--toy", "--no-compile", "--out", str(out)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["toy"] is True and result["machine"]["torch"]
    parts = result["parts"]
    assert set(parts) == {"pretrain", "extract", "stream", "quickstart"}
    eager = parts["pretrain"]["eager"]
    assert eager["preset"] == "vit_micro" and eager["compiled"] is False
    assert eager["clips_per_s"] > 0 and eager["achieved_tflops"] > 0
    assert eager["gflop_per_step"] > 0 and eager["dtype"] in ("float32", "bfloat16")
    assert parts["pretrain"]["compiled"] == {"skipped": "--no-compile"}
    assert parts["extract"]["clips_per_s"] > 0 and parts["extract"]["tokens"] == [64, 96]
    stream = parts["stream"]
    # one epoch encodes the training clips, and the validation clips once
    clips = stream["train_clips"] + stream["val_clips"]
    for k in (1, 16):
        assert stream[f"heads_{k}"]["clips_encoded"] == clips
        assert stream[f"heads_{k}"]["clips_per_s"] > 0
    assert stream["time_16_vs_1"] > 0
    quick = parts["quickstart"]
    assert quick["mode"] == "dry-run" and quick["wall_s"] > 0
    assert any("motion" in row for row in quick["table"])  # the dry run's plan, one row a task
    assert result["total_s"] >= sum(p["part_s"] for p in parts.values()) - 1


@pytest.mark.slow  # two worker processes, each building a Trainer
def test_train_step_against_head_prints_both_and_removes_its_worktree(tmp_path):
    worktrees = subprocess.run(
        ["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    done = subprocess.run(
        [sys.executable, "bench/train_step.py", "--against", "HEAD", "--frames", "8",
         "--batch", "2", "--pred-depth", "1", "--threads", "1", "--rounds", "2", "--steps", "1",
         "--warmup", "1"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines[:-1]] == ["round 1", "round 2"]
    result = json.loads(lines[-1])
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    assert result["commit"] == head.stdout.strip()[:12] and result["threads"] == 1
    assert len(result["this"]["clips_per_s"]) == len(result["base"]["clips_per_s"]) == 2
    assert result["ratio_of_medians"] > 0
    after = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True)
    assert after.stdout == worktrees  # the temporary worktree is gone


def test_train_step_against_a_bad_revision_is_one_line():
    done = subprocess.run(
        [sys.executable, "bench/train_step.py", "--against", "no-such-rev"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip() == f"--against no-such-rev: not a git revision of {ROOT}"
