"""A V-JEPA 2 and a 2.1 file through the extract and probe stages to a result row (real videos)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from vjepa2_files import released_file

from vjepa.eval.store import FeatureStore
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
SYNTH = {"resolution": 32, "frames": 16, "directions": 4, "videos": 24, "images": 0}


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    run_stage("data", {"synth": SYNTH, "workers": 1}, out)
    return out / "index.parquet"


@pytest.mark.parametrize("layout", ["vjepa2", "vjepa2.1"])
def test_a_released_file_evaluates_to_a_result_row(
    tmp_path: Path, index: Path, layout: str
) -> None:
    ckpt = released_file(tmp_path / "vitm.pt", layout, patch=8)
    for split in ("train", "test"):
        cfg = {
            "encoder": {"source": "official", "path": str(ckpt)},
            "model": MODEL,  # the spec's option names no positions: the file's (RoPE) are kept
            "data": {"index": str(index), "task": "appearance", "split": split},
            "protocol": PROTOCOL,
            "progress": False,
        }
        run_stage("extract", cfg, tmp_path / split)
    store = FeatureStore(tmp_path / "train")
    assert store.manifest["encoder"]["source"] == "official" and store.num_heads == 3
    probe = {
        "features": {"train": str(tmp_path / "train"), "eval": str(tmp_path / "test")},
        "task": "appearance",
        "probe": {"kind": "attentive_v2", "num_heads": 4, "epochs": 2, "batch_size": 8},
        "val_fraction": 0.1,
    }
    row = run_stage("probe", probe, tmp_path / "probe")
    assert row["n_eval"] > 0 and 0.0 <= row["top1"] <= 100.0
