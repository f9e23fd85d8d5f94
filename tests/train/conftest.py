"""The tiny synthetic index the training tests share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    """12 synthetic 16-frame 32x32 videos (8 in train) and their index."""
    from vjepa.data.index import build_index
    from vjepa.data.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("synth")
    generate(SynthConfig(videos=12, images=0, seed=3), out, workers=1, progress=False)
    build_index(out, out / "index.parquet", workers=1)
    return out / "index.parquet"
