"""The data index: every bad file listed with its reason, re-indexing probes nothing."""

from __future__ import annotations

import os

import pytest

from vjepa.data.index import build_index, read_index, split_from_name
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
