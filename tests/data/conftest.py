"""Fixtures for the data tests: tiny real datasets written with PyAV (no mocks)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from vjepa.data.synth import SynthConfig, generate

torch.set_num_threads(1)

TINY = dict(videos=12, images=6, resolution=32, frames=16)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A 12-video, 6-image benchmark (32x32, 16 frames), generated once per session."""
    out = tmp_path_factory.mktemp("synth")
    generate(SynthConfig(**TINY, seed=3), out, workers=1, progress=False)
    return out


def _faststart_truncated(src_frames, path: Path) -> None:
    """An mp4 with its header first (faststart), cut to 2/3: opens, but frames are missing."""
    import av

    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=8)
        s.width = s.height = src_frames.shape[1]
        s.pix_fmt = "yuv444p"
        s.options = {"x264-params": "keyint=4"}
        for i, rgb in enumerate(src_frames):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


@pytest.fixture()
def bad_tree(synth_dir, tmp_path) -> Path:
    """ROOT/<class>/ with 4 good videos, an image, and 4 kinds of broken .mp4 file."""
    from vjepa.data.synth import render_item

    root = tmp_path / "tree"
    good = sorted((synth_dir / "videos" / "train").glob("*.mp4"))[:4]
    (root / "walk").mkdir(parents=True)
    (root / "run").mkdir()
    for i, p in enumerate(good):
        shutil.copy(p, root / ("walk" if i < 2 else "run") / p.name)
    shutil.copy(next((synth_dir / "images" / "train").glob("*.png")), root / "walk" / "still.png")
    (root / "walk" / "empty.mp4").write_bytes(b"")
    (root / "run" / "notes.mp4").write_text("these are not frames\n")
    (root / "run" / "cut.mp4").write_bytes(good[0].read_bytes()[:2000])
    _faststart_truncated(
        render_item(SynthConfig(frames=32), "video", 0), root / "walk" / "cut_fs.mp4"
    )
    return root
