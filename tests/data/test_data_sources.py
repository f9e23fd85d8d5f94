"""Data sources: reference CSVs and class-per-folder trees, checked with one-line errors."""

from __future__ import annotations

import json
import re
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vjepa.data.sources import inspect_source, iter_chunks, iter_entries
from vjepa.data.video import write_png
from vjepa.errors import DataError


def write_jpeg(path: Path, image: np.ndarray) -> None:
    """A real baseline JPEG, encoded with PyAV's mjpeg encoder."""
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = image.shape[1], image.shape[0], "yuvj420p"
    ctx.time_base = Fraction(1, 1)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj420p")
    frame.pts = 0
    path.write_bytes(b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None)))


def one_line_error(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("videos/b.mp4", "expected '<path> <int label>'"),  # no label
        ("videos/b.mp4 walk", "label 'walk' is not an integer"),
        ("videos/b.mp4 -3", "label -3 is negative"),
        ("videos/b c.mp4 x", "label 'x' is not an integer"),  # three fields, last not a label
        ("videos/b.mp4 2.5", "label '2.5' is not an integer"),
    ],
)
def test_bad_csv_line_names_file_and_line(tmp_path, line, reason):
    csv = tmp_path / "k400_train.csv"
    csv.write_text(f"videos/a.mp4 0\n\n{line}\nvideos/c.mp4 1\n")
    with pytest.raises(DataError) as exc:
        inspect_source(csv)
    assert one_line_error(exc).startswith(f"{csv}:3: ") and reason in str(exc.value)


def test_empty_csv_has_no_rows(tmp_path):
    for text in ("", "\n  \n\n"):
        csv = tmp_path / "empty.csv"
        csv.write_text(text)
        with pytest.raises(DataError, match=re.escape(f"{csv}: no rows")) as exc:
            inspect_source(csv)
        one_line_error(exc)


def test_missing_source_and_non_csv_file(tmp_path):
    with pytest.raises(
        DataError, match=re.escape(f"{tmp_path / 'nope.csv'}: data source not found")
    ):
        inspect_source(tmp_path / "nope.csv")
    listing = tmp_path / "train.txt"
    listing.write_text("a.mp4 0\n")
    with pytest.raises(DataError, match=re.escape(f"{listing}: not a .csv file")) as exc:
        inspect_source(listing)
    one_line_error(exc)


def test_tree_without_class_folders_or_media(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.mp4").write_bytes(b"")  # files at the top are not a class tree
    with pytest.raises(DataError) as exc:
        inspect_source(flat)
    assert one_line_error(exc) == f"{flat}: no class folders (expected ROOT/<class>/<file>)"
    empty = tmp_path / "empty"
    (empty / "walk" / "deep").mkdir(parents=True)
    (empty / "run").mkdir()
    (empty / "run" / "notes.txt").write_text("no media here\n")
    with pytest.raises(DataError) as exc:
        inspect_source(empty)
    assert one_line_error(exc) == f"{empty}: no video or image files under its class folders"
    splits = tmp_path / "k400"
    (splits / "train" / "walk").mkdir(parents=True)
    (splits / "val").mkdir()
    with pytest.raises(DataError, match="split folders .*give each split its own source"):
        inspect_source(splits)


def test_csv_paths_with_spaces_and_relative_to_the_csv_folder(tmp_path, monkeypatch):
    folder = tmp_path / "lists"
    folder.mkdir()
    csv = folder / "train.csv"
    csv.write_text(
        "clips/a b c.mp4 3\n"  # spaces in the path: the label is after the last space
        "./clips/d.mp4 0\n"
        "../videos/e.mp4 1\n"
        "/abs/f g.mp4 12\n"
        "\n"
    )
    monkeypatch.chdir(tmp_path)  # relative to the CSV, not to the working directory
    info = inspect_source(Path("lists") / "train.csv")
    assert (info.path, info.kind, info.rows, info.max_label, info.classes) == (
        str(csv),
        "csv",
        4,
        12,
        (),
    )
    entries = list(iter_entries(info, "k400", "train"))
    assert [e.path for e in entries] == [
        f"{folder}/clips/a b c.mp4",
        f"{folder}/clips/d.mp4",
        f"{folder}/../videos/e.mp4",  # like pathlib: ".." is kept
        "/abs/f g.mp4",
    ]
    assert [e.label for e in entries] == [3, 0, 1, 12]
    assert {(e.task, e.split, e.label_name) for e in entries} == {("k400", "train", None)}
    chunks = list(iter_chunks(info, size=3))
    assert [len(c[0]) for c in chunks] == [3, 1] and chunks[0][2] is None


def test_inspect_cache_is_used_until_the_csv_changes(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_text("a.mp4 0\nb.mp4 4\n")
    cache = tmp_path / "cache"
    assert inspect_source(csv, cache_dir=cache).rows == 2
    (entry,) = cache.glob("*.json")
    body = json.loads(entry.read_text())
    body["info"]["rows"] = 99  # only a cached answer can say 99
    entry.write_text(json.dumps(body))
    assert inspect_source(csv, cache_dir=cache).rows == 99
    assert inspect_source(csv).rows == 2  # no cache_dir: always read
    with open(csv, "a") as fh:
        fh.write("c.mp4 7\n")
    info = inspect_source(csv, cache_dir=cache)
    assert (info.rows, info.max_label) == (3, 7)  # changed: read again, cache refreshed
    assert json.loads(entry.read_text())["info"]["rows"] == 3
    entry.write_text("{not json")
    assert inspect_source(csv, cache_dir=cache).rows == 3  # a corrupt cache file is ignored


def test_imagenet_like_folder_is_images(tmp_path):
    root = tmp_path / "imagenet" / "train"
    rng = np.random.default_rng(0)
    for wnid in ("n01440764", "n01443537"):
        (root / wnid).mkdir(parents=True)
        for i in range(2):
            write_jpeg(
                root / wnid / f"{wnid}_{i}.JPEG", rng.integers(0, 256, (16, 16, 3), np.uint8)
            )
    write_png(root / "n01443537" / "extra.png", np.zeros((16, 16, 3), np.uint8))
    (root / "n01443537" / "._n01443537_0.JPEG").write_bytes(b"")  # hidden: not listed
    (root / ".cache").mkdir()
    info = inspect_source(root)
    assert (info.kind, info.rows, info.max_label) == ("images", -1, None)
    assert info.classes == ("n01440764", "n01443537")
    entries = list(iter_entries(info, "in1k", "train"))
    assert [Path(e.path).name for e in entries] == [
        "n01440764_0.JPEG",
        "n01440764_1.JPEG",
        "extra.png",
        "n01443537_0.JPEG",
        "n01443537_1.JPEG",
    ]
    assert [e.label for e in entries] == [0, 0, 1, 1, 1]
    assert entries[0].label_name == "n01440764" and entries[0].path.startswith(str(root))


def test_video_tree_with_stills_is_videos_and_labels_follow_given_classes(synth_dir, tmp_path):
    root = tmp_path / "val"
    (root / "walk" / "part1").mkdir(parents=True)
    video = next((synth_dir / "videos" / "train").glob("*.mp4"))
    shutil.copy(video, root / "walk" / "part1" / "b.mp4")
    shutil.copy(next((synth_dir / "images" / "train").glob("*.png")), root / "walk" / "a.png")
    (root / "walk" / "readme.txt").write_text("not media\n")
    info = inspect_source(root)
    assert info.kind == "videos" and info.classes == ("walk",)
    entries = list(iter_entries(info, "k", "val", classes=("jump", "run", "walk")))
    assert [(Path(e.path).name, e.label, e.label_name) for e in entries] == [
        ("a.png", 2, "walk"),  # the folder's files first, then its subfolders (sorted)
        ("b.mp4", 2, "walk"),
    ]
    assert [e.label for e in iter_entries(info, "k", "val")] == [0, 0]  # its own classes
