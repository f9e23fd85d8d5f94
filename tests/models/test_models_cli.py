"""`vjepa-exp checkpoint show/import/export` through a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from vjepa.models import build_from_config, load_checkpoint, model_config

CFG = {"name": "vit_micro", "num_frames": 8, "img_size": 32, "patch_size": 8, "pred_depth": 1}


def cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "cli.main", "checkpoint", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_import_show_export(tmp_path: Path) -> None:
    encoder, predictor = build_from_config(CFG)
    wrap = {"module.backbone." + k: v for k, v in encoder.state_dict().items()}
    pred = {"module.backbone." + k: v for k, v in predictor.state_dict().items()}
    official = tmp_path / "vitm.pth.tar"
    torch.save({"encoder": wrap, "target_encoder": wrap, "predictor": pred, "epoch": 5}, official)

    done = cli("import", str(official), "--out", str(tmp_path / "ours.pt"))
    assert done.returncode == 0, done.stderr
    ours = load_checkpoint(tmp_path / "ours.pt")
    assert not ours.official and ours.epoch == 5
    assert ours.model == model_config(encoder, predictor)

    shown = cli("show", str(tmp_path / "ours.pt"))
    assert shown.returncode == 0, shown.stderr
    assert "vit_micro" in shown.stdout and "epoch=5" in shown.stdout
    assert "blocks.{i}.attn.qkv.weight" in shown.stdout and "[288, 96]" in shown.stdout

    done = cli("export", str(tmp_path / "ours.pt"), "--out", str(tmp_path / "back.pth.tar"))
    assert done.returncode == 0, done.stderr
    raw = torch.load(tmp_path / "back.pth.tar", weights_only=True)
    assert raw["encoder"].keys() == wrap.keys() and raw["epoch"] == 5


def test_bad_file_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.pt"
    bad.write_text("hello")
    done = cli("show", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
