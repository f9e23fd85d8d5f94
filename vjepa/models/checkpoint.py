"""Checkpoint files: our layout, the released V-JEPA, V-JEPA 2 and 2.1 layouts, and conversion.

Released files (``vitl16.pth.tar``, ``vitl.pt``, ``vjepa2_1_vitg_384.pt`` ...) are dicts with
``encoder``, ``target_encoder`` (2.1's distilled B/L: ``ema_encoder``) and ``predictor`` state dicts
whose keys carry ``module.backbone.`` (DDP around a wrapper whose attribute is ``backbone``), plus
``opt``, ``scaler``, ``epoch``, ``loss``, ``batch_size``, ``world_size``, ``lr``. They hold no model
config, so the layout and sizes are read back from the keys and shapes:

- V-JEPA: the encoder stores its sin-cos ``pos_embed``;
- V-JEPA 2: RoPE, no position table (a stored ``pos_embed`` is unused there and ignored);
- V-JEPA 2.1: ``norms_block.{k}`` instead of ``norm`` (RoPE with interleaved angles).

Keys that the layout's own code does not use are dropped and named in ``Checkpoint.ignored``, never
loaded silently; docs/checkpoints.md lists them per layout.

Ours: ``{"format": "vjepa-exp/1", "model": <pretrain.model dict>, "encoder", "target_encoder",
"predictor", "epoch", "step", ...training state}`` with unprefixed keys.
"""

from __future__ import annotations

import logging
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
from vjepa.models.sizes import MODEL_DEFAULTS, PRESETS, VJEPA2_PRESETS
from vjepa.models.vit import VisionTransformer
from vjepa.utils.io import atomic_save

FORMAT = "vjepa-exp/1"
MODULES = ("encoder", "target_encoder", "predictor")
OFFICIAL_PREFIX = "module.backbone."
OFFICIAL_EXTRA = ("opt", "scaler", "epoch", "loss", "batch_size", "world_size", "lr")
WRAPPER_PREFIXES = ("module.", "backbone.", "_orig_mod.")
POS_EMBED_KEYS = ("pos_embed", "predictor_pos_embed")
# the released layouts a file is read as (``Checkpoint.layout``)
LAYOUTS = ("vjepa-exp", "vjepa", "vjepa2", "vjepa2.1")
# the geometry V-JEPA 2 / 2.1's hub builds its encoders for (RoPE files store no grid)
RELEASED_GEOMETRY = {"vjepa2": (64, 256), "vjepa2.1": (64, 384)}
VJEPA2_PREDICTOR_HEADS = 12

log = logging.getLogger(__name__)

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
    layout: str = "vjepa-exp"
    ignored: dict[str, list[str]] = field(default_factory=dict)  # module -> keys dropped on read

    @property
    def num_mask_tokens(self) -> int:
        """Mask tokens of the stored predictor (one per mask generator used in training)."""
        if not self.predictor:
            return self.model.get("num_mask_tokens", 2)
        return len(block_indices(self.predictor, "mask_tokens"))

    def state(self, which: str = "target_encoder") -> State:
        """An encoder state dict; ``target_encoder`` falls back to ``encoder`` (and back), as the
        reference evaluation does."""
        which = "target_encoder" if which == "ema_encoder" else which  # 2.1's name for it
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


def preset_name(dim: int, depth: int, hidden: int, rope: bool = False) -> str:
    """The preset with this width, depth and MLP width; a RoPE file names V-JEPA 2's sizes first
    (its 1408-wide giant has 22 heads, V-JEPA's 16)."""
    order = [*VJEPA2_PRESETS, *PRESETS] if rope else list(PRESETS)
    for name in order:
        p = PRESETS[name]
        if (p.embed_dim, p.depth, int(p.embed_dim * p.mlp_ratio)) == (dim, depth, hidden):
            return name
    raise CheckpointError(f"no encoder preset has width {dim}, depth {depth}, MLP {hidden}")


def file_layout(encoder: State, predictor: State | None = None) -> str:
    """``vjepa``, ``vjepa2`` or ``vjepa2.1`` from an encoder (and predictor) state dict's keys."""
    if "norms_block.0.weight" in encoder:
        return "vjepa2.1"
    if "pos_embed" not in encoder:
        return "vjepa2"
    if predictor and "predictor_pos_embed" not in predictor:
        return "vjepa2"  # a V-JEPA 2 file that kept its (unused) encoder table
    return "vjepa"


def unused_keys(layout: str, module: str, state: State) -> list[str]:
    """Keys of ``state`` the layout's own model does not use (ignored, and said so)."""
    if layout == "vjepa2":
        return [k for k in POS_EMBED_KEYS if k in state]
    return []


def detect_model(encoder: State, predictor: State | None = None) -> dict[str, Any]:
    """The ``pretrain.model`` dict of an encoder (and predictor) state dict, read from shapes."""
    for key in ("patch_embed.proj.weight", "blocks.0.attn.qkv.weight"):
        if key not in encoder:
            raise CheckpointError(f"encoder weights lack {key!r}: not a V-JEPA encoder")
    layout = file_layout(encoder, predictor)
    if layout == "vjepa" and "pos_embed" not in encoder:
        raise CheckpointError("encoder weights lack 'pos_embed': not a V-JEPA encoder")
    patch = encoder["patch_embed.proj.weight"]  # [D, 3, tubelet, p, p] or [D, 3, p, p]
    dim, video = patch.shape[0], patch.ndim == 5
    depth = len(block_indices(encoder, "blocks"))
    hidden = encoder["blocks.0.mlp.fc1.weight"].shape[0]
    name = preset_name(dim, depth, hidden, rope=layout != "vjepa")
    tubelet = patch.shape[2] if video else 2
    if layout == "vjepa":
        t, h, _ = token_grid(encoder["pos_embed"].shape[1], video)
        frames, size = (t * tubelet if video else 1), h * patch.shape[-1]
    else:
        frames, size = RELEASED_GEOMETRY[layout]
    model = {
        "name": name,
        "num_frames": frames,
        "img_size": size,
        "patch_size": patch.shape[-1],
        "tubelet_size": tubelet,
        "uniform_power": True,
        "pred_depth": 12,
        "pred_embed_dim": 384,
    }
    if predictor:
        model["pred_depth"] = len(block_indices(predictor, "predictor_blocks"))
        embed = predictor.get("predictor_embed.weight", predictor.get("predictor_embed.2.weight"))
        if embed is not None:
            model["pred_embed_dim"] = embed.shape[0]
    if layout != "vjepa":
        model["pos"] = "rope"
        model["rope_layout"] = "tiled" if layout == "vjepa2" else "interleaved"
    if layout == "vjepa2.1":
        model["arch"] = "vjepa2_1"
    if layout != "vjepa" and PRESETS[name].num_heads != VJEPA2_PREDICTOR_HEADS:
        model["pred_num_heads"] = VJEPA2_PREDICTOR_HEADS
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


# entries holding the encoder a released file is evaluated with, preferred first: 2.1's distilled
# B/L files keep it as ``ema_encoder``, every other file as ``target_encoder``
ENCODER_ENTRIES = ("ema_encoder", "target_encoder")


def _drop_unused(ckpt: Checkpoint, module: str, state: State) -> State:
    """``state`` without the keys its layout ignores; they are recorded in ``ckpt.ignored``."""
    unused = unused_keys(ckpt.layout, module, state)
    if unused:
        ckpt.ignored.setdefault(module, []).extend(unused)
    return {k: v for k, v in state.items() if k not in unused}


def _released(raw: Mapping[str, Any]) -> Checkpoint:
    """A V-JEPA, V-JEPA 2 or 2.1 training file, read as its own loaders read it."""
    states = {k: state_dict_of(raw.get(k)) for k in (*ENCODER_ENTRIES, *MODULES)}
    entry = next((k for k in ENCODER_ENTRIES if states[k]), None)
    evaluated = states[entry] if entry else states["encoder"]
    assert evaluated is not None
    layout = file_layout(evaluated, states["predictor"])
    model = detect_model(evaluated, states["predictor"])
    skip = (*ENCODER_ENTRIES, *MODULES, "epoch")
    extra = {k: v for k, v in raw.items() if k not in skip}
    ckpt = Checkpoint(model, epoch=raw.get("epoch") or 0, extra=extra, official=True, layout=layout)
    if entry == "ema_encoder" and states["target_encoder"]:
        # the 2.1 loaders evaluate ema_encoder; the file's target_encoder is read by nothing
        ckpt.ignored["target_encoder"] = ["every key (the file's ema_encoder is evaluated)"]
    if entry is not None:
        ckpt.target_encoder = _drop_unused(ckpt, "target_encoder", evaluated)
    if states["encoder"]:
        ckpt.encoder = _drop_unused(ckpt, "encoder", states["encoder"])
    if states["predictor"]:
        ckpt.predictor = _drop_unused(ckpt, "predictor", states["predictor"])
    return ckpt


def load_checkpoint(path: str | Path, weights_only: bool = True) -> Checkpoint:
    """Read our layout, a released layout (V-JEPA, V-JEPA 2, V-JEPA 2.1; any of ``module.`` /
    ``backbone.`` prefixes), or a bare encoder state dict."""
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
    if any(isinstance(raw.get(k), Mapping) for k in (*ENCODER_ENTRIES, "encoder")):
        return _released(raw)
    state = strip_prefixes(raw)
    if "patch_embed.proj.weight" in state:
        layout = file_layout(state)
        ckpt = Checkpoint(detect_model(state), official=True, layout=layout)
        ckpt.encoder = ckpt.target_encoder = _drop_unused(ckpt, "encoder", state)
        return ckpt
    raise CheckpointError(f"{path}: not a V-JEPA checkpoint (no encoder or target_encoder weights)")


def check_state(own: Mapping[str, torch.Tensor], state: Mapping[str, Any], what: str) -> None:
    """A CheckpointError (one line, naming the key) unless ``state`` has exactly the keys and
    shapes of ``own``; V-JEPA 2's loader would swap a mismatched tensor for a random one."""
    for key, value in state.items():
        if key in own and tuple(value.shape) != tuple(own[key].shape):
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


def load_state(module: nn.Module, state: Mapping[str, torch.Tensor], what: str = "weights") -> None:
    """``module.load_state_dict(state, strict=True)``; a stored position table of another grid is
    replaced by the module's own (as the reference does); any other mismatch is a CheckpointError."""
    own = module.state_dict()
    state = dict(state)
    for key in POS_EMBED_KEYS:
        if key in state and key in own and state[key].shape != own[key].shape:
            state[key] = own[key]
    check_state(own, state, what)
    module.load_state_dict(state, strict=True)


def verify(ckpt: Checkpoint, what: str = "checkpoint") -> None:
    """Check every state dict of ``ckpt`` against the modules its model config builds (on the
    meta device: no memory, any size). V-JEPA 2.1's predictor is not one of our modules and is
    carried as read."""
    from vjepa.models.presets import build_encoder, build_from_config

    with torch.device("meta"):
        encoder = build_encoder(**encoder_kwargs(ckpt.model))
    own = {k: v for k, v in encoder.state_dict().items() if k not in POS_EMBED_KEYS}
    for name in ("encoder", "target_encoder"):
        state = getattr(ckpt, name)
        if state:
            check_state({**own, **_pos_of(encoder, state)}, state, f"{what} {name}")
    if ckpt.predictor and ckpt.model.get("arch", MODEL_DEFAULTS["arch"]) == "vjepa":
        with torch.device("meta"):
            _, predictor = build_from_config(ckpt.model, num_mask_tokens=ckpt.num_mask_tokens)
        own = {k: v for k, v in predictor.state_dict().items() if k not in POS_EMBED_KEYS}
        check_state(
            {**own, **_pos_of(predictor, ckpt.predictor)}, ckpt.predictor, f"{what} predictor"
        )


def _pos_of(module: nn.Module, state: Mapping[str, Any]) -> dict[str, Any]:
    """The module's position tables, at the stored grid where the file has one (resized on load)."""
    own = module.state_dict()
    return {k: state.get(k, own[k]) for k in POS_EMBED_KEYS if k in own}


def load_encoder(
    path: str | Path, which: str = "target_encoder", model_cfg: dict[str, Any] | None = None
) -> VisionTransformer:
    """Build the encoder a checkpoint describes (or ``model_cfg``) and load ``which`` into it."""
    ckpt = load_checkpoint(path)
    cfg = {**ckpt.model, **(model_cfg or {})}
    for key in ("pos", "arch", "rope_layout"):
        want, have = (c.get(key, MODEL_DEFAULTS[key]) for c in (cfg, ckpt.model))
        if want != have and (key != "rope_layout" or cfg.get("pos") == "rope"):
            raise CheckpointError(
                f"{path}: a {ckpt.layout} encoder with {key} {have!r}, but the model config "
                f"says model.{key}: {want!r}"
            )
    encoder = build_encoder(**encoder_kwargs(cfg))
    for module, keys in ckpt.ignored.items():
        log.warning("%s: %s layout, %s: ignored %s", path, ckpt.layout, module, ", ".join(keys))
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
