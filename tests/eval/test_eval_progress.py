"""Progress of the data, extract, probe, sweep and stream stages: real stages at tiny sizes.

Each loop calls ``on_progress(done, total, figures)``; the stages pass a ``ProgressWriter``, so
``progress.json`` in the stage folder follows the run and ends at its total. A probe stage killed
with SIGKILL mid-training leaves a record that parses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from progress_watch import Watcher
from test_eval_sweep import make_config, make_store

from vjepa.eval.extract import Protocol, build_frozen_encoder, eval_clips, extract_features
from vjepa.eval.heads import train_probe
from vjepa.eval.probe_train import FeatureSet, ProbeParams
from vjepa.eval.store import FeatureStore
from vjepa.stages import run_stage
from vjepa.stages.sweep_workers import run_sweep
from vjepa.utils.progress import read_progress

torch.set_num_threads(1)

MODEL = {"name": "vit_micro", "num_frames": 16, "img_size": 32, "patch_size": 8, "tubelet_size": 2}
PROTOCOL = {"frames_per_clip": 16, "frame_step": 1, "crop_size": 32}
SYNTH = {"resolution": 32, "frames": 16, "videos": 20, "images": 0, "time_reversed_pairs": False}
ENCODER = {"source": "random", "seed": 0}


class Recorder:
    """An ``on_progress`` that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, dict]] = []

    def __call__(self, done: int, total: int, figures: dict) -> None:
        self.calls.append((done, total, dict(figures)))

    @property
    def dones(self) -> list[int]:
        return [d for d, _, _ in self.calls]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A data stage folder: 20 synthetic videos and their index."""
    out = tmp_path_factory.mktemp("data")
    run_stage("data", {"synth": SYNTH, "workers": 1}, out)
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("store") / "train")


def test_data_stage_ends_with_every_file_indexed(data):
    record = read_progress(data)
    assert record["phase"] == "index" and record["unit"] == "file"
    assert record["done"] == record["total"] == 20


def test_extract_stage_counts_clips_per_split(data, tmp_path):
    cfg = {
        "encoder": ENCODER,
        "model": MODEL,
        "data": {"index": str(data / "index.parquet"), "task": "appearance", "split": "train"},
        "protocol": PROTOCOL,
        "batch_size": 2,
        "progress": False,
    }
    with Watcher(tmp_path / "x") as watcher:
        stats = run_stage("extract", cfg, tmp_path / "x")
    final = read_progress(tmp_path / "x")
    assert final["phase"] == "extract train" and final["unit"] == "clip"
    assert final["done"] == final["total"] == stats["n"]
    assert final["figures"]["clips_per_s"] > 0
    dones = [r["done"] for r in watcher.records]
    assert dones == sorted(dones) and len(dones) >= 2 and dones[0] < stats["n"]


def test_extraction_reports_every_batch_and_kept_shards(data, tmp_path):
    from vjepa.data.index import read_index

    records = read_index(data / "index.parquet", task="appearance", split="train")
    protocol = Protocol.from_config(PROTOCOL)
    encoder = build_frozen_encoder(ENCODER, MODEL)

    def extract(on_progress: Recorder) -> dict:
        return extract_features(
            encoder,
            eval_clips(records, protocol),
            tmp_path / "features",
            labels=[int(r["label"]) for r in records],
            samples=[r["path"] for r in records],
            protocol=protocol,
            num_classes=4,
            batch_size=3,
            shard_mb=0.1,  # 4 rows a shard
            progress=False,
            on_progress=on_progress,
        )

    first = Recorder()
    stats = extract(first)
    n = stats["n"]
    assert first.dones == [0, *range(3, n, 3), n] and {t for _, t, _ in first.calls} == {n}
    assert all(f["clips_per_s"] > 0 for _, _, f in first.calls[1:])
    # a second call keeps every finished shard: it starts (and ends) at the total
    again = Recorder()
    extract(again)
    assert again.dones == [n]


def test_probe_stage_reports_epochs_best_val_and_loss(store, tmp_path):
    cfg = make_config(store, make_store(tmp_path / "eval", n=40, seed=1), n_trials=0, epochs=4)
    metrics = run_stage("probe", cfg, tmp_path / "p")
    final = read_progress(tmp_path / "p")
    assert final["phase"] == "probe" and final["unit"] == "epoch"
    assert final["done"] == final["total"] == 4
    assert final["figures"]["best_val"] == metrics["val_top1"]
    assert final["figures"]["loss"] > 0


def test_probe_training_reports_every_epoch(store):
    fs = FeatureStore(store)
    rows = np.arange(len(fs.labels))
    train, val = FeatureSet(fs, rows[:120], fs.labels), FeatureSet(fs, rows[120:], fs.labels)
    params = ProbeParams(kind="attentive", num_heads=2, epochs=5, batch_size=32, lr=5e-3)
    seen = Recorder()
    result = train_probe(train, val, params, num_classes=4, embed_dim=16, on_progress=seen)
    assert seen.dones == list(range(6)) and {t for _, t, _ in seen.calls} == {5}
    best = [f["best_val"] for _, _, f in seen.calls[1:]]
    assert best == sorted(best) and best[-1] == result.val_top1  # best so far: never falls
    losses = [f["loss"] for _, _, f in seen.calls[1:]]
    assert losses == [h["loss"] for h in result.history]


@pytest.mark.parametrize("workers", [1, 2])
def test_sweep_reports_trials_and_the_best_value(store, tmp_path, workers):
    cfg = make_config(store, tmp_path / "no-eval", n_trials=4, epochs=2, workers=workers)
    seen = Recorder()
    summary = run_sweep(cfg, tmp_path / "study", on_progress=seen)
    assert {t for _, t, _ in seen.calls} == {4}
    assert seen.dones == sorted(seen.dones) and seen.dones[-1] == 4
    assert seen.calls[-1][2]["best_val"] == summary["best_value"]
    if workers == 1:  # in this process: one report at the start and one per trial
        assert seen.dones == [0, 1, 2, 3, 4]
        best = [f["best_val"] for _, _, f in seen.calls[1:]]
        assert best == sorted(best)


def test_sweep_stage_writes_the_sweep_phase_then_the_refit(store, tmp_path):
    cfg = make_config(store, make_store(tmp_path / "eval", n=40, seed=1), n_trials=3, epochs=2)
    with Watcher(tmp_path / "p") as watcher:
        metrics = run_stage("probe", cfg, tmp_path / "p")
    phases = [r["phase"] for r in watcher.records]
    assert "sweep" in phases and phases[-1] == "probe"
    assert phases.index("probe") > max(i for i, p in enumerate(phases) if p == "sweep")
    sweep = [r for r in watcher.records if r["phase"] == "sweep"]
    assert sweep[-1]["done"] == sweep[-1]["total"] == 3 and sweep[-1]["unit"] == "trial"
    assert sweep[-1]["figures"]["best_val"] == metrics["study"]["best_value"]
    final = read_progress(tmp_path / "p")
    assert final["done"] == final["total"] == 2  # the refit on train + validation


def stream_config(data: Path, **extra) -> dict:
    return {
        "stream": {
            "encoder": ENCODER,
            "model": MODEL,
            "data": {
                "index": str(data / "index.parquet"),
                "task": "appearance",
                "train": "train",
                "eval": "test",
            },
            "protocol": PROTOCOL,
            "batch_size": 2,
        },
        "task": "appearance",
        "probe": {"kind": "attentive", "epochs": 2, "batch_size": 4, "lr": 3e-3},
        "val_fraction": 0.25,
        **extra,
    }


def test_stream_stage_reports_probe_epochs(data, tmp_path):
    metrics = run_stage("stream", stream_config(data), tmp_path / "s")
    final = read_progress(tmp_path / "s")
    assert final["phase"] == "probe" and final["done"] == final["total"] == 2
    assert final["figures"]["best_val"] == metrics["val_top1"]


def test_stream_sweep_reports_generations_of_trials(data, tmp_path):
    space = {"lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True}}
    sweep = {"n_trials": 4, "heads_per_pass": 2, "pruner": "none", "space": space}
    with Watcher(tmp_path / "s") as watcher:
        metrics = run_stage("stream", stream_config(data, sweep=sweep), tmp_path / "s")
    sweep_records = [r for r in watcher.records if r["phase"] == "sweep"]
    assert [r["done"] for r in sweep_records][-1] == 4 and sweep_records[-1]["total"] == 4
    assert sweep_records[-1]["figures"]["best_val"] == metrics["study"]["best_value"]


@pytest.mark.parametrize("module", ["vjepa.stages.sweep_workers", "vjepa.stages.stream"])
def test_worker_entry_points_answer_help(module):
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and f"python -m {module}" in done.stdout


def test_killed_probe_stage_leaves_a_record_that_parses(store, tmp_path):
    cfg = make_config(store, tmp_path / "no-eval", n_trials=0, epochs=500)
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "p"
    code = (
        "import sys, torch; torch.set_num_threads(1); from vjepa.stages import run_stage, "
        "load_stage_config; run_stage('probe', load_stage_config(sys.argv[1]), sys.argv[2])"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code, str(path), str(out)], env=env)
    deadline = time.time() + 120
    while (read_progress(out) or {}).get("done", 0) < 2:
        assert proc.poll() is None, "the stage ended before it was killed"
        assert time.time() < deadline, "no progress after 120 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    record = read_progress(out)  # replaced by rename: the last whole record, never a torn one
    assert record is not None and record["phase"] == "probe" and record["total"] == 500
    assert 2 <= record["done"] < 500 and not (out / "metrics.json").exists()
