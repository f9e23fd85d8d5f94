"""Clip indices, transforms, the clip dataset over real files (including a deleted one), and\nits record table (every field of real index rows; the same items as from a list of dicts)."""

from __future__ import annotations

import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from vjepa.data.clips import ClipDataset, clip_indices, collate, count_frames
from vjepa.data.index import build_dataset_index, build_index, read_index
from vjepa.data.records import FIELDS, ClipRecords
from vjepa.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform, TrainTransform
from vjepa.data.video import read_frames
from vjepa.errors import DataError


def test_clip_indices_uniform_centres_the_span():
    (idx,) = clip_indices(100, 16, 4, 1)
    span = 15 * 4 + 1
    assert idx.tolist() == list(range((100 - span) // 2, (100 - span) // 2 + span, 4))


def test_clip_indices_random_stays_inside_and_varies():
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(50):
        (idx,) = clip_indices(100, 8, 3, 1, random=True, rng=rng)
        assert np.all(np.diff(idx) == 3) and idx[0] >= 0 and idx[-1] <= 99
        starts.add(int(idx[0]))
    assert len(starts) > 10


def test_clip_indices_segments():
    clips = clip_indices(120, 4, 2, num_clips=3)
    assert [c.tolist() for c in clips] == [[16, 18, 20, 22], [56, 58, 60, 62], [96, 98, 100, 102]]
    rng = np.random.default_rng(1)
    for i, c in enumerate(clip_indices(120, 4, 2, 3, random=True, rng=rng)):
        assert 40 * i <= c[0] and c[-1] < 40 * (i + 1)


def test_clip_indices_short_video_pads_with_last_frame():
    (idx,) = clip_indices(10, 8, 2, 1)
    assert idx.tolist() == [0, 2, 4, 6, 8, 9, 9, 9]
    (idx,) = clip_indices(1, 4, 4, 1)
    assert idx.tolist() == [0, 0, 0, 0]
    segs = clip_indices(12, 4, 2, num_clips=2)  # segments of 6 < span 7
    assert [s.tolist() for s in segs] == [[0, 2, 4, 5], [6, 8, 10, 11]]
    with pytest.raises(DataError):
        clip_indices(0, 4, 2)


def test_train_transform_shapes_ranges_and_same_crop_for_all_frames():
    frames = np.zeros((8, 40, 60, 3), np.uint8)
    frames[:, :, :30] = 255  # left half white in every frame
    out = TrainTransform(24, hflip=0.0)(frames, rng=np.random.default_rng(0))
    assert out.shape == (1, 3, 8, 24, 24) and out.dtype == torch.float32
    lo = (0 - max(IMAGENET_MEAN)) / min(IMAGENET_STD)
    hi = (1 - min(IMAGENET_MEAN)) / min(IMAGENET_STD)
    assert lo - 1e-4 <= out.min() and out.max() <= hi + 1e-4
    assert torch.allclose(out[:, :, :1].expand_as(out), out)  # identical across time
    flipped = TrainTransform(24, hflip=1.0)(frames, rng=np.random.default_rng(0))
    assert torch.allclose(flipped, out.flip(-1))


def test_eval_transform_views_left_centre_right():
    frames = np.tile(np.arange(64, dtype=np.uint8)[None, None, :, None] * 4, (4, 32, 1, 3))
    out = EvalTransform(32, num_views=3, mean=(0, 0, 0), std=(1, 1, 1))(frames)
    assert out.shape == (3, 3, 4, 32, 32)
    firsts = out[:, 0, 0, 0, 0] * 255
    assert torch.allclose(firsts, torch.tensor([0.0, 64.0, 128.0]), atol=1)
    tall = EvalTransform(16, num_views=3).positions(40, 16)
    assert tall == [(0, 0), (12, 0), (24, 0)]  # top / middle / bottom


def test_dataset_items_videos_and_images(synth_dir, tmp_path):
    build_index(synth_dir, tmp_path / "i.parquet", workers=1, progress=False)
    videos = read_index(tmp_path / "i.parquet", task="motion", split="train")
    ds = ClipDataset(videos, 8, 2, num_clips=2, transform=EvalTransform(32, num_views=2))
    item = ds[0]
    assert item["video"].shape == (2, 2, 3, 8, 32, 32)
    assert item["label"] == videos[0]["label"] and item["index"] == 0 and not item["skipped"]
    raw = ClipDataset(videos, 8, 2)[1]["video"]  # no transform: [0, 1] floats
    expect = read_frames(videos[1]["path"], clip_indices(16, 8, 2)[0])
    assert torch.allclose(raw[0, 0], torch.from_numpy(expect).permute(3, 0, 1, 2).float() / 255)
    images = read_index(tmp_path / "i.parquet", task="image")
    still = ClipDataset(images, 4, 2)[0]["video"]
    assert still.shape == (1, 1, 3, 4, 32, 32) and torch.equal(
        still[..., :1, :, :].expand_as(still), still
    )
    batch = collate([ds[0], ds[1]])
    assert batch["video"].shape[0] == 2 and batch["label"].dtype == torch.long


def test_random_clips_are_reproducible_per_seed_and_epoch(synth_dir, tmp_path):
    build_index(synth_dir, tmp_path / "i.parquet", workers=1, progress=False)
    recs = read_index(tmp_path / "i.parquet", task="motion")
    kw = dict(frames_per_clip=4, frame_step=2, random_clip=True, transform=TrainTransform(16))
    a, b = ClipDataset(recs, seed=1, **kw), ClipDataset(recs, seed=1, **kw)
    assert torch.equal(a[2]["video"], b[2]["video"])
    b.set_epoch(1)
    assert not torch.equal(a[2]["video"], b[2]["video"])


def test_file_deleted_after_indexing_is_skipped_and_counted(synth_dir, tmp_path):
    local = tmp_path / "data"
    shutil.copytree(synth_dir, local)
    build_index(local, tmp_path / "i.parquet", workers=1, progress=False)
    recs = read_index(tmp_path / "i.parquet", task="motion", split="train")
    gone = recs[2]["path"]
    os.unlink(gone)
    ds = ClipDataset(recs, 4, 2)
    items = [ds[i] for i in range(len(ds))]
    assert items[2]["skipped"] and items[2]["index"] == 3 and items[2]["label"] == recs[3]["label"]
    assert sum(it["skipped"] for it in items) == 1
    assert ds.skipped_count == 1 and ds.failed[0][0] == gone
    assert gone in ds.failure_report()
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate)
    assert sum(int(b["skipped"].sum()) for b in loader) == 1


def test_all_files_failing_is_a_clear_error_not_a_loop(tmp_path):
    recs = [
        {"path": str(tmp_path / f"gone{i}.mp4"), "label": 0, "num_frames": 16} for i in range(20)
    ]
    ds = ClipDataset(recs, 4, 2, max_attempts=5)
    with pytest.raises(DataError, match="5 consecutive samples failed"):
        ds[0]
    assert ds.skipped_count == 5


def test_unprobed_records_read_like_probed_ones_and_broken_files_are_skipped(bad_tree, tmp_path):
    good = sorted(p for p in bad_tree.glob("*/v*.mp4"))
    csv = tmp_path / "acts.csv"
    lines = [f"{p} {i}" for i, p in enumerate(good[:2])]
    lines += [f"{bad_tree / 'walk' / 'empty.mp4'} 0", f"{bad_tree / 'run' / 'notes.mp4'} 1"]
    lines += [f"{good[2]} 2", f"{bad_tree / 'walk' / 'still.png'} 3"]
    csv.write_text("\n".join(lines) + "\n")
    build_dataset_index("acts", {"train": [csv]}, tmp_path / "none", probe="none")
    build_dataset_index("acts", {"train": [csv]}, tmp_path / "full", probe="full", workers=1)
    unprobed = read_index(tmp_path / "none" / "index.parquet", task="acts", split="train")
    probed = read_index(tmp_path / "full" / "index.parquet", task="acts", split="train")
    assert len(unprobed) == 6 and len(probed) == 4  # the probe dropped the two broken files
    kw = dict(frames_per_clip=4, frame_step=3, num_clips=2, random_clip=True, target_fps=4.0)
    lazy, known = ClipDataset(unprobed, **kw), ClipDataset(probed, **kw)
    items = [lazy[i] for i in range(len(lazy))]
    assert [it["index"] for it in items] == [0, 1, 4, 4, 4, 5]
    assert [it["skipped"] for it in items] == [False, False, True, True, False, False]
    assert lazy.skipped_count == 3  # item 2: empty.mp4 then notes.mp4; item 3: notes.mp4
    assert {p for p, _ in lazy.failed} == {str(bad_tree / "walk" / "empty.mp4"),
                                           str(bad_tree / "run" / "notes.mp4")}  # fmt: skip
    # the frame count read from the file gives the clips the probe would have given
    for i_lazy, i_known in ((0, 0), (1, 1), (4, 2), (5, 3)):
        assert unprobed[i_lazy]["path"] == probed[i_known]["path"]
        assert torch.equal(lazy.load(i_lazy), known.load(i_known))


def test_count_frames_without_a_header_count(tmp_path):
    import av

    frames = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w", format="matroska") as c:
        s = c.add_stream("libx264", rate=8)
        s.width = s.height = 32
        s.pix_fmt = "yuv420p"
        for i, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    with av.open(str(path)) as c:
        assert not c.streams.video[0].frames  # Matroska stores no frame count
    assert count_frames(str(path)) == (12, 8.0)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match="empty file"):
        count_frames(str(tmp_path / "empty.mp4"))


# ---------------------------------------------------------------------------------------------
# the columnar record table


def _index_table(path):
    import pyarrow.parquet as pq

    return pq.read_table(path)


def _assert_same_rows(table: ClipRecords, rows: list[dict]) -> None:
    assert len(table) == len(rows)
    for got, row in zip(table, rows, strict=True):
        assert got == {k: row.get(k) for k in FIELDS}
        for k in ("label", "num_frames"):
            assert type(got[k]) is type(row[k])


def test_records_round_trip_probed_index_rows(synth_dir, tmp_path):
    build_index(synth_dir, tmp_path / "i.parquet", workers=1, progress=False)
    rows = read_index(tmp_path / "i.parquet", ok_only=False)
    assert {r["media"] for r in rows} == {"video", "image"}
    assert all(r["num_frames"] and r["fps"] for r in rows if r["media"] == "video")
    assert any(r["group"] for r in rows)
    for table in (
        ClipRecords.from_rows(rows),
        ClipRecords.from_arrow(_index_table(tmp_path / "i.parquet")),
        pickle.loads(pickle.dumps(ClipRecords.from_rows(rows))),  # as a spawned worker gets it
    ):
        _assert_same_rows(table, rows)
    assert ClipRecords.from_rows(rows)[-1] == ClipRecords.from_rows(rows)[len(rows) - 1]
    with pytest.raises(IndexError):
        ClipRecords.from_rows(rows)[len(rows)]


def test_records_round_trip_unprobed_rows_with_null_facts(bad_tree, tmp_path):
    csv = tmp_path / "acts.csv"
    files = sorted(bad_tree.glob("*/*.*"))
    csv.write_text("".join(f"{p} {i % 3}\n" for i, p in enumerate(files)))
    build_dataset_index("acts", {"train": [csv]}, tmp_path / "none", probe="none")
    rows = read_index(tmp_path / "none" / "index.parquet", task="acts", split="train")
    assert len(rows) == len(files) and all(r["num_frames"] is None for r in rows)
    assert all(r["fps"] is None and r["group"] is None for r in rows)
    _assert_same_rows(ClipRecords.from_rows(rows), rows)
    _assert_same_rows(
        ClipRecords.from_arrow(_index_table(tmp_path / "none" / "index.parquet")), rows
    )


def test_records_keep_unicode_spaces_and_undecodable_names(synth_dir, tmp_path):
    root = tmp_path / "tree"
    names = ["ünï cödé", "日本 語", "plain"]
    videos = sorted((synth_dir / "videos" / "train").glob("*.mp4"))[:3]
    for name, src in zip(names, videos, strict=True):
        (root / name).mkdir(parents=True)
        shutil.copy(src, root / name / f"a b ✓ {name}.mp4")
    build_index(root, tmp_path / "u.parquet", workers=1, progress=False)
    rows = read_index(tmp_path / "u.parquet")
    assert len(rows) == 3 and any(" " in r["path"] and "✓" in r["path"] for r in rows)
    _assert_same_rows(ClipRecords.from_rows(rows), rows)
    _assert_same_rows(ClipRecords.from_arrow(_index_table(tmp_path / "u.parquet")), rows)
    odd = [{"path": os.fsdecode(b"/data/caf\xe9 \xff.mp4"), "label": 2}, {"path": "", "label": 0}]
    assert [r["path"] for r in ClipRecords.from_rows(odd)] == [odd[0]["path"], ""]
    new, old = ClipDataset(rows, 4, 2), _as_list(rows, 4, 2)
    for i in range(3):  # the files behind those names read like any other
        assert torch.equal(new[i]["video"], old[i]["video"]) and not new[i]["skipped"]


def test_records_defaults_and_errors():
    table = ClipRecords.from_rows([{"path": "a.mp4"}, {"path": "b.png", "label": None}])
    assert table[0] == dict.fromkeys(FIELDS) | {"path": "a.mp4", "label": -1}
    assert table[1]["label"] is None  # a null label stays null (ClipDataset fails on it, as ever)
    with pytest.raises(DataError, match="row 1 has no path"):
        ClipRecords.from_rows([{"path": "a.mp4"}, {"label": 1}])
    with pytest.raises(DataError, match="column label"):
        ClipRecords.from_rows([{"path": "a.mp4", "label": "walk"}])
    with pytest.raises(DataError, match="no records"):
        ClipDataset([])


def _as_list(records, *args, **kwargs) -> ClipDataset:
    """The dataset as it was: records kept as the given list of dicts."""
    ds = ClipDataset(records, *args, **kwargs)
    ds.records = list(records)
    return ds


def _assert_same_items(index, task: str, **kw) -> None:
    """Every item, two epochs, of the list-of-dicts dataset and of one given each input kind."""
    import pyarrow.compute as pc

    rows = read_index(index, task=task)
    arrow = _index_table(index)
    arrow = arrow.filter(pc.equal(arrow.column("task"), task))
    assert arrow.column("path").to_pylist() == [r["path"] for r in rows]
    old = _as_list(rows, **kw)
    for given in (rows, ClipRecords.from_rows(rows), arrow):
        ds = ClipDataset(given, **kw)
        assert isinstance(ds.records, ClipRecords) and len(ds) == len(old)
        old.failed.clear()
        old.skipped_count = 0
        for epoch in (0, 1):
            old.set_epoch(epoch)
            ds.set_epoch(epoch)
            for i in range(len(ds)):
                a, b = old[i], ds[i]
                assert torch.equal(a.pop("video"), b.pop("video")) and a == b
        assert ds.failed == old.failed and ds.skipped_count == old.skipped_count > 0


def test_dataset_items_unchanged_by_the_table_probed(synth_dir, tmp_path):
    local = tmp_path / "data"
    shutil.copytree(synth_dir, local)
    build_index(local, tmp_path / "i.parquet", workers=1, progress=False)
    os.unlink(read_index(tmp_path / "i.parquet", task="motion")[3]["path"])  # skipped when read
    kw = dict(frames_per_clip=4, frame_step=2, num_clips=2, random_clip=True, seed=5)
    _assert_same_items(tmp_path / "i.parquet", "motion", transform=TrainTransform(16), **kw)


def test_dataset_items_unchanged_by_the_table_unprobed(bad_tree, tmp_path):
    csv = tmp_path / "acts.csv"
    files = sorted(bad_tree.glob("*/*.*"))  # 4 videos, an image and 4 broken files
    csv.write_text("".join(f"{p} {i % 3}\n" for i, p in enumerate(files)))
    build_dataset_index("acts", {"train": [csv]}, tmp_path / "none", probe="none")
    kw = dict(frames_per_clip=4, frame_step=3, num_clips=2, random_clip=True, target_fps=4.0)
    _assert_same_items(tmp_path / "none" / "index.parquet", "acts", **kw)
