"""The paper-layout builder writes what it promises: real, varied, decodable media; broken files
that fail to probe; CSVs in the reference format."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import av
import numpy as np
import pytest
from paper_layout import build_paper_layout

from vjepa.data.video import probe, read_frames, read_image

VIDEO_SETS = ("k400", "ssv2", "k710", "howto100m")


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> dict:
    return build_paper_layout(tmp_path_factory.mktemp("paper"), seed=0)


def _csv_lines(root: Path, dataset: str, split: str) -> list[tuple[str, str]]:
    text = (root / dataset / f"{split}.csv").read_text()
    assert text.endswith("\n")
    return [tuple(line.rpartition(" ")[::2]) for line in text.splitlines()]


def _stream_facts(path: Path) -> dict:
    """Container, pix_fmt and every frame's pts, decoded with PyAV directly."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        pts = [f.pts for f in c.decode(s)]
        return {
            "format": c.format.name,
            "pix_fmt": s.codec_context.pix_fmt,
            "pts": pts,
            "time_base": s.time_base,
        }


def test_layout_files_and_counts(layout):
    root = layout["root"]
    for name in ("k400", "ssv2"):
        for split in ("train", "val"):
            assert (root / name / f"{split}.csv").is_file()
    for name in ("k710", "howto100m"):
        assert (root / name / "train.csv").is_file()
    ds = layout["datasets"]
    # 3 classes x 6 train / 2 val; K400 train also lists 3 broken files, SSv2 3 + 1 missing
    assert ds["k400"] == {"classes": 3, "train": 21, "val": 6, "good": {"train": 18, "val": 6}}
    assert ds["ssv2"] == {"classes": 3, "train": 22, "val": 6, "good": {"train": 18, "val": 6}}
    assert ds["in1k"]["train"] == 18 and ds["in1k"]["val"] == 6
    assert ds["k710"]["train"] == 18 and ds["howto100m"]["train"] == 18
    assert len(layout["files"]) == 18 * 5 + 6 * 3
    assert len(layout["broken"]) == 6 and len(layout["missing"]) == 1


def test_csv_lines_are_reference_format(layout):
    root = layout["root"]
    listed_bad = set(layout["broken"]) | set(layout["missing"])
    spaced = 0
    for name in VIDEO_SETS:
        for split in ("train", "val") if name in ("k400", "ssv2") else ("train",):
            lines = _csv_lines(root, name, split)
            assert len(lines) == layout["datasets"][name][split]
            for path, label in lines:
                assert re.fullmatch(r"\d+", label), label  # no header line
                assert path and path == path.strip() and "  " not in path
                assert not Path(path).is_absolute()
                full = root / name / path
                rel = f"{name}/{path}"
                assert full.is_file() or rel in layout["missing"], rel
                assert split == "train" or rel not in listed_bad
                spaced += " " in path
            labels = [int(label) for _, label in lines]
            if name == "howto100m":
                assert set(labels) == {0}
            else:
                assert set(labels) == set(range(layout["datasets"][name]["classes"]))
    assert spaced >= 2  # K400 class folders ("air drumming") and one file name ("... 1.mp4")
    assert any(re.search(r" \d\.mp4$", p) for p, _ in _csv_lines(root, "k400", "train"))
    bad_sets = {p.split("/")[0] for p in layout["broken"] + layout["missing"]}
    assert bad_sets == {"k400", "ssv2"}


def test_in1k_tree(layout):
    root = layout["root"] / "in1k"
    for split in ("train", "val"):
        wnids = sorted(p.name for p in (root / split).iterdir())
        assert wnids == layout["datasets"]["in1k"]["wnids"]
        assert all(re.fullmatch(r"n\d{8}", w) for w in wnids)
        exts = {p.suffix for p in (root / split).rglob("*.*")}
        assert exts == {".JPEG", ".png"}
    sizes = set()
    for f in (f for f in layout["files"] if f["media"] == "image"):
        img = read_image(layout["root"] / f["path"])
        assert img.shape == (f["height"], f["width"], 3)
        assert probe(layout["root"] / f["path"])["codec"] == f["codec"]
        sizes.add(img.shape[:2])
    assert any(h % 2 or w % 2 for h, w in sizes) and len(sizes) > 2


def test_every_good_video_decodes_as_promised(layout):
    root = layout["root"]
    for f in (f for f in layout["files"] if f["media"] == "video"):
        path = root / f["path"]
        info = probe(path)
        facts = _stream_facts(path)
        assert len(facts["pts"]) == info["num_frames"] == f["frames"] >= 16, f["path"]
        assert (info["codec"], info["width"], info["height"]) == (
            f["codec"],
            f["width"],
            f["height"],
        ), f["path"]
        assert facts["pix_fmt"] == f["pix_fmt"], f["path"]
        assert path.suffix == "." + f["container"]
        if not f["vfr"]:
            assert info["fps"] == pytest.approx(f["fps"], rel=1e-3), f["path"]
        clip = read_frames(path, range(16))
        assert clip.shape == (16, f["height"], f["width"], 3)
        assert clip.std() > 5  # real content, not a blank frame


def test_promised_variety_is_present(layout):
    root = layout["root"]
    videos = [f for f in layout["files"] if f["media"] == "video"]
    infos = {f["path"]: probe(root / f["path"]) for f in videos}
    assert {i["codec"] for i in infos.values()} == {"h264", "mpeg4", "vp9"}
    pix = {(i["codec"], _stream_facts(root / p)["pix_fmt"]) for p, i in infos.items()}
    assert {("h264", "yuv420p"), ("h264", "yuv444p"), ("vp9", "yuv420p")} <= pix
    formats = {_stream_facts(root / p)["format"].split(",")[0] for p in infos}
    assert {"avi", "matroska", "mov"} <= formats  # webm demuxes as "matroska,webm"
    assert {Path(p).suffix for p in infos} == {".mp4", ".avi", ".webm"}
    assert any(i["width"] % 2 for i in infos.values())
    fps = [i["fps"] for p, i in infos.items()]
    for want in (24, 25, 30000 / 1001, 60):
        assert any(abs(x - want) < 1e-3 for x in fps), want
    # every dataset mixes at least two codecs
    for name in VIDEO_SETS:
        assert len({i["codec"] for p, i in infos.items() if p.startswith(name + "/")}) >= 2


def test_vfr_file_has_irregular_pts(layout):
    (vfr,) = [f for f in layout["files"] if f.get("vfr")]
    facts = _stream_facts(layout["root"] / vfr["path"])
    gaps = np.diff(sorted(facts["pts"]))
    assert len(set(gaps.tolist())) > 1
    assert gaps.max() == 3 * gaps.min()  # alternating 1 and 3 ticks


def test_broken_files_fail_to_probe(layout):
    root = layout["root"]
    kinds = layout["broken_kinds"]
    assert sorted(kinds) == layout["broken"]
    assert sorted(kinds.values()) == sorted(
        ["empty", "empty", "text", "text", "truncated", "truncated-faststart"]
    )
    for rel in layout["broken"]:
        assert rel.endswith(".mp4") and (root / rel).is_file()
        with pytest.raises(Exception):  # noqa: B017 - any decoder error
            probe(root / rel)
    (cut_fs,) = [p for p, k in kinds.items() if k == "truncated-faststart"]
    with av.open(str(root / cut_fs)) as c:  # opens (header first), but frames are missing
        assert c.streams.video
    for rel in layout["missing"]:
        assert not (root / rel).exists()


def test_content_tells_the_class(layout):
    """A nearest-centroid probe on the mean colour of saturated pixels, train -> val, beats
    chance on K400 (classes are object colours; background and distractor are grey)."""
    root = layout["root"]

    def features(split: str):
        xs, ys = [], []
        for f in layout["files"]:
            if f["dataset"] == "k400" and f["split"] == split:
                px = read_frames(root / f["path"], [0, 8]).reshape(-1, 3).astype(float)
                vivid = px[px.max(1) - px.min(1) > 80]
                xs.append(vivid.mean(0))
                ys.append(f["label"])
        return np.array(xs), np.array(ys)

    xt, yt = features("train")
    xv, yv = features("val")
    centroids = np.stack([xt[yt == c].mean(0) for c in range(3)])
    pred = np.argmin(((xv[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (pred == yv).mean() > 0.6


def test_motion_tells_the_class(layout):
    """SSv2 classes are directions of motion: the shift of the vivid (labelled) object between
    two frames, found by phase correlation on the torus, names the class."""
    root = layout["root"]
    hits = []
    for f in layout["files"]:
        if f["dataset"] != "ssv2":
            continue
        px = read_frames(root / f["path"], [0, 6]).astype(float)
        vivid = (px.max(-1) - px.min(-1) > 80).astype(float)
        cross = np.fft.fft2(vivid[1]) * np.conj(np.fft.fft2(vivid[0]))
        corr = np.real(np.fft.ifft2(cross / (np.abs(cross) + 1e-9)))
        h, w = corr.shape
        dy, dx = np.unravel_index(corr.argmax(), corr.shape)
        dy, dx = (dy + h // 2) % h - h // 2, (dx + w // 2) % w - w // 2
        angle = np.arctan2(dy, dx) % (2 * np.pi)
        hits.append(int(np.round(angle / (2 * np.pi / 3))) % 3 == f["label"])
    assert np.mean(hits) > 0.8


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path):
    small = dict(videos_per_class=1, val_per_class=1, classes=2)
    a = build_paper_layout(tmp_path / "a", seed=4, **small)
    b = build_paper_layout(tmp_path / "b", seed=4, **small)
    c = build_paper_layout(tmp_path / "c", seed=5, **small)
    assert a["datasets"] == b["datasets"] and a["broken"] == b["broken"]
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert set(_digest(tmp_path / "a")) != set(_digest(tmp_path / "c"))  # other file names
    assert c["datasets"] == a["datasets"]  # same counts


def test_bad_arguments():
    with pytest.raises(ValueError, match="classes"):
        build_paper_layout(Path("unused"), classes=7)
