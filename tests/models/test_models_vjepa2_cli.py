"""`vjepa-exp checkpoint show/import` on V-JEPA 2 and 2.1 files, through a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from vjepa2_files import released_file

from vjepa.models import load_checkpoint, load_encoder


def cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "cli.main", "checkpoint", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("layout", "ignored"), [("vjepa2", "pos_embed"), ("vjepa2.1", "ema_encoder")]
)
def test_show_and_import_name_the_layout_preset_and_ignored_keys(
    tmp_path: Path, layout: str, ignored: str
) -> None:
    src = released_file(tmp_path / "vitm.pt", layout)
    shown = cli("show", str(src))
    assert shown.returncode == 0, shown.stderr
    assert f"layout={layout}" in shown.stdout and "preset=vit_micro" in shown.stdout
    assert "ignored" in shown.stdout and ignored in shown.stdout

    done = cli("import", str(src), "--out", str(tmp_path / "ours.pt"))
    assert done.returncode == 0, done.stderr
    assert ignored in done.stdout and f"({layout} layout)" in done.stdout
    ours = load_checkpoint(tmp_path / "ours.pt")
    assert ours.layout == "vjepa-exp" and ours.model == load_checkpoint(src).model
    x = torch.randn(1, 3, 2, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_encoder(src)(x), load_encoder(tmp_path / "ours.pt")(x))


def test_import_refuses_a_shape_mismatch_before_writing(tmp_path: Path) -> None:
    src = released_file(tmp_path / "bad.pt", "vjepa2", bad="blocks.2.mlp.fc2.weight")
    done = cli("import", str(src), "--out", str(tmp_path / "ours.pt"))
    assert done.returncode == 2
    err = done.stderr.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert "blocks.2.mlp.fc2.weight has shape [7, 96]" in err
    assert not (tmp_path / "ours.pt").exists()
