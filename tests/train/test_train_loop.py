"""The pretraining loop end to end on a tiny synthetic dataset (real mp4 files, real models).

Resume is checked the hard way: a subprocess is SIGKILLed mid-run, restarted, and its final
weights must equal an uninterrupted run's bit for bit.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from vjepa.errors import TrainingDiverged
from vjepa.train import pretrain

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("vjepa-exp")
CLI = (
    [str(SCRIPT)]
    if SCRIPT.is_file()
    else [sys.executable, "-c", "from cli.main import main; main()"]
)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def tiny_config(index: Path, target: str = "feature", **pretrain_overrides) -> dict:
    """vit_micro at 8x32^2, patch 8 (4x4x4 = 64 tokens), a 2-block predictor, batch 4."""
    return {
        "data": {"index": str(index), "split": "train", "tasks": None},
        "clip": {"frames_per_clip": 8, "frame_step": 2, "crop_size": 32, "num_workers": 0},
        "model": {
            "name": "vit_micro",
            "num_frames": 8,
            "img_size": 32,
            "patch_size": 8,
            "tubelet_size": 2,
            "pred_depth": 2,
            "pred_embed_dim": 48,
        },
        "masking": {"name": "multiblock_small"},
        "pretrain": {
            "target": target,
            "batch_size": 4,
            "epochs": 2,
            "iterations_per_epoch": 5,
            "warmup_epochs": 1,
            "start_lr": 1.0e-4,
            "lr": 1.0e-3,
            "final_lr": 1.0e-5,
            "checkpoint_every": 3,
            "log_every": 100,
            "deterministic": True,
            "progress": False,
            **pretrain_overrides,
        },
    }


def weights(path: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return {
        f"{part}.{k}": v
        for part in ("encoder", "target_encoder", "predictor")
        for k, v in ckpt[part].items()
    }


def log_steps(path: Path) -> list[int]:
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError):
            pass
    return steps


def start_until_step(cmd: list[str], out, step: int) -> subprocess.Popen:
    """Start a pretrain stage process and return once its log has reached ``step``."""
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 60
    while max(log_steps(out / "log.jsonl"), default=0) < step and proc.poll() is None:
        assert time.time() < deadline, f"the run never reached step {step}"
        time.sleep(0.005)
    return proc


@pytest.mark.parametrize("workers", [0, 2])
def test_sigkill_and_resume_gives_identical_weights(index, tmp_path, workers):
    cfg = tiny_config(index, epochs=3, checkpoint_every=4)
    cfg["clip"]["num_workers"] = workers
    ref = pretrain(copy.deepcopy(cfg), tmp_path / "ref")
    assert ref["steps"] == 15

    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    cmd = [*CLI, "stage", "pretrain", str(tmp_path / "cfg.yaml"), "--out", str(out)]
    proc = start_until_step(cmd, out, 6)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists()
    saved = torch.load(out / "ckpt" / "latest.pt", weights_only=False)
    assert 4 <= saved["step"] < 15

    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 15 and metrics["steps_this_run"] == 15 - saved["step"]
    assert log_steps(out / "log.jsonl") == list(range(1, 16))  # replayed steps not duplicated
    a, b = weights(tmp_path / "ref" / "checkpoint.pt"), weights(out / "checkpoint.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (out / "loss.png").stat().st_size > 0


def test_sigterm_saves_and_exits_without_metrics(index, tmp_path):
    cfg = tiny_config(index, target="pixel", epochs=20, checkpoint_every=1000)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    cmd = [*CLI, "stage", "pretrain", str(tmp_path / "cfg.yaml"), "--out", str(out)]
    proc = start_until_step(cmd, out, 2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    # a planned stop: one line saying where the state was saved, exit 4, no traceback
    assert proc.returncode == 4 and b"Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith(b"interrupted: pretraining interrupted at step")
    state = torch.load(out / "ckpt" / "latest.pt", weights_only=False)
    assert 2 <= state["step"] < 100 and state["step"] == max(log_steps(out / "log.jsonl"))
    assert not (out / "metrics.json").exists() and not (out / "checkpoint.pt").exists()


def test_nan_stops_and_keeps_last_good_checkpoint(index, tmp_path, monkeypatch):
    from vjepa.train.objectives import JEPA

    forward, calls = JEPA.forward, {"n": 0}

    def poisoned(self, *args):
        calls["n"] += 1
        loss = forward(self, *args)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(JEPA, "forward", poisoned)
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as err:
        pretrain(tiny_config(index), out)
    message = str(err.value)
    assert "\n" not in message and "step 5" in message and "step 3 kept" in message
    state = torch.load(out / "ckpt" / "latest.pt", weights_only=False)
    assert state["step"] == 3
    assert all(torch.isfinite(v).all() for v in state["encoder"].values())
    assert not (out / "checkpoint.pt").exists()
    assert log_steps(out / "log.jsonl") == [1, 2, 3, 4]


def test_exploding_loss_stops(index, tmp_path):
    with pytest.raises(TrainingDiverged, match="max_loss"):
        pretrain(tiny_config(index, max_loss=1e-3), tmp_path / "run")
    assert not (tmp_path / "run" / "ckpt" / "latest.pt").exists()


def test_stop_event_saves_and_resumes(index, tmp_path, monkeypatch):
    import threading

    from vjepa.train import loop

    stop, train_step = threading.Event(), loop.Trainer.train_step

    def step_then_stop(self, batches):
        record = train_step(self, batches)
        if self.step == 4:
            stop.set()
        return record

    monkeypatch.setattr(loop.Trainer, "train_step", step_then_stop)
    cfg = tiny_config(index, target="pixel", epochs=1)
    first = pretrain(copy.deepcopy(cfg), tmp_path / "run", stop=stop)
    assert first["interrupted"] and first["steps"] == 4
    assert torch.load(tmp_path / "run" / "ckpt" / "latest.pt", weights_only=False)["step"] == 4
    monkeypatch.setattr(loop.Trainer, "train_step", train_step)
    rest = pretrain(copy.deepcopy(cfg), tmp_path / "run")
    assert rest["steps"] == 5 and "interrupted" not in rest
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert ckpt["target"] == "pixel" and ckpt["pixel_head"]["weight"].shape == (2 * 8 * 8 * 3, 96)
    # the pixel target has no EMA encoder: target_encoder is the trained encoder itself
    assert all(torch.equal(ckpt["encoder"][k], ckpt["target_encoder"][k]) for k in ckpt["encoder"])
    from vjepa.models import load_encoder

    encoder = load_encoder(tmp_path / "run" / "checkpoint.pt", which="target_encoder")
    assert encoder(torch.zeros(1, 3, 8, 32, 32)).shape == (1, 64, 96)


def _ddp_rank(rank: int, world: int, port: int, cfg: dict, out: str) -> None:
    os.environ.update(
        {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
         "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    )  # fmt: skip
    torch.set_num_threads(1)
    pretrain(cfg, out)


def test_two_rank_ddp_matches_one_rank(index, tmp_path):
    import torch.multiprocessing as mp

    cfg = tiny_config(index, epochs=1, batch_size=4)
    one = pretrain(copy.deepcopy(cfg), tmp_path / "one")
    cfg["pretrain"]["batch_size"] = 2  # per rank: same global batch of 4
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_rank, args=(2, port, cfg, str(tmp_path / "two")), nprocs=2, join=True)
    a, b = weights(tmp_path / "one" / "checkpoint.pt"), weights(tmp_path / "two" / "checkpoint.pt")
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), k
    losses_one = [r["loss"] for r in map(json.loads, (tmp_path / "one" / "log.jsonl").open())]
    losses_two = [r["loss"] for r in map(json.loads, (tmp_path / "two" / "log.jsonl").open())]
    assert losses_one == pytest.approx(losses_two, rel=1e-5)
    assert one["steps"] == 5
