"""Progress of the pretrain stage: ``progress.json`` from a real run, a resumed run and a killed one.

The training loop hears nothing of files: it calls ``on_progress(step, total, figures)``; the stage
passes a ``ProgressWriter``. A resumed run counts on from its resume step, and a stage killed with
SIGKILL leaves its last whole record behind.
"""

from __future__ import annotations

import copy
import json
import signal
import threading

import torch
import yaml
from progress_watch import Watcher
from test_train_loop import CLI, start_until_step, tiny_config

from vjepa.stages import run_stage
from vjepa.train import loop, pretrain
from vjepa.utils.progress import ProgressWriter, read_progress

torch.set_num_threads(1)


def test_pretrain_stage_progress_advances_to_the_total(index, tmp_path):
    out = tmp_path / "run"
    with Watcher(out) as watcher:
        metrics = run_stage("pretrain", tiny_config(index, epochs=2), out)
    assert metrics["steps"] == 10
    final = read_progress(out)
    assert final["phase"] == "pretrain" and final["unit"] == "step"
    assert final["done"] == final["total"] == 10
    assert set(final["figures"]) == {"loss", "lr", "clips_per_s"}
    assert final["figures"]["loss"] == metrics["final_loss"]
    assert final["rate"] > 0 and final["eta_s"] == 0
    dones = [r["done"] for r in watcher.records]
    assert len(dones) >= 2 and dones == sorted(dones) and dones[-1] == 10


def test_every_step_is_reported_with_its_figures(index, tmp_path):
    out = tmp_path / "run"
    writer = ProgressWriter(out, "pretrain", "step", min_interval=0.0)
    seen: list[tuple[int, int, dict]] = []

    def record(done: int, total: int, figures: dict) -> None:
        writer.update(done, total, figures)
        seen.append((done, total, dict(figures)))
        assert read_progress(out)["done"] == done  # written every time: no throttle

    pretrain(tiny_config(index, epochs=1), out, on_progress=record)
    assert [d for d, _, _ in seen] == list(range(6)) and {t for _, t, _ in seen} == {5}
    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [f["loss"] for _, _, f in seen[1:]] == [r["loss"] for r in logged]
    assert [f["lr"] for _, _, f in seen[1:]] == [r["lr"] for r in logged]


def test_killed_stage_leaves_a_record_and_the_resumed_run_counts_on(index, tmp_path):
    cfg = tiny_config(index, epochs=3, checkpoint_every=4)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    cmd = [*CLI, "stage", "pretrain", str(tmp_path / "cfg.yaml"), "--out", str(out)]
    proc = start_until_step(cmd, out, 6)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    left = read_progress(out)  # parses: the record is replaced by rename, never torn
    assert left is not None and left["phase"] == "pretrain" and left["total"] == 15
    assert 0 <= left["done"] < 15
    saved = torch.load(out / "ckpt" / "latest.pt", weights_only=False)["step"]
    assert 4 <= saved < 15

    writer = ProgressWriter(out, "pretrain", "step", min_interval=0.0)
    first: list[dict] = []

    def record(done: int, total: int, figures: dict) -> None:
        writer.update(done, total, figures)
        first.append(read_progress(out))

    pretrain(copy.deepcopy(cfg), out, on_progress=record)
    assert first[0]["done"] == saved and first[0]["rate"] is None  # starts at the resume step
    assert [r["done"] for r in first] == list(range(saved, 16))
    # the rate counts the steps this process took, not the ones it resumed past
    last = first[-1]
    assert last["rate"] <= (15 - saved) / (last["updated"] - first[0]["updated"]) + 1e-9


def test_resumed_stage_starts_its_progress_at_the_resume_step(index, tmp_path, monkeypatch):
    """Through the stage: a run stopped at step 4 (the SIGTERM path) is rerun and watched."""
    stop, train_step = threading.Event(), loop.Trainer.train_step
    cfg = tiny_config(index, epochs=2)
    out = tmp_path / "run"

    def step_then_stop(self, batches):
        record = train_step(self, batches)
        if self.step == 4:
            stop.set()
        return record

    monkeypatch.setattr(loop.Trainer, "train_step", step_then_stop)
    first = pretrain(copy.deepcopy(cfg), out, stop=stop)
    assert first["interrupted"] and first["steps"] == 4
    monkeypatch.setattr(loop.Trainer, "train_step", train_step)
    with Watcher(out) as watcher:
        run_stage("pretrain", copy.deepcopy(cfg), out)
    assert watcher.records[0]["done"] == 4  # not 0: the resumed stage starts where it stopped
    assert read_progress(out)["done"] == 10
