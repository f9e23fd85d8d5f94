"""The synthetic benchmark: deterministic, motion label not in any single frame, valid config."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from vjepa.data.render import reversed_motion_label
from vjepa.data.synth import SynthConfig, generate, load_synth_meta
from vjepa.data.video import read_frames, read_image
from vjepa.errors import DataError


def _decoded(folder):
    rows = pq.read_table(folder / "labels.parquet").to_pylist()
    frames = [
        read_frames(folder / r["path"], range(16))
        if r["kind"] == "video"
        else read_image(folder / r["path"])
        for r in rows
    ]
    labels = [(r["id"], r["split"], r["motion"], r["appearance"]) for r in rows]
    return labels, frames


def test_same_seed_same_labels_and_frames_other_seed_differs(tmp_path):
    cfg = dict(videos=4, images=2)
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        generate(SynthConfig(**cfg, seed=seed), tmp_path / name, workers=1, progress=False)
    la, fa = _decoded(tmp_path / "a")
    lb, fb = _decoded(tmp_path / "b")
    lc, fc = _decoded(tmp_path / "c")
    assert la == lb
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(fa, fc, strict=True))


def test_parallel_generation_matches_serial(tmp_path):
    cfg = SynthConfig(videos=4, images=2, seed=5)
    generate(cfg, tmp_path / "serial", workers=1, progress=False)
    generate(cfg, tmp_path / "pool", workers=2, progress=False)
    ls, fs = _decoded(tmp_path / "serial")
    lp, fp = _decoded(tmp_path / "pool")
    assert ls == lp and all(np.array_equal(x, y) for x, y in zip(fs, fp, strict=True))


def test_time_reversed_partner_has_same_frames_and_another_motion_label(synth_dir):
    """A clip played backwards is another clip of the set: same frames, same appearance, other
    motion label. So no single frame (nor any unordered set of frames) determines the motion."""
    meta = load_synth_meta(synth_dir)
    cfg = SynthConfig.from_dict(meta["config"])
    rows = {r["id"]: r for r in pq.read_table(synth_dir / "labels.parquet").to_pylist()}
    pairs = [(rows[r["reversed_of"]], r) for r in rows.values() if r["reversed_of"]]
    assert len(pairs) == cfg.videos // 2
    for base, rev in pairs:
        a = read_frames(synth_dir / base["path"], range(16))
        b = read_frames(synth_dir / rev["path"], range(16))
        assert np.array_equal(a[::-1], b)  # lossless yuv444p: exact
        assert rev["motion"] != base["motion"]
        assert rev["motion"] == reversed_motion_label(cfg, base["motion"])
        assert rev["appearance"] == base["appearance"]
        assert sorted(map(bytes, a)) == sorted(map(bytes, b))  # the same frame set


def test_outputs_layout_and_reference_csvs(synth_dir):
    meta = load_synth_meta(synth_dir)
    assert set(meta["classes"]) == {"motion", "appearance", "image"}
    assert len(meta["classes"]["motion"]) == 8
    for task in ("motion", "appearance", "image"):
        for split in ("train", "val", "test"):
            lines = (synth_dir / "csv" / f"{task}_{split}.csv").read_text().splitlines()
            assert len(lines) == meta["counts"][task][split]
            for line in lines:
                path, label = line.split(" ")
                assert path.startswith("/") and int(label) >= 0
    assert sum(meta["counts"]["motion"].values()) == 12
    assert sum(meta["counts"]["image"].values()) == 6


@pytest.mark.parametrize(
    "values, key",
    [
        ({"backgrund": "flat"}, "backgrund"),
        ({"background": "plaid"}, "background"),
        ({"directions": 7}, "directions"),
        ({"motion": "rotation"}, "shapes"),
        ({"videos": 5}, "videos"),
    ],
)
def test_bad_config_names_the_key(values, key):
    with pytest.raises(DataError, match=rf"synth\.{key}:"):
        SynthConfig.from_dict(values)


@pytest.mark.parametrize("motion", ["direction_speed", "rotation"])
def test_other_motion_class_sets_reverse_consistently(motion, tmp_path):
    extra = {"shapes": ["square", "triangle"]} if motion == "rotation" else {}
    cfg = SynthConfig.from_dict({"motion": motion, "videos": 2, "images": 0, **extra})
    names = cfg.class_names()["motion"]
    assert len(names) == (2 if motion == "rotation" else 16)
    for label in range(len(names)):
        back = reversed_motion_label(cfg, label)
        assert back != label and reversed_motion_label(cfg, back) == label
