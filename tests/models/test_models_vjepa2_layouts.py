"""V-JEPA 2 and 2.1 checkpoint layouts: key names and shapes written out from the published facts
(not read from our modules), strict loading, preset detection, and a forward pass that matches a
reference computed here from the facts alone."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from vjepa2_files import PREFIX, encoder_keys, predictor_keys, released_file

import vjepa
from vjepa.errors import CheckpointError
from vjepa.models import build_encoder, build_from_config, load_checkpoint, load_encoder
from vjepa.models.checkpoint import Checkpoint, detect_model, load_state, verify
from vjepa.models.rope import rope_dims

torch.set_num_threads(1)

# preset: width, depth, heads, MLP hidden, RoPE channels per axis, encoder parameters (millions)
RELEASED = {
    "vit_base": (768, 12, 12, 3072, 20, 86.2),
    "vit_large": (1024, 24, 16, 4096, 20, 303.9),
    "vit_huge": (1280, 32, 16, 5120, 26, 631.6),
    "vit_giant_xformers": (1408, 40, 22, 6144, 20, 1012.2),
    "vit_gigantic_xformers": (1664, 48, 26, 8192, 20, 1843.9),
}
LEVELS = {12: (2, 5, 8, 11), 24: (5, 11, 17, 23), 40: (9, 19, 29, 39), 48: (11, 23, 37, 47)}
CONF_MODEL_DIR = Path(vjepa.__file__).parent / "conf" / "model"


def meta_state(keys: dict) -> dict:
    return {k: torch.empty(s, device="meta") for k, s in keys.items()}


def shapes(module: torch.nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def model_option(name: str) -> dict:
    return yaml.safe_load((CONF_MODEL_DIR / f"{name}.yaml").read_text())


# ------------------------------------------------------------------ sizes and names (no memory)
# the sizes each released: V-JEPA 2 L, H, g; V-JEPA 2.1 B, L (distilled), g, G
RELEASES = [
    *(("vjepa2", n) for n in ("vit_large", "vit_huge", "vit_giant_xformers")),
    *(("vjepa2.1", n) for n in ("vit_base", "vit_large", "vit_giant_xformers")),
    ("vjepa2.1", "vit_gigantic_xformers"),
]


@pytest.mark.parametrize(("layout", "name"), RELEASES)
def test_released_sizes_have_the_published_keys(name: str, layout: str) -> None:
    d, depth, heads, hidden, per_axis, millions = RELEASED[name]
    arch = "vjepa2_1" if layout == "vjepa2.1" else "vjepa"
    rope_layout = "interleaved" if arch == "vjepa2_1" else "tiled"
    with torch.device("meta"):
        enc = build_encoder(name, pos="rope", rope_layout=rope_layout, arch=arch)
    assert shapes(enc) == encoder_keys(d, depth, hidden, layout)
    assert enc.num_heads == heads and rope_dims(d // heads) == per_axis
    if arch == "vjepa2_1":
        assert tuple(enc.levels) == LEVELS[depth]
    # the published parameter count is of the V-JEPA 2 layout (no 2.1 additions)
    count = sum(math.prod(s) for s in encoder_keys(d, depth, hidden, "vjepa2").values())
    assert round(count / 1e6, 1) == millions


@pytest.mark.parametrize(("layout", "name"), RELEASES)
def test_released_files_detect_their_preset_and_check_strictly(name: str, layout: str) -> None:
    d, depth, heads, hidden, _, _ = RELEASED[name]
    state = meta_state(encoder_keys(d, depth, hidden, layout))
    predictor = meta_state(predictor_keys(d, 384, 12, 10)) if layout == "vjepa2" else None
    model = detect_model(state, predictor)
    assert model["name"] == name  # 1408 wide, 40 deep under RoPE: the 22-head giant
    assert model["pos"] == "rope"
    assert model["rope_layout"] == ("tiled" if layout == "vjepa2" else "interleaved")
    assert model.get("arch", "vjepa") == ("vjepa2_1" if layout == "vjepa2.1" else "vjepa")
    ckpt = Checkpoint(model, target_encoder=state, predictor=predictor, layout=layout)
    verify(ckpt)  # keys and shapes match the modules exactly (built on the meta device)
    broken = dict(state)
    broken["blocks.3.mlp.fc1.weight"] = torch.empty(hidden + 1, d, device="meta")
    with pytest.raises(CheckpointError, match=r"blocks\.3\.mlp\.fc1\.weight has shape"):
        verify(Checkpoint(model, target_encoder=broken, layout=layout))


def test_the_vitl_predictor_option_has_the_published_keys() -> None:
    model = model_option("vjepa2_vitl")
    with torch.device("meta"):
        _, pred = build_from_config(model, num_mask_tokens=10)
    assert shapes(pred) == predictor_keys(1024, 384, 12, 10)
    assert pred.num_heads == 12


# ------------------------------------------------------------------ a reference from the facts
def rope_reference(x: torch.Tensor, pos: list[torch.Tensor], layout: str) -> torch.Tensor:
    """Rotate [B, heads, N, hd] channel by channel, as the facts describe the layout."""
    per_axis = 2 * ((x.shape[-1] // 3) // 2)
    out = x.clone()
    for axis in range(3):
        for m in range(per_axis):
            j = m % (per_axis // 2) if layout == "tiled" else m // 2
            angle = pos[axis].double() * 10000.0 ** (-j / (per_axis / 2))
            c = axis * per_axis + m
            other = -x[..., c + 1] if m % 2 == 0 else x[..., c - 1]
            out[..., c] = x[..., c] * angle.cos().float() + other * angle.sin().float()
    return out


def reference_encoder(state: dict, x: torch.Tensor, heads: int, layout: str) -> torch.Tensor:
    """V-JEPA 2 (``vjepa2``) or 2.1 (``vjepa2.1``) encoder forward, written from the facts."""
    v21 = layout == "vjepa2.1"
    image = v21 and x.shape[2] == 1
    w = state["patch_embed_img.proj.weight" if image else "patch_embed.proj.weight"]
    bias = state["patch_embed_img.proj.bias" if image else "patch_embed.proj.bias"]
    z = F.conv3d(x, w, bias, stride=w.shape[2:])
    t_, h_, w_ = z.shape[2:]
    z = z.flatten(2).transpose(1, 2)
    d = z.shape[-1]
    if v21:
        z = z + state["img_mod_embed" if image else "video_mod_embed"]
    idx = torch.arange(t_ * h_ * w_)
    t, h, w = idx // (h_ * w_), (idx % (h_ * w_)) // w_, idx % w_
    if v21:  # h, w rescaled to the 16-row grid of patch 16
        h = h * 15 / (h_ - 1) if h_ > 1 else h
        w = w * 15 / (w_ - 1) if w_ > 1 else w
    rope_layout = "interleaved" if v21 else "tiled"
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    b, n, hd = z.shape[0], z.shape[1], d // heads
    for i in range(depth):
        p = f"blocks.{i}."
        y = F.layer_norm(z, (d,), state[p + "norm1.weight"], state[p + "norm1.bias"], 1e-6)
        qkv = F.linear(y, state[p + "attn.qkv.weight"], state[p + "attn.qkv.bias"])
        q, k, v = qkv.reshape(b, n, 3, heads, hd).permute(2, 0, 3, 1, 4)
        q, k = rope_reference(q, [t, h, w], rope_layout), rope_reference(k, [t, h, w], rope_layout)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1) @ v
        out = att.transpose(1, 2).reshape(b, n, d)
        z = z + F.linear(out, state[p + "attn.proj.weight"], state[p + "attn.proj.bias"])
        y = F.layer_norm(z, (d,), state[p + "norm2.weight"], state[p + "norm2.bias"], 1e-6)
        y = F.gelu(F.linear(y, state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"]))
        z = z + F.linear(y, state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"])
    norm = "norms_block.3" if v21 else "norm"
    return F.layer_norm(z, (d,), state[norm + ".weight"], state[norm + ".bias"], 1e-6)


def test_a_vjepa2_file_loads_strictly_and_matches_the_reference(tmp_path: Path) -> None:
    path = released_file(tmp_path / "vitm.pt", "vjepa2")
    ckpt = load_checkpoint(path)
    assert ckpt.layout == "vjepa2" and ckpt.official and ckpt.epoch == 3
    assert ckpt.model["name"] == "vit_micro" and ckpt.model["pos"] == "rope"
    assert ckpt.model["rope_layout"] == "tiled" and ckpt.model["pred_num_heads"] == 12
    assert ckpt.ignored == {"target_encoder": ["pos_embed"], "encoder": ["pos_embed"]}
    assert ckpt.num_mask_tokens == 10
    encoder = load_encoder(path).eval()  # strict
    x = torch.randn(2, 3, 4, 32, 48)
    raw = torch.load(path, weights_only=True)["target_encoder"]
    state = {k.removeprefix(PREFIX): v for k, v in raw.items()}
    with torch.no_grad():
        assert torch.allclose(encoder(x), reference_encoder(state, x, 3, "vjepa2"), atol=1e-4)
    _, predictor = build_from_config(ckpt.model, num_mask_tokens=ckpt.num_mask_tokens)
    load_state(predictor, ckpt.predictor)  # strict: the V-JEPA 2 predictor is ours under RoPE
    assert predictor.num_heads == 12 and predictor.rope_layout == "tiled"


def test_a_vjepa2_1_file_loads_strictly_and_matches_the_reference(tmp_path: Path) -> None:
    path = released_file(tmp_path / "vitm21.pt", "vjepa2.1")
    ckpt = load_checkpoint(path)
    assert ckpt.layout == "vjepa2.1" and ckpt.model["arch"] == "vjepa2_1"
    assert ckpt.model["rope_layout"] == "interleaved" and ckpt.model["name"] == "vit_micro"
    assert list(ckpt.ignored) == ["target_encoder"]  # ema_encoder is evaluated
    encoder = load_encoder(path).eval()
    raw = torch.load(path, weights_only=True)["ema_encoder"]
    state = {k.removeprefix(PREFIX): v for k, v in raw.items()}
    with torch.no_grad():
        for x in (torch.randn(2, 3, 4, 48, 32), torch.randn(1, 3, 1, 48, 48)):  # video, image
            assert torch.allclose(encoder(x), reference_encoder(state, x, 3, "vjepa2.1"), atol=1e-4)
        enc_entry = load_encoder(path, which="encoder")(torch.ones(1, 3, 2, 32, 32))
        assert not torch.allclose(enc_entry, encoder(torch.ones(1, 3, 2, 32, 32)))


def test_a_round_trip_through_our_layout_keeps_the_encoder(tmp_path: Path) -> None:
    from vjepa.models import export_official, save_checkpoint

    path = released_file(tmp_path / "vitm.pt", "vjepa2")
    ckpt = load_checkpoint(path)
    save_checkpoint(
        tmp_path / "ours.pt", ckpt.model, ckpt.encoder, ckpt.target_encoder, ckpt.predictor
    )
    ours = load_checkpoint(tmp_path / "ours.pt")
    assert ours.layout == "vjepa-exp" and ours.model == ckpt.model
    export_official(ours, tmp_path / "back.pt")
    back = load_checkpoint(tmp_path / "back.pt")
    assert back.layout == "vjepa2" and not back.ignored and back.model == ckpt.model
    x = torch.randn(1, 3, 2, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_encoder(path)(x), load_encoder(tmp_path / "back.pt")(x))


def test_mismatches_are_refused_in_one_line(tmp_path: Path) -> None:
    path = released_file(tmp_path / "bad.pt", "vjepa2", bad="blocks.1.attn.proj.weight")
    with pytest.raises(CheckpointError) as err:
        load_encoder(path)
    assert "blocks.1.attn.proj.weight has shape [7, 96]" in str(err.value)
    assert "\n" not in str(err.value)
    good = released_file(tmp_path / "good.pt", "vjepa2")
    with pytest.raises(CheckpointError, match="model.pos: 'sincos'"):
        load_encoder(good, model_cfg={"name": "vit_micro", "pos": "sincos"})
    with pytest.raises(CheckpointError, match="model.rope_layout: 'interleaved'"):
        load_encoder(good, model_cfg={"pos": "rope", "rope_layout": "interleaved"})
