"""The builders every other layer uses, from the named sizes of ``vjepa.models.sizes``."""

from __future__ import annotations

from typing import Any

from vjepa.models.predictor import Predictor
from vjepa.models.sizes import MODEL_DEFAULTS, MODEL_KEYS, preset
from vjepa.models.vit import VisionTransformer


def build_encoder(
    name: str,
    num_frames: int = 16,
    img_size: int = 224,
    patch_size: int = 16,
    tubelet_size: int = 2,
    uniform_power: bool = True,
    **overrides: Any,
) -> VisionTransformer:
    """A ``name``-sized encoder for ``num_frames`` x ``img_size``^2 clips; ``overrides`` replace
    preset fields (embed_dim, depth, num_heads, mlp_ratio) or pass ``in_chans``, ``pos``,
    ``rope_layout`` and ``arch``."""
    arch = {**preset(name).__dict__, **overrides}
    return VisionTransformer(
        num_frames=num_frames,
        img_size=img_size,
        patch_size=patch_size,
        tubelet_size=tubelet_size,
        uniform_power=uniform_power,
        preset=name,
        **arch,
    )


def build_predictor(
    encoder: VisionTransformer,
    depth: int = 12,
    embed_dim: int = 384,
    num_mask_tokens: int = 2,
    num_heads: int | None = None,
    mlp_ratio: float = 4.0,
) -> Predictor:
    """The predictor for ``encoder``: same token grid and positions (sin-cos or RoPE of the same
    layout), heads default to the encoder's heads; its MLP ratio stays 4 for every encoder size
    (ViT-g's 48/11 included), as in the reference."""
    return Predictor(
        embed_dim=encoder.embed_dim,
        grid=encoder.grid,
        predictor_embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads or encoder.num_heads,
        mlp_ratio=mlp_ratio,
        num_mask_tokens=num_mask_tokens,
        uniform_power=encoder.uniform_power,
        pos=encoder.pos,
        rope_layout=encoder.rope_layout,
    )


def model_config(encoder: VisionTransformer, predictor: Predictor | None = None) -> dict[str, Any]:
    """The ``pretrain.model`` dict that rebuilds ``encoder`` (and ``predictor``); keys at their
    default (sin-cos positions, the encoder's head count) are left out."""
    cfg = {
        "name": encoder.preset,
        "num_frames": encoder.num_frames,
        "img_size": encoder.img_size,
        "patch_size": encoder.patch_size,
        "tubelet_size": encoder.tubelet_size,
        "uniform_power": encoder.uniform_power,
        "pred_depth": predictor.depth if predictor is not None else 12,
        "pred_embed_dim": predictor.predictor_embed_dim if predictor is not None else 384,
    }
    extra = {"pos": encoder.pos, "rope_layout": encoder.rope_layout, "arch": encoder.arch}
    if predictor is not None and predictor.num_heads != encoder.num_heads:
        extra["pred_num_heads"] = predictor.num_heads
    if encoder.pos == MODEL_DEFAULTS["pos"]:
        extra.pop("rope_layout")  # no rotation, no layout
    cfg.update({k: v for k, v in extra.items() if v != MODEL_DEFAULTS[k] or k == "rope_layout"})
    return cfg


def encoder_kwargs(model_cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``build_encoder`` arguments in a model config (unknown keys are an error)."""
    unknown = set(model_cfg) - set(MODEL_KEYS) - {"num_mask_tokens"}
    if unknown:
        raise ValueError(f"unknown model keys {sorted(unknown)} (expected {', '.join(MODEL_KEYS)})")
    keys = ("name", "num_frames", "img_size", "patch_size", "tubelet_size", "uniform_power")
    keys += ("pos", "rope_layout", "arch")
    return {k: model_cfg[k] for k in keys if k in model_cfg}


def build_from_config(
    model_cfg: dict[str, Any], num_mask_tokens: int | None = None
) -> tuple[VisionTransformer, Predictor]:
    """(encoder, predictor) from a ``pretrain.model`` dict; ``num_mask_tokens`` defaults to the
    config's value or 2 (one per mask generator of the paper's masking)."""
    encoder = build_encoder(**encoder_kwargs(model_cfg))
    predictor = build_predictor(
        encoder,
        depth=model_cfg.get("pred_depth", 12),
        embed_dim=model_cfg.get("pred_embed_dim", 384),
        num_mask_tokens=num_mask_tokens or model_cfg.get("num_mask_tokens", 2),
        num_heads=model_cfg.get("pred_num_heads"),
    )
    return encoder, predictor
