"""Official-layout checkpoints load strictly; export/import round-trips keep every tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vjepa.errors import CheckpointError
from vjepa.models import (
    build_from_config,
    export_official,
    load_checkpoint,
    load_encoder,
    model_config,
    save_checkpoint,
)
from vjepa.models.checkpoint import detect_model, load_state

torch.set_num_threads(1)

CFG = {
    "name": "vit_micro",
    "num_frames": 8,
    "img_size": 32,
    "patch_size": 8,
    "tubelet_size": 2,
    "uniform_power": True,
    "pred_depth": 2,
    "pred_embed_dim": 48,
}


@pytest.fixture
def models():
    torch.manual_seed(0)
    encoder, predictor = build_from_config(CFG)
    target, _ = build_from_config(CFG)
    return encoder.eval(), target.eval(), predictor.eval()


def official_file(path: Path, encoder, target, predictor, prefix: str = "module.backbone.") -> Path:
    """A file laid out like the released ``vitl16.pth.tar``."""

    def wrap(module):
        return {prefix + k: v for k, v in module.state_dict().items()}

    obj = {
        "encoder": wrap(encoder),
        "predictor": wrap(predictor),
        "target_encoder": wrap(target),
        "opt": {"state": {}, "param_groups": []},
        "scaler": None,
        "epoch": 7,
        "loss": 0.42,
        "batch_size": 24,
        "world_size": 8,
        "lr": 6.25e-4,
    }
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("prefix", ["module.backbone.", "module."])
def test_official_layout_loads_strictly(tmp_path: Path, models, prefix: str) -> None:
    encoder, target, predictor = models
    path = official_file(tmp_path / "vitm.pth.tar", encoder, target, predictor, prefix)
    ckpt = load_checkpoint(path)
    assert ckpt.official and ckpt.epoch == 7 and ckpt.extra["lr"] == 6.25e-4
    assert ckpt.model == CFG  # read back from shapes alone
    assert ckpt.num_mask_tokens == 2
    loaded = load_encoder(path).eval()  # strict: no missing or unexpected keys
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), target(x))
        assert torch.equal(load_encoder(path, which="encoder")(x), encoder(x))


def test_export_import_round_trip(tmp_path: Path, models) -> None:
    encoder, target, predictor = models
    save_checkpoint(
        tmp_path / "ours.pt",
        model_config(encoder, predictor),
        encoder=encoder,
        target_encoder=target,
        predictor=predictor,
        epoch=3,
        step=300,
        optimizer={"lr": 1.0},
    )
    ours = load_checkpoint(tmp_path / "ours.pt")
    assert not ours.official and ours.step == 300 and ours.extra == {"optimizer": {"lr": 1.0}}
    export_official(ours, tmp_path / "official.pth.tar")
    raw = torch.load(tmp_path / "official.pth.tar", weights_only=True)
    assert raw["epoch"] == 3 and set(raw) >= {"encoder", "target_encoder", "predictor", "opt"}
    assert all(k.startswith("module.backbone.") for k in raw["target_encoder"])
    back = load_checkpoint(tmp_path / "official.pth.tar")
    assert back.model == ours.model
    for name in ("encoder", "target_encoder", "predictor"):
        a, b = getattr(ours, name), getattr(back, name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_encoder(tmp_path / "official.pth.tar")(x), target(x))


def test_pos_embed_of_another_grid_is_replaced(tmp_path: Path, models) -> None:
    encoder, target, predictor = models
    path = official_file(tmp_path / "c.pth.tar", encoder, target, predictor)
    bigger = load_encoder(path, model_cfg={**CFG, "img_size": 48})
    assert bigger.pos_embed.shape == (1, 4 * 6 * 6, 96)
    assert torch.equal(bigger.blocks[0].attn.qkv.weight, target.blocks[0].attn.qkv.weight)


def test_mismatches_are_one_line_errors(tmp_path: Path, models) -> None:
    encoder, target, predictor = models
    path = official_file(tmp_path / "c.pth.tar", encoder, target, predictor)
    with pytest.raises(CheckpointError, match="shape"):
        load_encoder(path, model_cfg={**CFG, "name": "vit_mini"})
    state = dict(target.state_dict())
    del state["norm.bias"]
    with pytest.raises(CheckpointError, match="missing"):
        load_state(encoder, state)
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"encoder": {}, "rng": np.random.get_state()}, tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        load_checkpoint(tmp_path / "pickled.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a V-JEPA checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


@pytest.mark.parametrize(
    ("name", "dim", "depth", "hidden", "tokens", "expected"),
    [
        ("vit_large", 1024, 24, 4096, 1568, (16, 224)),
        ("vit_huge", 1280, 32, 5120, 8 * 24 * 24, (16, 384)),  # ViT-H/16 at 384 px
        ("vit_giant", 1408, 40, 6144, 1568, (16, 224)),
    ],
)
def test_detects_paper_sizes_from_shapes(name, dim, depth, hidden, tokens, expected) -> None:
    meta = torch.device("meta")
    state = {
        "pos_embed": torch.empty(1, tokens, dim, device=meta),
        "patch_embed.proj.weight": torch.empty(dim, 3, 2, 16, 16, device=meta),
    }
    for i in range(depth):
        state[f"blocks.{i}.attn.qkv.weight"] = torch.empty(3 * dim, dim, device=meta)
        state[f"blocks.{i}.mlp.fc1.weight"] = torch.empty(hidden, dim, device=meta)
    model = detect_model(state)
    assert model["name"] == name
    assert (model["num_frames"], model["img_size"]) == expected
    assert (model["patch_size"], model["tubelet_size"]) == (16, 2)
