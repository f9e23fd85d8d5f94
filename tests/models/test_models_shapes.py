"""Every preset has the official state-dict names and shapes, and the paper's parameter counts.

The expected layout is written out from the published description of the reference modules,
not read from our models. Big presets are built on the meta device (no memory, no init).
"""

from __future__ import annotations

import pytest
import torch

from vjepa.models import build_encoder, build_predictor

torch.set_num_threads(1)

# name: (dim, depth, heads, MLP hidden width, params at 16x224^2 in millions, from the paper/facts)
PAPER = {
    "vit_tiny": (192, 12, 3, 768, 5.9),
    "vit_small": (384, 12, 6, 1536, 22.5),
    "vit_base": (768, 12, 12, 3072, 87.4),
    "vit_large": (1024, 24, 16, 4096, 305.5),
    "vit_huge": (1280, 32, 16, 5120, 633.7),
    "vit_giant": (1408, 40, 16, 6144, 1014.0),  # mlp_ratio 48/11
}
OURS = {
    "vit_micro": (96, 4, 3, 384),
    "vit_mini": (192, 6, 3, 768),
    "vit_mini4": (192, 4, 3, 768),
}


def block_shapes(prefix: str, dim: int, hidden: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.norm1.weight": (dim,),
        f"{prefix}.norm1.bias": (dim,),
        f"{prefix}.attn.qkv.weight": (3 * dim, dim),
        f"{prefix}.attn.qkv.bias": (3 * dim,),
        f"{prefix}.attn.proj.weight": (dim, dim),
        f"{prefix}.attn.proj.bias": (dim,),
        f"{prefix}.norm2.weight": (dim,),
        f"{prefix}.norm2.bias": (dim,),
        f"{prefix}.mlp.fc1.weight": (hidden, dim),
        f"{prefix}.mlp.fc1.bias": (hidden,),
        f"{prefix}.mlp.fc2.weight": (dim, hidden),
        f"{prefix}.mlp.fc2.bias": (dim,),
    }


def official_encoder(dim: int, depth: int, hidden: int, tokens: int = 8 * 14 * 14) -> dict:
    shapes = {
        "pos_embed": (1, tokens, dim),
        "patch_embed.proj.weight": (dim, 3, 2, 16, 16),
        "patch_embed.proj.bias": (dim,),
        "norm.weight": (dim,),
        "norm.bias": (dim,),
    }
    for i in range(depth):
        shapes |= block_shapes(f"blocks.{i}", dim, hidden)
    return shapes


def official_predictor(dim: int, pdim: int = 384, depth: int = 12, tokens: int = 1568) -> dict:
    shapes = {
        "predictor_embed.weight": (pdim, dim),
        "predictor_embed.bias": (pdim,),
        "mask_tokens.0": (1, 1, pdim),
        "mask_tokens.1": (1, 1, pdim),
        "predictor_pos_embed": (1, tokens, pdim),
        "predictor_norm.weight": (pdim,),
        "predictor_norm.bias": (pdim,),
        "predictor_proj.weight": (dim, pdim),
        "predictor_proj.bias": (dim,),
    }
    for i in range(depth):
        shapes |= block_shapes(f"predictor_blocks.{i}", pdim, 4 * pdim)
    return shapes


def shapes_of(module: torch.nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", list(PAPER))
def test_paper_presets_match_official_layout(name: str) -> None:
    dim, depth, heads, hidden, millions = PAPER[name]
    with torch.device("meta"):
        encoder = build_encoder(name)
        predictor = build_predictor(encoder)
    assert shapes_of(encoder) == official_encoder(dim, depth, hidden)
    assert shapes_of(predictor) == official_predictor(dim)
    assert (encoder.embed_dim, encoder.num_heads, encoder.grid) == (dim, heads, (8, 14, 14))
    assert encoder.num_patches == 1568 and encoder.preset == name
    assert predictor.num_heads == heads  # predictor heads default to the encoder's
    params = sum(p.numel() for p in encoder.parameters()) / 1e6
    # the table is rounded to 0.1M, so allow that rounding where it exceeds 0.5%
    assert params == pytest.approx(millions, rel=0.005, abs=0.05)


@pytest.mark.parametrize("name", list(OURS))
def test_small_presets(name: str) -> None:
    dim, depth, heads, hidden = OURS[name]
    with torch.device("meta"):
        encoder = build_encoder(name)
    assert shapes_of(encoder) == official_encoder(dim, depth, hidden)
    assert encoder.num_heads == heads


def test_pos_embed_is_a_fixed_parameter() -> None:
    encoder = build_encoder("vit_micro", num_frames=4, img_size=32, patch_size=8)
    assert "pos_embed" in encoder.state_dict()
    assert not encoder.pos_embed.requires_grad
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert "pos_embed" not in trainable and "patch_embed.proj.weight" in trainable


def test_image_encoder_uses_conv2d() -> None:
    with torch.device("meta"):
        encoder = build_encoder("vit_large", num_frames=1)
    assert isinstance(encoder.patch_embed.proj, torch.nn.Conv2d)
    assert shapes_of(encoder)["patch_embed.proj.weight"] == (1024, 3, 16, 16)
    assert encoder.grid == (1, 14, 14)
