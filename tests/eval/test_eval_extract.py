"""Extraction from real videos: resume, official checkpoints, and the end-to-end probe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vjepa.eval.store import FeatureStore
from vjepa.models import build_encoder
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
SYNTH = {  # easy enough that a random-init encoder + probe beats chance on ~200 clips
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
}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    run_stage("data", {"synth": {**SYNTH, "videos": 20, "images": 0}, "workers": 1}, out)
    return out / "index.parquet"


def extract_config(index, **over) -> dict:
    cfg = {
        "encoder": {"source": "random", "seed": 0},
        "model": MODEL,
        "data": {"index": str(index), "task": "appearance", "split": "train"},
        "protocol": PROTOCOL,
        "progress": False,
    }
    return {**cfg, **over}


def test_resume_skips_finished_shards(tmp_path, tiny_data):
    # 14 train clips, 128 tokens x 96 dims x 2 bytes = 24 KiB a row: 0.1 MiB shards hold 4 rows
    cfg = extract_config(tiny_data, shard_mb=0.1, batch_size=3)
    first = run_stage("extract", cfg, tmp_path / "a")
    feats = tmp_path / "a" / "features"
    assert first["shards"] == 4 and first["resumed_shards"] == 0
    before = FeatureStore(feats).take(np.arange(first["n"]))
    groups = FeatureStore(feats).groups  # the index's carve-out groups travel with the features
    assert groups is not None and len(set(groups)) == len(groups) == first["n"]  # no pairs here
    # an interrupted run: one shard and the manifest missing (the manifest is written last)
    stamps = {p.name: p.stat().st_mtime_ns for p in feats.glob("shard-*.npy")}
    (feats / "shard-00002.npy").unlink()
    (feats / "manifest.json").unlink()
    with pytest.raises(Exception, match="did not finish"):
        FeatureStore(feats)
    second = run_stage("extract", cfg, tmp_path / "a")
    assert second["resumed_shards"] == 3 and second["encoded"] == 4
    for name, stamp in stamps.items():
        if name != "shard-00002.npy":
            assert (feats / name).stat().st_mtime_ns == stamp  # kept, not rewritten
    assert torch.equal(FeatureStore(feats).take(np.arange(first["n"])), before)
    # another encoder seed is another plan: nothing is reused
    third = run_stage(
        "extract",
        extract_config(tiny_data, shard_mb=0.1, encoder={"source": "random", "seed": 1}),
        tmp_path / "a",
    )
    assert third["resumed_shards"] == 0 and third["encoder_uid"] != first["encoder_uid"]


def test_official_layout_checkpoint_extracts(tmp_path, tiny_data):
    torch.manual_seed(3)
    enc = build_encoder(**MODEL)
    prefixed = {f"module.backbone.{k}": v for k, v in enc.state_dict().items()}
    official = {
        "encoder": prefixed,
        "target_encoder": prefixed,
        "predictor": None,
        "opt": None,
        "scaler": None,
        "epoch": 10,
        "loss": 0.1,
        "batch_size": 8,
        "world_size": 1,
        "lr": 1e-3,
    }
    torch.save(official, tmp_path / "vitm.pth.tar")
    cfg = extract_config(
        tiny_data,
        encoder={"source": "official", "path": str(tmp_path / "vitm.pth.tar")},
        protocol={**PROTOCOL, "num_views": 2, "pool": "mean"},
        dtype="bfloat16",
    )
    metrics = run_stage("extract", cfg, tmp_path / "off")
    store = FeatureStore(tmp_path / "off")
    assert store.shape == (metrics["n"], 1, 2, 96) and store.dtype == "bfloat16"
    assert store.num_heads == 3 and store.manifest["encoder"]["source"] == "official"
    from vjepa.eval.extract import encoder_uid

    assert store.manifest["encoder"]["uid"] == encoder_uid(enc)
    assert np.isfinite(store.take(np.arange(len(store)), torch.float32).numpy()).all()


@pytest.mark.slow  # ~28 s on 2 cores
def test_extract_then_probe_beats_chance_on_all_tasks(tmp_path):
    run_stage(
        "data", {"synth": {**SYNTH, "videos": 300, "images": 120}, "workers": 1}, tmp_path / "data"
    )
    index = tmp_path / "data" / "index.parquet"
    chance = {"motion": 1 / 4, "appearance": 1 / 6, "image": 1 / 6}
    for task in chance:
        for split in ("train", "test"):
            cfg = extract_config(index, data={"index": str(index), "task": task, "split": split})
            run_stage("extract", cfg, tmp_path / f"{task}-{split}")
        probe = {
            "features": {
                "train": str(tmp_path / f"{task}-train"),
                "eval": str(tmp_path / f"{task}-test"),
            },
            "task": task,
            "probe": {"kind": "attentive", "lr": 3e-3, "epochs": 40, "batch_size": 32},
            "val_fraction": 0.1,
        }
        m = run_stage("probe", probe, tmp_path / f"probe-{task}")
        assert m["top1"] > 100 * chance[task] + 20, (task, m["top1"])
        assert m["n_eval"] > 0 and m["study"] is None and m["val_top1"] is not None


def test_unprobed_dataset_with_a_broken_file_extracts_and_counts_it(tmp_path, tiny_data):
    """probe: none trusts the CSV; the broken file is found at read time, skipped and counted."""
    import shutil

    good = sorted((tiny_data.parent / "videos" / "train").glob("*.mp4"))[:3]
    folder = tmp_path / "k400"
    folder.mkdir()
    for i, path in enumerate(good):
        shutil.copy(path, folder / f"clip {i}.mp4")
    (folder / "empty.mp4").write_bytes(b"")
    lines = [f"clip {i}.mp4 {i % 2}" for i in range(3)] + ["empty.mp4 1"]
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    index = run_stage(
        "data",
        {"dataset": "k400", "splits": {"train": [str(folder / "train.csv")]}, "probe": "none"},
        tmp_path / "data",
    )
    assert index["unprobed"] == 4 and index["bad"] == 0
    cfg = extract_config(
        tmp_path / "data" / "index.parquet",
        data={"index": str(tmp_path / "data" / "index.parquet"), "task": "k400", "split": "train"},
    )
    stats = run_stage("extract", cfg, tmp_path / "x")
    assert stats["n"] == 4 and stats["skipped"] == 1
    store = FeatureStore(tmp_path / "x" / "features")
    assert int(np.sum(store.valid)) == 3 and store.num_classes == 2  # labels 0 and 1
    # a dataset's given class count wins over its labels (the probe gets that many outputs)
    cfg["data"]["num_classes"] = 5
    run_stage("extract", cfg, tmp_path / "y")
    assert FeatureStore(tmp_path / "y" / "features").num_classes == 5


def test_a_store_larger_than_the_free_disk_is_never_started(tmp_path, tiny_data):
    """The protocol asks for more segments than the disk holds: one line, nothing written."""
    import shutil

    from vjepa.errors import UserError

    free = shutil.disk_usage(tmp_path).free
    per_segment = 128 * 96 * 2  # vit_micro tokens x width x float16 bytes, one view
    clips = 14  # the appearance train split of tiny_data
    segments = 2 * free // (clips * per_segment) + 1
    cfg = extract_config(tiny_data, protocol={**PROTOCOL, "num_segments": int(segments)})
    with pytest.raises(UserError) as err:
        run_stage("extract", cfg, tmp_path / "x")
    message = str(err.value)
    assert "\n" not in message and "the feature store needs" in message and "free" in message
    assert not list((tmp_path / "x").rglob("*.npy")) and not (tmp_path / "x" / "features").exists()
