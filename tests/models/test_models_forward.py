"""Encoder and predictor forward passes: masking, shapes, init, config round trip."""

from __future__ import annotations

import pytest
import torch

from vjepa.models import build_encoder, build_from_config, build_predictor, model_config
from vjepa.models.blocks import gather_tokens

torch.set_num_threads(1)

SMALL = dict(num_frames=8, img_size=32, patch_size=8)  # grid 4 x 4 x 4 = 64 tokens


def test_masked_tokens_equal_gathered_tokens_before_attention() -> None:
    # with no blocks every op is per token, so keeping indices must equal gathering afterwards
    encoder = build_encoder("vit_micro", depth=0, **SMALL).eval()
    x = torch.randn(2, 3, 8, 32, 32)
    keep = torch.tensor([[0, 5, 17, 63], [1, 2, 3, 40]])
    with torch.no_grad():
        full = encoder(x)
        assert torch.equal(encoder(x, keep), gather_tokens(full, keep))
        both = encoder(x, [keep, keep.flip(0)])
    assert both.shape == (4, 4, 96)
    assert torch.equal(both[2:], gather_tokens(full, keep.flip(0)))


def test_encoder_shapes_and_attributes() -> None:
    encoder = build_encoder("vit_micro", **SMALL).eval()
    assert encoder.grid == (4, 4, 4) and encoder.num_patches == 64
    assert (encoder.embed_dim, encoder.num_heads) == (96, 3)
    with torch.no_grad():
        assert encoder(torch.randn(3, 3, 8, 32, 32)).shape == (3, 64, 96)
        keep = torch.arange(10).expand(3, -1)
        assert encoder(torch.randn(3, 3, 8, 32, 32), keep).shape == (3, 10, 96)
    with pytest.raises(ValueError):
        encoder(torch.randn(1, 3, 32, 32))


def test_reference_init_and_layer_choices() -> None:
    encoder = build_encoder("vit_mini", **SMALL)
    block = encoder.blocks[0]
    assert block.norm1.eps == 1e-6 and encoder.norm.eps == 1e-6
    assert block.mlp.act.approximate == "none"  # exact GELU
    assert block.attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.count_nonzero(block.attn.qkv.bias) == 0
    assert torch.equal(encoder.norm.weight, torch.ones(192))
    # residual output projections are scaled down by sqrt(2 * layer)
    deep = encoder.blocks[3].attn.proj.weight.std().item()
    assert deep == pytest.approx(0.02 / 8**0.5, rel=0.1)


def test_predictor_shapes_and_mask_tokens() -> None:
    encoder = build_encoder("vit_micro", **SMALL)
    predictor = build_predictor(encoder, depth=2, embed_dim=48).eval()
    assert all(torch.count_nonzero(t) == 0 for t in predictor.mask_tokens)
    assert predictor.predictor_pos_embed.shape == (1, 64, 48)
    assert not predictor.predictor_pos_embed.requires_grad
    ctx = torch.randn(2, 20, 96)
    masks_ctx = torch.arange(20).expand(2, -1)
    masks_tgt = torch.arange(20, 50).expand(2, -1)
    with torch.no_grad():
        out0 = predictor(ctx, masks_ctx, masks_tgt, 0)
        predictor.mask_tokens[1].fill_(1.0)
        out1 = predictor(ctx, masks_ctx, masks_tgt, 1)
    assert out0.shape == (2, 30, 96)
    assert not torch.allclose(out0, out1)  # each generator has its own mask token


def test_predictor_targets_depend_on_their_positions_only_through_pos_embed() -> None:
    # two target sets that are permutations of each other give permuted predictions
    encoder = build_encoder("vit_micro", **SMALL)
    predictor = build_predictor(encoder, depth=1, embed_dim=48).eval()
    ctx, masks_ctx = torch.randn(1, 8, 96), torch.arange(8).unsqueeze(0)
    tgt = torch.tensor([[30, 10, 50]])
    with torch.no_grad():
        a = predictor(ctx, masks_ctx, tgt)
        b = predictor(ctx, masks_ctx, tgt.flip(1))
    assert torch.allclose(a, b.flip(1), atol=1e-5)


def test_model_config_round_trip() -> None:
    cfg = {
        "name": "vit_micro",
        "num_frames": 8,
        "img_size": 32,
        "patch_size": 8,
        "tubelet_size": 2,
        "uniform_power": True,
        "pred_depth": 2,
        "pred_embed_dim": 48,
    }
    encoder, predictor = build_from_config(cfg)
    assert model_config(encoder, predictor) == cfg
    assert predictor.num_heads == encoder.num_heads and len(predictor.predictor_blocks) == 2
    with pytest.raises(ValueError, match="unknown model keys"):
        build_from_config({**cfg, "depth": 3})
