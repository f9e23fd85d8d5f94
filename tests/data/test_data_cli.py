"""The data commands through a real subprocess, the data stage, and the decoding benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vjepa.data.index import read_index
from vjepa.stages import run_stage

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "vjepa-exp"


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run(
        [str(EXE), "data", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_synth_index_show_through_the_cli(tmp_path):
    out = tmp_path / "bench"
    res = cli("synth", "--out", str(out), "--videos", "4", "--images", "2", "--seed", "7",
              "--set", "background=noise", "--workers", "1")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (out / "synth.json").is_file() and len(list(out.glob("videos/*/*.mp4"))) == 4
    assert json.loads((out / "synth.json").read_text())["config"]["background"] == "noise"
    (out / "videos" / "train" / "v000000.mp4").write_bytes(b"")  # one bad file
    res = cli("index", str(out), "--out", str(tmp_path / "i.parquet"), "--workers", "1")
    assert res.returncode == 0, res.stderr
    assert "2 bad" in res.stdout and "v000000.mp4" in res.stdout  # its motion + appearance rows
    res = cli("show", str(tmp_path / "i.parquet"))
    assert res.returncode == 0, res.stderr
    assert "motion" in res.stdout and "appearance" in res.stdout and "image" in res.stdout
    assert "empty file" in res.stdout


def test_bad_source_is_a_one_line_error(tmp_path):
    res = cli("index", str(tmp_path / "nowhere"), "--out", str(tmp_path / "i.parquet"))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "nowhere" in lines[0]
    res = cli("synth", "--out", str(tmp_path / "s"), "--set", "motion=sideways")
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0
    assert "synth.motion" in res.stderr


def test_data_stage_synthesizes_and_indexes(tmp_path):
    out = tmp_path / "stage"
    synth = {"videos": 4, "images": 2, "seed": 1}
    metrics = run_stage("data", {"synth": synth, "workers": 1}, out)
    assert metrics["rows"] == 4 * 2 + 2 and metrics["bad"] == 0
    assert (out / "metrics.json").is_file() and (out / "csv" / "motion_train.csv").is_file()
    assert len(read_index(out / "index.parquet", task="motion")) == 4
    again = run_stage("data", {"source": str(out / "csv" / "image_train.csv")}, tmp_path / "s2")
    assert again["rows"] == len((out / "csv" / "image_train.csv").read_text().splitlines())


def test_decode_benchmark_runs_and_reports_both_readers(tmp_path):
    """The benchmark itself (its ratio is a speed claim: docs/benchmarks.md, not a timed test)."""
    result = tmp_path / "bench.json"
    res = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "decode.py"), "--size", "128", "--videos", "1",
         "--clips", "12", "--full-clips", "4", "--no-loader", "--workers", "1",
         "--json", str(result)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    numbers = json.loads(result.read_text())
    rates = ("seek_clips_per_s", "full_clips_per_s", "seek_clips_per_cpu_s", "full_clips_per_cpu_s")
    assert all(numbers[k] > 0 for k in rates), numbers
    assert numbers["speedup"] > 0 and numbers["cpu_speedup"] > 0, numbers
