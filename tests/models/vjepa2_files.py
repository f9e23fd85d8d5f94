"""V-JEPA 2 / 2.1 checkpoint files written from the published facts (key names, shapes, top-level
entries), never read from our modules: the expectations of the layout tests."""

from __future__ import annotations

from pathlib import Path

import torch

PREFIX = "module.backbone."


def encoder_keys(d: int, depth: int, hidden: int, layout: str, patch: int = 16) -> dict:
    """Key -> shape of a V-JEPA 2 (``vjepa2``) or 2.1 (``vjepa2.1``) encoder, prefix stripped."""
    keys = {"patch_embed.proj.weight": (d, 3, 2, patch, patch), "patch_embed.proj.bias": (d,)}
    for i in range(depth):
        b = f"blocks.{i}."
        keys |= {
            b + "norm1.weight": (d,),
            b + "norm1.bias": (d,),
            b + "attn.qkv.weight": (3 * d, d),
            b + "attn.qkv.bias": (3 * d,),
            b + "attn.proj.weight": (d, d),
            b + "attn.proj.bias": (d,),
            b + "norm2.weight": (d,),
            b + "norm2.bias": (d,),
            b + "mlp.fc1.weight": (hidden, d),
            b + "mlp.fc1.bias": (hidden,),
            b + "mlp.fc2.weight": (d, hidden),
            b + "mlp.fc2.bias": (d,),
        }
    if layout == "vjepa2":
        return keys | {"norm.weight": (d,), "norm.bias": (d,)}
    keys |= {
        "patch_embed_img.proj.weight": (d, 3, 1, patch, patch),
        "patch_embed_img.proj.bias": (d,),
        "img_mod_embed": (1, 1, d),
        "video_mod_embed": (1, 1, d),
    }
    for k in range(4):
        keys |= {f"norms_block.{k}.weight": (d,), f"norms_block.{k}.bias": (d,)}
    return keys


def predictor_keys(d: int, width: int, depth: int, mask_tokens: int) -> dict:
    """Key -> shape of a V-JEPA 2 predictor (hub settings: 384 wide, MLP 4x, 10 mask tokens)."""
    keys = {"predictor_embed.weight": (width, d), "predictor_embed.bias": (width,)}
    keys |= {f"mask_tokens.{k}": (1, 1, width) for k in range(mask_tokens)}
    for i in range(depth):
        b = f"predictor_blocks.{i}."
        keys |= {
            b + "norm1.weight": (width,),
            b + "norm1.bias": (width,),
            b + "attn.qkv.weight": (3 * width, width),
            b + "attn.qkv.bias": (3 * width,),
            b + "attn.proj.weight": (width, width),
            b + "attn.proj.bias": (width,),
            b + "norm2.weight": (width,),
            b + "norm2.bias": (width,),
            b + "mlp.fc1.weight": (4 * width, width),
            b + "mlp.fc1.bias": (4 * width,),
            b + "mlp.fc2.weight": (width, 4 * width),
            b + "mlp.fc2.bias": (width,),
        }
    keys |= {"predictor_norm.weight": (width,), "predictor_norm.bias": (width,)}
    return keys | {"predictor_proj.weight": (d, width), "predictor_proj.bias": (d,)}


TINY = (96, 4, 384)  # vit_micro: 96 wide, 4 blocks (3 heads), MLP 384


def random_state(keys: dict, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {k: 0.2 * torch.randn(s, generator=g) for k, s in keys.items()}


def released_file(path: Path, layout: str, bad: str | None = None, patch: int = 16) -> Path:
    """A V-JEPA 2 / 2.1 training file of the tiny size: top-level entries as V-JEPA 2 saves them,
    module.backbone. prefixes, a stored (unused) pos_embed in the V-JEPA 2 encoders."""
    keys = encoder_keys(*TINY, layout, patch=patch)
    enc, tgt = random_state(keys, 0), random_state(keys, 1)
    if layout == "vjepa2":
        for state in (enc, tgt):
            state["pos_embed"] = torch.zeros(1, 8 * 2 * 2, 96)
        pred = random_state(predictor_keys(96, 96, 2, 10), 2)
    else:  # a distilled 2.1 predictor (single level in, two projections to the teacher's width)
        pred = random_state(predictor_keys(96, 96, 2, 8), 2)
        pred |= {"img_mod_embed": torch.zeros(1, 1, 96), "video_mod_embed": torch.zeros(1, 1, 96)}
        pred |= {
            "predictor_proj.weight": torch.zeros(160, 96),
            "predictor_proj.bias": torch.zeros(160),
        }
        pred |= {"predictor_proj_context.weight": torch.zeros(160, 96)}
        pred |= {"predictor_proj_context.bias": torch.zeros(160)}
    if bad:
        tgt[bad] = torch.zeros(7, 96)

    def wrap(state: dict) -> dict:
        return {PREFIX + k: v for k, v in state.items()}

    obj = {"encoder": wrap(enc), "predictor": wrap(pred), "opt": {"state": {}, "param_groups": []}}
    obj |= {"scaler": None, "epoch": 3, "loss": 0.5, "batch_size": 4, "world_size": 8, "lr": 5e-4}
    obj["target_encoder" if layout == "vjepa2" else "ema_encoder"] = wrap(tgt)
    if layout == "vjepa2.1":
        obj["target_encoder"] = wrap(enc)  # present, but the 2.1 loaders read ema_encoder
    torch.save(obj, path)
    return path
