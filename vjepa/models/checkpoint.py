"""Checkpoint files: our layout, the official V-JEPA layout, and conversion between them.

Official files (``vitl16.pth.tar`` ...) are dicts with ``encoder``, ``target_encoder`` and
``predictor`` state dicts whose keys carry ``module.backbone.`` (DDP around a wrapper whose
attribute is ``backbone``), plus ``opt``, ``scaler``, ``epoch``, ``loss``, ``batch_size``,
``world_size``, ``lr``. They hold no model config, so the sizes are read back from the shapes.

Ours: ``{"format": "vjepa-exp/1", "model": <pretrain.model dict>, "encoder", "target_encoder",
"predictor", "epoch", "step", ...training state}`` with unprefixed keys.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vjepa.errors import CheckpointError
from vjepa.models.presets import build_encoder, encoder_kwargs
from vjepa.models.sizes import PRESETS
from vjepa.models.vit import VisionTransformer
from vjepa.utils.io import atomic_save

FORMAT = "vjepa-exp/1"
MODULES = ("encoder", "target_encoder", "predictor")
OFFICIAL_PREFIX = "module.backbone."
OFFICIAL_EXTRA = ("opt", "scaler", "epoch", "loss", "batch_size", "world_size", "lr")
WRAPPER_PREFIXES = ("module.", "backbone.", "_orig_mod.")
POS_EMBED_KEYS = ("pos_embed", "predictor_pos_embed")

State = dict[str, torch.Tensor]


@dataclass
class Checkpoint:
    """A checkpoint read into memory: unprefixed state dicts plus the model config that rebuilds
    them. ``extra`` holds every other top-level entry (optimizer state, loss, ...)."""

    model: dict[str, Any]
    encoder: State | None = None
    target_encoder: State | None = None
    predictor: State | None = None
    epoch: int = 0
    step: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    official: bool = False

    @property
    def num_mask_tokens(self) -> int:
        """Mask tokens of the stored predictor (one per mask generator used in training)."""
        if not self.predictor:
            return self.model.get("num_mask_tokens", 2)
        return len(block_indices(self.predictor, "mask_tokens"))

    def state(self, which: str = "target_encoder") -> State:
        """An encoder state dict; ``target_encoder`` falls back to ``encoder`` (and back), as the
        reference evaluation does."""
        fallback = {"target_encoder": "encoder", "encoder": "target_encoder"}.get(which)
        state = getattr(self, which, None) or (getattr(self, fallback) if fallback else None)
        if not state:
            raise CheckpointError(f"checkpoint holds no {which} weights")
        return state


def strip_prefixes(state: Mapping[str, Any]) -> State:
    """Drop wrapper prefixes (``module.``, ``backbone.``, ``_orig_mod.``) from every key."""
    out = {}
    for key, value in state.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def state_dict_of(obj: nn.Module | Mapping[str, Any] | None) -> State | None:
    """The unprefixed state dict of a module (DDP / compiled wrappers included) or a mapping."""
    if obj is None:
        return None
    state = obj.state_dict() if isinstance(obj, nn.Module) else obj
    return strip_prefixes(state)


def block_indices(state: Mapping[str, Any], prefix: str) -> set[int]:
    """The distinct ``i`` of keys ``{prefix}.{i}...``."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)(\.|$)")
    return {int(m.group(1)) for key in state if (m := pattern.match(key))}


def token_grid(num_tokens: int, video: bool) -> tuple[int, int, int]:
    """(T', H', W') of a square token grid with ``num_tokens`` tokens. The split is ambiguous
    (64 = 4x4x4 = 16x2x2), so video tries T' = 8 (16 frames, tubelet 2, every released model)
    first, then the nearest durations, shorter first; pass a model config where it matters."""
    for t in (8, 4, 16, 2, 32, 1) if video else (1,):
        side = math.isqrt(num_tokens // t)
        if num_tokens % t == 0 and side * side * t == num_tokens:
            return t, side, side
    raise CheckpointError(f"cannot read a square token grid from {num_tokens} position embeddings")


def preset_name(dim: int, depth: int, hidden: int) -> str:
    """The preset with this width, depth and MLP width."""
    for name, p in PRESETS.items():
        if (p.embed_dim, p.depth, int(p.embed_dim * p.mlp_ratio)) == (dim, depth, hidden):
            return name
    raise CheckpointError(f"no encoder preset has width {dim}, depth {depth}, MLP {hidden}")


def detect_model(encoder: State, predictor: State | None = None) -> dict[str, Any]:
    """The ``pretrain.model`` dict of an encoder (and predictor) state dict, read from shapes."""
    for key in ("patch_embed.proj.weight", "pos_embed", "blocks.0.attn.qkv.weight"):
        if key not in encoder:
            raise CheckpointError(f"encoder weights lack {key!r}: not a V-JEPA encoder")
    patch = encoder["patch_embed.proj.weight"]  # [D, 3, tubelet, p, p] or [D, 3, p, p]
    dim, video = patch.shape[0], patch.ndim == 5
    depth = len(block_indices(encoder, "blocks"))
    hidden = encoder["blocks.0.mlp.fc1.weight"].shape[0]
    name = preset_name(dim, depth, hidden)
    t, h, _ = token_grid(encoder["pos_embed"].shape[1], video)
    tubelet = patch.shape[2] if video else 2
    model = {
        "name": name,
        "num_frames": t * tubelet if video else 1,
        "img_size": h * patch.shape[-1],
        "patch_size": patch.shape[-1],
        "tubelet_size": tubelet,
        "uniform_power": True,
        "pred_depth": 12,
        "pred_embed_dim": 384,
    }
    if predictor:
        model["pred_depth"] = len(block_indices(predictor, "predictor_blocks"))
        model["pred_embed_dim"] = predictor["predictor_embed.weight"].shape[0]
    return model


def _read(path: Path, weights_only: bool) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        if "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path}: holds objects other than tensors; load it with weights_only=False "
                "only if you trust its source"
            ) from None
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint ({type(exc).__name__})"
        ) from None


def load_checkpoint(path: str | Path, weights_only: bool = True) -> Checkpoint:
    """Read our layout, the official layout (any of ``module.`` / ``backbone.`` prefixes), or a
    bare encoder state dict."""
    path = Path(path)
    raw = _read(path, weights_only)
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: not a V-JEPA checkpoint (a {type(raw).__name__})")
    if raw.get("format") == FORMAT:
        states = {k: state_dict_of(raw.get(k)) for k in MODULES}
        extra = {
            k: v for k, v in raw.items() if k not in (*MODULES, "format", "model", "epoch", "step")
        }
        model = dict(
            raw.get("model") or detect_model(states["target_encoder"] or states["encoder"])
        )
        return Checkpoint(
            model, **states, epoch=raw.get("epoch", 0), step=raw.get("step", 0), extra=extra
        )
    if isinstance(raw.get("encoder"), Mapping) or isinstance(raw.get("target_encoder"), Mapping):
        states = {k: state_dict_of(raw.get(k)) for k in MODULES}
        encoder = states["target_encoder"] or states["encoder"]
        extra = {k: v for k, v in raw.items() if k not in (*MODULES, "epoch")}
        model = detect_model(encoder, states["predictor"])
        return Checkpoint(model, **states, epoch=raw.get("epoch") or 0, extra=extra, official=True)
    state = strip_prefixes(raw)
    if "patch_embed.proj.weight" in state:
        return Checkpoint(detect_model(state), encoder=state, target_encoder=state, official=True)
    raise CheckpointError(f"{path}: not a V-JEPA checkpoint (no encoder or target_encoder weights)")


def load_state(module: nn.Module, state: Mapping[str, torch.Tensor], what: str = "weights") -> None:
    """``module.load_state_dict(state, strict=True)``; a stored position table of another grid is
    replaced by the module's own (as the reference does); any other mismatch is a CheckpointError."""
    own = module.state_dict()
    state = dict(state)
    for key in POS_EMBED_KEYS:
        if key in state and key in own and state[key].shape != own[key].shape:
            state[key] = own[key]
    for key, value in state.items():
        if key in own and value.shape != own[key].shape:
            raise CheckpointError(
                f"{what}: {key} has shape {list(value.shape)}, the model expects {list(own[key].shape)}"
            )
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = [
            f"missing {missing[:3]}" if missing else "",
            f"unexpected {unexpected[:3]}" if unexpected else "",
        ]
        raise CheckpointError(f"{what} do not match the model: {', '.join(p for p in parts if p)}")
    module.load_state_dict(state, strict=True)


def load_encoder(
    path: str | Path, which: str = "target_encoder", model_cfg: dict[str, Any] | None = None
) -> VisionTransformer:
    """Build the encoder a checkpoint describes (or ``model_cfg``) and load ``which`` into it."""
    ckpt = load_checkpoint(path)
    cfg = {**ckpt.model, **(model_cfg or {})}
    encoder = build_encoder(**encoder_kwargs(cfg))
    load_state(encoder, ckpt.state(which), what=f"{path} {which}")
    return encoder


def save_checkpoint(
    path: str | Path,
    model: dict[str, Any],
    encoder: nn.Module | Mapping[str, Any] | None = None,
    target_encoder: nn.Module | Mapping[str, Any] | None = None,
    predictor: nn.Module | Mapping[str, Any] | None = None,
    epoch: int = 0,
    step: int = 0,
    **extra: Any,
) -> None:
    """Write our layout atomically; ``extra`` carries training state (optimizer, scaler, ...)."""
    obj = {
        "format": FORMAT,
        "model": dict(model),
        "encoder": state_dict_of(encoder),
        "target_encoder": state_dict_of(target_encoder),
        "predictor": state_dict_of(predictor),
        "epoch": epoch,
        "step": step,
        **extra,
    }
    atomic_save(path, lambda tmp: torch.save(obj, tmp))


def export_official(ckpt: Checkpoint | str | Path, dst: str | Path) -> None:
    """Write ``ckpt`` in the official layout (``module.backbone.`` keys), readable by the
    reference evaluation code."""
    if not isinstance(ckpt, Checkpoint):
        ckpt = load_checkpoint(ckpt)
    encoder = ckpt.encoder or ckpt.target_encoder
    target = ckpt.target_encoder or ckpt.encoder
    obj: dict[str, Any] = {k: None for k in OFFICIAL_EXTRA}
    obj.update({k: v for k, v in ckpt.extra.items() if k in OFFICIAL_EXTRA})
    obj.update(epoch=ckpt.epoch, world_size=obj["world_size"] or 1)
    for key, state in (
        ("encoder", encoder),
        ("target_encoder", target),
        ("predictor", ckpt.predictor),
    ):
        if state is not None:
            obj[key] = {OFFICIAL_PREFIX + k: v for k, v in state.items()}
    atomic_save(dst, lambda tmp: torch.save(obj, tmp))
