"""The data index: every bad file listed with its reason, re-indexing probes nothing, datasets
of CSV and folder sources indexed with or without probing."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from vjepa.data.index import (
    build_dataset_index,
    build_index,
    dataset_classes,
    read_index,
    split_from_name,
)
from vjepa.data.sources import inspect_source
from vjepa.errors import DataError


def test_folder_index_lists_every_bad_file_with_reason(bad_tree, tmp_path):
    out = tmp_path / "index.parquet"
    summary = build_index(bad_tree, out, workers=2, progress=False)
    rows = {os.path.basename(r["path"]): r for r in read_index(out, ok_only=False)}
    bad = {name: r["error"] for name, r in rows.items() if r["status"] == "bad"}
    assert set(bad) == {"empty.mp4", "notes.mp4", "cut.mp4", "cut_fs.mp4"}
    assert "empty" in bad["empty.mp4"]
    assert "moov atom not found" in bad["notes.mp4"]  # no mp4 header at all
    assert "moov atom not found" in bad["cut.mp4"]  # the header was at the end, cut off
    assert "truncated" in bad["cut_fs.mp4"]  # header first, frames missing
    assert rows["still.png"]["status"] == "ok" and rows["still.png"]["media"] == "image"
    assert rows["still.png"]["num_frames"] == 1
    good = [r for r in rows.values() if r["status"] == "ok" and r["media"] == "video"]
    assert len(good) == 4 and all(r["num_frames"] == 16 and r["codec"] == "h264" for r in good)
    assert {r["label_name"] for r in rows.values()} == {"run", "walk"}
    assert summary.bad == 4 and summary.ok == 5 and len(summary.bad_files) == 4
    assert len(read_index(out)) == 5  # ok_only by default


def test_reindex_unchanged_source_probes_nothing(bad_tree, tmp_path):
    out = tmp_path / "index.parquet"
    first = build_index(bad_tree, out, workers=1, progress=False)
    assert first.probed == 9 and first.reused == 0
    again = build_index(bad_tree, out, workers=1, progress=False)
    assert again.probed == 0 and again.reused == 9
    assert read_index(out, ok_only=False) == read_index(out, ok_only=False)
    # one changed file is probed again, the rest reused
    (bad_tree / "walk" / "empty.mp4").write_bytes(b"x")
    third = build_index(bad_tree, out, workers=1, progress=False)
    assert third.probed == 1 and third.reused == 8


def test_synth_index_has_one_row_per_file_and_task(synth_dir, tmp_path):
    out = tmp_path / "index.parquet"
    summary = build_index(synth_dir, out, workers=1, progress=False)
    assert summary.files == 18 and summary.rows == 12 * 2 + 6 and summary.bad == 0
    motion = read_index(out, task="motion")
    appearance = read_index(out, task="appearance")
    assert len(motion) == len(appearance) == 12
    assert [r["path"] for r in motion] == [r["path"] for r in appearance]
    assert {r["split"] for r in read_index(out, task="image")} == {"train", "val", "test"}
    assert all(r["label_name"] for r in motion)
    # a clip and its time-reversed partner share a group and carry opposite motion labels
    by_group: dict = {}
    for r in motion:
        by_group.setdefault(r["group"], []).append(r)
    assert all(len(pair) == 2 for pair in by_group.values()) and len(by_group) == 6
    assert all(a["label"] != b["label"] and a["split"] == b["split"] for a, b in by_group.values())
    with pytest.raises(DataError, match="no task 'speed'"):
        read_index(out, task="speed")


def test_csv_source_takes_task_and_split_from_its_name(synth_dir, tmp_path):
    csv = synth_dir / "csv" / "motion_val.csv"
    out = tmp_path / "index.parquet"
    build_index(csv, out, workers=1, progress=False)
    rows = read_index(out)
    assert (
        rows and {r["task"] for r in rows} == {"motion"} and {r["split"] for r in rows} == {"val"}
    )
    other = tmp_path / "clips.csv"
    other.write_text(csv.read_text())
    build_index(other, tmp_path / "other.parquet", workers=1, split="test", progress=False)
    assert {(r["task"], r["split"]) for r in read_index(tmp_path / "other.parquet")} == {
        ("clips", "test")
    }


def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        build_index(tmp_path / "missing", tmp_path / "i.parquet", progress=False)
    bad_csv = tmp_path / "x_train.csv"
    bad_csv.write_text("some/path.mp4 notalabel\n")
    with pytest.raises(DataError, match=r"x_train.csv:1:"):
        build_index(bad_csv, tmp_path / "i.parquet", progress=False)
    with pytest.raises(DataError, match="index not found"):
        read_index(tmp_path / "nothing.parquet")
    assert not (tmp_path / "i.parquet").exists()


def test_split_from_name():
    assert split_from_name("motion_train") == "train"
    assert split_from_name("val") == "val"
    assert split_from_name("k400-test.csv") == "test"
    assert split_from_name("training") is None


# ---------------------------------------------------------------------------------------------
# datasets of sources (build_dataset_index)


def listed_csv(bad_tree, name: str = "acts_train.csv") -> Path:
    """A reference CSV (relative paths) listing 4 good videos, a still, and two broken .mp4."""
    good = sorted(p.relative_to(bad_tree) for p in bad_tree.glob("*/*.mp4") if p.stat().st_size)
    good = [p for p in good if p.name not in ("notes.mp4", "cut.mp4", "cut_fs.mp4")]
    lines = [f"{p} {i % 2}" for i, p in enumerate(good)]
    lines += ["walk/still.png 0", "walk/empty.mp4 1", "run/notes.mp4 2"]
    csv = bad_tree / name
    csv.write_text("\n".join(lines) + "\n")
    return csv


def test_probe_none_lists_rows_unprobed_and_probes_nothing(bad_tree, tmp_path):
    csv = listed_csv(bad_tree)
    summary = build_dataset_index("acts", {"train": [csv], "val": [csv]}, tmp_path, probe="none")
    assert (summary.rows, summary.unprobed, summary.probed, summary.ok, summary.bad) == (
        14, 14, 0, 0, 0,
    )  # fmt: skip
    assert summary.splits == {"train": 7, "val": 7} and summary.out == tmp_path / "index.parquet"
    rows = read_index(tmp_path / "index.parquet", split="train")
    assert len(rows) == 7 and {r["status"] for r in rows} == {"unprobed"}
    assert {r["task"] for r in rows} == {"acts"} and {r["label_name"] for r in rows} == {None}
    assert [r["media"] for r in rows] == ["video"] * 4 + ["image", "video", "video"]
    assert rows[4]["path"] == str(bad_tree / "walk" / "still.png")
    for name in ("num_frames", "fps", "duration_s", "width", "height", "codec", "bytes", "mtime"):
        assert {r[name] for r in rows} == {None}, name
    assert [r["label"] for r in rows] == [0, 1, 0, 1, 0, 1, 2]


def test_probe_full_marks_broken_listed_files_bad(bad_tree, tmp_path):
    csv = listed_csv(bad_tree)
    summary = build_dataset_index("acts", {"train": [csv]}, tmp_path, probe="full", workers=1)
    assert (summary.ok, summary.bad, summary.probed) == (5, 2, 7)
    rows = {Path(r["path"]).name: r for r in read_index(tmp_path / "index.parquet", ok_only=False)}
    assert rows["empty.mp4"]["status"] == "bad" and "empty" in rows["empty.mp4"]["error"]
    assert "moov atom not found" in rows["notes.mp4"]["error"]
    assert rows["still.png"]["status"] == "ok" and rows["still.png"]["media"] == "image"
    assert len(read_index(tmp_path / "index.parquet")) == 5  # ok_only drops the bad rows
    again = build_dataset_index("acts", {"train": [csv]}, tmp_path, probe="full", workers=1)
    assert again.probed == 0 and again.reused == 7  # a previous index is reused


def test_read_index_filters_by_task_and_split(bad_tree, tmp_path):
    csv = listed_csv(bad_tree)
    val = tmp_path / "val.csv"
    val.write_text(f"{bad_tree / 'walk' / 'still.png'} 1\n")
    build_dataset_index("acts", {"train": [csv, val], "val": [val]}, tmp_path, probe="none")
    index = tmp_path / "index.parquet"
    assert len(read_index(index, task="acts", split="train")) == 8  # sources concatenated
    (row,) = read_index(index, task="acts", split="val")
    assert row["split"] == "val" and row["label"] == 1 and row["path"].endswith("still.png")
    assert read_index(index, task="acts", split="test") == []
    assert len(read_index(index)) == 9
    with pytest.raises(DataError, match=r"no task 'k400' \(has acts\)"):
        read_index(index, task="k400")


def test_label_outside_num_classes_names_its_line(tmp_path):
    train, val = tmp_path / "train.csv", tmp_path / "val.csv"
    train.write_text("a.mp4 0\nb.mp4 2\n")
    val.write_text("c.mp4 1\n\nd.mp4 5\ne.mp4 3\n")
    infos = [inspect_source(train), inspect_source(val)]
    assert dataset_classes(infos, None, "k400") == (6, ())
    assert dataset_classes(infos, 10, "k400") == (10, ())
    with pytest.raises(DataError) as exc:
        dataset_classes(infos, 4, "k400")
    assert str(exc.value) == f"{val}:3: label 5 is outside num_classes 4"
    with pytest.raises(DataError, match=re.escape(f"{val}:3: label 5 is outside num_classes 4")):
        build_dataset_index("k400", {"train": [train], "val": [val]}, tmp_path, num_classes=4)
    assert not (tmp_path / "index.parquet").exists()


def test_tree_classes_are_unified_across_splits(bad_tree, tmp_path):
    val = tmp_path / "val"
    (val / "walk").mkdir(parents=True)
    (val / "jump").mkdir()
    shutil.copy(next((bad_tree / "walk").glob("v*.mp4")), val / "walk" / "w.mp4")
    shutil.copy(bad_tree / "walk" / "still.png", val / "jump" / "j.png")
    infos = [inspect_source(bad_tree), inspect_source(val)]
    assert dataset_classes(infos, None, "acts") == (3, ("jump", "run", "walk"))
    with pytest.raises(DataError) as exc:
        dataset_classes(infos, 2, "acts")
    assert str(exc.value) == "acts: 3 classes found, num_classes is 2"
    build_dataset_index("acts", {"train": [bad_tree], "val": [val]}, tmp_path, probe="none")
    labels = {
        (r["split"], r["label_name"], r["label"])
        for r in read_index(tmp_path / "index.parquet", task="acts")
    }
    assert labels == {
        ("train", "run", 1), ("train", "walk", 2), ("val", "jump", 0), ("val", "walk", 2),
    }  # fmt: skip
    with pytest.raises(DataError, match="mixes CSV and folder sources"):
        dataset_classes([*infos, inspect_source(listed_csv(bad_tree))], None, "acts")


def test_dataset_index_bad_arguments(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_text("a.mp4 0\n")
    with pytest.raises(DataError, match="probe must be one of full, none"):
        build_dataset_index("k", {"train": [csv]}, tmp_path, probe="some")
    with pytest.raises(DataError, match=r"k\.val: no data sources"):
        build_dataset_index("k", {"train": [csv], "val": []}, tmp_path)
    with pytest.raises(DataError, match="data source not found"):
        build_dataset_index("k", {"train": [tmp_path / "missing.csv"]}, tmp_path)
    build_dataset_index("k", {"train": [csv]}, tmp_path / "named.parquet", probe="none")
    assert len(read_index(tmp_path / "named.parquet")) == 1  # out may name the index file


KILLED_BUILD = """
import sys
from vjepa.data.index import build_dataset_index
build_dataset_index("k400", {"train": [sys.argv[1]]}, sys.argv[2], probe="full", workers=1)
"""


def test_killed_probing_build_resumes_from_its_journal(synth_dir, tmp_path):
    """Chunk 1 (2048 rows) is journalled; killed during chunk 2, the rebuild probes only chunk 2."""
    import signal
    import subprocess
    import sys
    import time

    from vjepa.data.index import CHUNK, journal_dir, read_index

    video = next((synth_dir / "videos" / "train").glob("*.mp4"))
    links = tmp_path / "videos"
    links.mkdir()
    rows = CHUNK + 300
    for i in range(rows):  # distinct names: each one is probed
        (links / f"v{i:05d}.mp4").symlink_to(video)
    csv = tmp_path / "train.csv"
    csv.write_text("".join(f"videos/v{i:05d}.mp4 {i % 3}\n" for i in range(rows)))
    out = tmp_path / "idx"
    child = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(csv), str(out)])
    journal = journal_dir(out / "index.parquet")
    deadline = time.monotonic() + 120
    while not list(journal.glob("*.parquet")):
        assert child.poll() is None and time.monotonic() < deadline, "build ended before a chunk"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (out / "index.parquet").exists()  # nothing half-published

    summary = build_dataset_index("k400", {"train": [str(csv)]}, out, probe="full", workers=1)
    assert summary.reused >= CHUNK and summary.probed <= rows - CHUNK
    assert summary.rows == rows and summary.ok == rows
    assert not journal.exists()
    assert len(read_index(out / "index.parquet", task="k400", split="train")) == rows
