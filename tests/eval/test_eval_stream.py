"""Streamed frozen features: the stream stage reads real clips and runs the frozen encoder itself.

Same protocol as a store (fixed segments and crops, the store's dtype), so with the same settings a
streamed probe equals a stored one; K heads share each encoded batch; a killed streamed probe
resumes to the uninterrupted result; the test split is read only after the head is chosen.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest
import torch
import yaml

from vjepa.eval.heads import train_heads
from vjepa.eval.probe_train import ProbeParams
from vjepa.eval.splits import carve_rows
from vjepa.eval.stream import StreamRows, open_stream, record_columns, split_records
from vjepa.stages import run_stage

torch.set_num_threads(1)

MODEL = {"name": "vit_micro", "num_frames": 16, "img_size": 32, "patch_size": 8, "tubelet_size": 2}
PROTOCOL = {
    "frames_per_clip": 16,
    "frame_step": 1,
    "crop_size": 32,
    "num_segments": 1,
    "num_views": 1,
}
SYNTH = {
    "resolution": 32,
    "frames": 16,
    "directions": 4,
    "speed_range": [0.06, 0.1],
    "appearance": "colour",
    "num_distractors": 0,
    "camera_jitter": 0.0,
    "pixel_noise": 0.0,
    "brightness_jitter": 0.0,
    "colour_jitter": 0.0,
    "time_reversed_pairs": False,
    "videos": 40,
    "images": 0,
}
ENCODER = {"source": "random", "seed": 0}
PROBE = {"kind": "attentive", "epochs": 3, "batch_size": 8, "lr": 3e-3}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    run_stage("data", {"synth": SYNTH, "workers": 1}, out)
    return out / "index.parquet"


def stream_config(index: Path, probe: dict | None = None, **extra) -> dict:
    return {
        "stream": {
            "encoder": ENCODER,
            "model": MODEL,
            "data": {"index": str(index), "task": "appearance", "train": "train", "eval": "test"},
            "protocol": PROTOCOL,
            "dtype": "float16",
            "batch_size": 1,
        },
        "task": "appearance",
        "probe": {**PROBE, **(probe or {})},
        "val_fraction": 0.25,
        "seed": 0,
        **extra,
    }


def extracted(index: Path, root: Path, split: str) -> Path:
    cfg = {
        "encoder": ENCODER,
        "model": MODEL,
        "data": {"index": str(index), "task": "appearance", "split": split},
        "protocol": PROTOCOL,
        "dtype": "float16",
        "batch_size": 1,
        "progress": False,
    }
    run_stage("extract", cfg, root / split)
    return root / split / "features"


def store_config(index: Path, root: Path, probe: dict | None = None) -> dict:
    cfg = stream_config(index, probe)
    del cfg["stream"]
    cfg["features"] = {
        "train": str(extracted(index, root, "train")),
        "eval": str(extracted(index, root, "test")),
    }
    return cfg


SCORES = ("top1", "top5", "val_top1", "best_epoch", "n_train", "n_eval")


@pytest.mark.parametrize("probe", [{}, {"heads": {"lr": [1e-3, 3e-3]}}], ids=["single", "heads"])
def test_stream_and_store_give_the_same_probe(tmp_path, index, probe):
    stored = run_stage("probe", store_config(index, tmp_path / "x", probe), tmp_path / "store")
    streamed = run_stage("stream", stream_config(index, probe), tmp_path / "stream")
    assert {k: stored[k] for k in SCORES} == {k: streamed[k] for k in SCORES}
    assert stored.get("heads") == streamed.get("heads")
    assert streamed["features"] == "stream" and "features" not in stored
    a = torch.load(tmp_path / "store" / "probe.pt", weights_only=True)["classifier"]
    b = torch.load(tmp_path / "stream" / "probe.pt", weights_only=True)["classifier"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # every epoch re-encodes the training rows; validation is encoded once (cached); test once
    n_val = len(carve_rows(stream_config(index), *record_columns(_records(index)))[1])
    expected = PROBE["epochs"] * streamed["n_train"] + n_val + streamed["n_eval"]
    assert streamed["stream"]["clips_encoded"] == expected


def _records(index: Path) -> list[dict]:
    return split_records(stream_config(index)["stream"], "train")


def test_identical_heads_on_streamed_features_are_identical(index):
    cfg = stream_config(index)
    source = open_stream(cfg["stream"])
    records = _records(index)
    train_rows, val_rows = carve_rows(cfg, *record_columns(records))
    train = StreamRows(source, records, train_rows)
    val = StreamRows(source, records, val_rows, cache_mb=64)
    same = {"lr": 3e-3, "weight_decay": 0.01}
    params = ProbeParams(**{**PROBE, "num_heads": 3, "heads": [same] * 3})
    res = train_heads(train, val, params, num_classes=source.num_classes, embed_dim=96)
    states = [r.model.state_dict() for r in res.results]
    for s in states[1:]:
        assert all(torch.equal(states[0][k], s[k]) for k in s)
    assert len({(r.best_epoch, r.val_top1) for r in res.results}) == 1
    # three heads, one encoder pass: the training rows were encoded once per epoch, not 3x
    assert source.stats.clips == PROBE["epochs"] * len(train_rows) + len(val_rows)


def test_streamed_head_choice_never_decodes_the_test_split(tmp_path, index, monkeypatch):
    import vjepa.data.video as video
    import vjepa.eval.stream as stream

    test_paths = {r["path"] for r in split_records(stream_config(index)["stream"], "eval")}
    reads: list[tuple[str, bool]] = []
    real = video.read_frames

    def spy(path, *args, **kwargs):
        names = {f.name for f in traceback.extract_stack()}
        reads.append((str(path), "train_heads" in names))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(video, "read_frames", spy)
    monkeypatch.setattr(stream, "loader_workers", lambda device: 0)  # decode in this process
    m = run_stage("stream", stream_config(index, {"heads": {"lr": [1e-4, 3e-3]}}), tmp_path / "p")
    test_reads = [(p, training) for p, training in reads if p in test_paths]
    assert len(test_reads) == m["n_eval"] == len(test_paths)  # each test clip once, at the end
    assert not [p for p, training in test_reads if training]
    last_train_read = max(i for i, (p, _) in enumerate(reads) if p not in test_paths)
    first_test_read = min(i for i, (p, _) in enumerate(reads) if p in test_paths)
    assert last_train_read < first_test_read


def _stage_process(cfg: dict, out: Path, root: Path) -> subprocess.Popen:
    path = root / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code = (
        "import sys, torch; torch.set_num_threads(1); from vjepa.stages import run_stage, "
        "load_stage_config; run_stage('stream', load_stage_config(sys.argv[1]), sys.argv[2])"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code, str(path), str(out)], env=env)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.is_file():
        assert proc.poll() is None, "the stage ended before its first checkpoint"
        assert time.time() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.05)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_killed_stream_probe_resumes_to_the_uninterrupted_result(tmp_path, index, how):
    probe = {"heads": {"lr": [1e-3, 3e-3]}, "epochs": 10}  # seconds left to kill it in
    cfg = stream_config(index, probe)
    whole = run_stage("stream", cfg, tmp_path / "whole")
    out = tmp_path / "killed"
    proc = _stage_process(cfg, out, tmp_path)
    _wait_for(out / "ckpt" / "heads.pt", proc)  # after epoch 0: kill inside a later epoch
    time.sleep(0.3)
    proc.send_signal(how)
    assert proc.wait(timeout=120) != 0
    assert not (out / "metrics.json").exists()
    state = torch.load(out / "ckpt" / "heads.pt", weights_only=False)
    assert state["epoch"] >= 1  # saved after the first epoch at least
    resumed = run_stage("stream", cfg, out)
    for key in (*SCORES, "heads", "chosen_head"):
        assert resumed[key] == whole[key], key
    a = torch.load(tmp_path / "whole" / "probe.pt", weights_only=True)["classifier"]
    b = torch.load(out / "probe.pt", weights_only=True)["classifier"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the resumed run encoded only what was left (fewer clips than the whole run)
    assert resumed["stream"]["clips_encoded"] < whole["stream"]["clips_encoded"]
    assert json.loads((out / "metrics.json").read_text())["top1"] == whole["top1"]


def test_each_probe_kind_refuses_the_other_kinds_features(tmp_path, index):
    cfg = {**stream_config(index), "features": {"train": "a", "eval": "b"}}
    with pytest.raises(Exception, match="features"):
        run_stage("stream", cfg, tmp_path / "s")
    with pytest.raises(Exception, match="stream"):
        run_stage("probe", cfg, tmp_path / "p")
    assert not list(tmp_path.glob("*/metrics.json"))


SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
    "weight_decay": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
}


def test_stream_sweep_of_16_trials_costs_one_probe_training(tmp_path, index):
    sweep = {"n_trials": 16, "heads_per_pass": 16, "pruner": "none", "space": SPACE}
    m = run_stage("stream", stream_config(index, sweep=sweep), tmp_path / "p")
    study = m["study"]
    assert study["n_complete"] == 16 and study["n_failed"] == 0
    n_val = len(carve_rows(stream_config(index), *record_columns(_records(index)))[1])
    # 16 trials, one generation: each training clip encoded once per epoch, validation once
    assert study["stream"]["clips_encoded"] == PROBE["epochs"] * m["n_train"] + n_val
    assert m["val_top1"] == study["best_value"]
    assert m["params"]["lr"] == pytest.approx(study["best_params"]["lr"])
    heads = sorted((tmp_path / "p" / "study" / "heads").glob("trial-*.pt"))
    assert len(heads) == 16  # every completed trial's head is kept; the best one is reported
    best = torch.load(tmp_path / "p" / "study" / "heads" / f"trial-{study['best_trial']}.pt")
    reported = torch.load(tmp_path / "p" / "probe.pt", weights_only=True)["classifier"]
    assert all(torch.equal(reported[f"module.{k}"], v) for k, v in best["state"].items())


def test_stream_sweep_reports_every_epoch_and_prunes_heads(tmp_path, index):
    from vjepa.eval.sweep import load_study, without_eval

    sweep = {"n_trials": 8, "heads_per_pass": 4, "pruner": "median", "space": SPACE}
    cfg = stream_config(index, {"epochs": 4}, sweep=sweep)
    m = run_stage("stream", cfg, tmp_path / "p")
    assert m["study"]["n_complete"] + m["study"]["n_pruned"] == 8
    study = load_study(without_eval(cfg), tmp_path / "p" / "study")
    for t in study.trials:
        steps = sorted(t.intermediate_values)
        assert steps == list(range(len(steps))) and steps  # one value per epoch it trained
        assert len(steps) == 4 or t.state.name == "PRUNED"


def test_stream_sweep_space_must_be_head_settings(tmp_path, index):
    sweep = {"n_trials": 2, "space": {"epochs": {"type": "int", "low": 1, "high": 3}}}
    with pytest.raises(Exception, match="heads of one pass"):
        run_stage("stream", stream_config(index, sweep=sweep), tmp_path / "p")


def test_a_stage_stopped_by_sigterm_logs_one_line_not_a_traceback(tmp_path, index):
    """Preemption is planned: the stage command says where it saved, in one line, and exits 4."""
    cfg = stream_config(index, {"epochs": 10})
    path = tmp_path / "stream.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    cli = Path(sys.executable).parent / "vjepa-exp"
    proc = subprocess.Popen(
        [str(cli), "stage", "stream", str(path), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    _wait_for(out / "ckpt" / "heads.pt", proc)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 4, stderr
    assert "Traceback" not in stderr + stdout
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("interrupted: probe interrupted at epoch ")
    assert str(out / "ckpt" / "heads.pt") in lines[-1]
