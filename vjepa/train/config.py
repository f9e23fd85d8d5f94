"""The ``pretrain`` stage config: defaults (the paper's ViT-L recipe) and validation."""

from __future__ import annotations

import math
from typing import Any

from vjepa.errors import UserError

PRETRAIN_DEFAULTS: dict[str, Any] = {
    "target": "feature",  # feature | pixel (Table 1)
    "seed": 0,
    "batch_size": 24,  # per process and micro-step; global = batch_size * world * accumulation
    "epochs": 300,
    "iterations_per_epoch": 300,  # optimizer steps per epoch; the loader cycles the videos
    "start_lr": 2.0e-4,
    "lr": 6.25e-4,
    "final_lr": 1.0e-6,
    "warmup_epochs": 40,
    "ipe_scale": 1.25,
    "weight_decay": 0.04,
    "final_weight_decay": 0.4,
    "ema": [0.998, 1.0],
    "clip_grad": 10.0,  # per module (encoder, predictor), after warmup as in the reference
    "accumulation_steps": 1,
    "dtype": "auto",  # autocast dtype: auto | bfloat16 | float16 (GPU, GradScaler) | float32
    "compile": False,  # torch.compile (inductor; its cache persists, see vjepa.train.compiling)
    "checkpoint_every": 100,
    "log_every": 10,
    "max_loss": 1.0e4,
    "deterministic": False,  # torch.use_deterministic_algorithms (bitwise resume tests)
    "device": "auto",  # auto | cpu | cuda
    "progress": True,  # rich progress bar on rank 0
}

CLIP_DEFAULTS: dict[str, Any] = {
    "frames_per_clip": 16,
    "frame_step": 4,
    "crop_size": 224,
    "random_resize_scale": [0.3, 1.0],
    "random_resize_aspect_ratio": [0.75, 1.35],
    "hflip": 0.5,
    "num_workers": 2,
}

DATA_DEFAULTS: dict[str, Any] = {"index": None, "split": "train", "tasks": None}

# ``auto``: bfloat16 on a GPU and on CPUs with native bfloat16, else float32 (vjepa.train.precision)
DTYPES = ("auto", "bfloat16", "float16", "float32")


def _merge(section: str, given: dict | None, defaults: dict[str, Any]) -> dict[str, Any]:
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise UserError(
            f"pretrain config: unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}"
        )
    return {**defaults, **given}


def resolve(config: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults into the ``data``, ``clip`` and ``pretrain`` sections and check them."""
    for key in ("model", "masking"):
        if not isinstance(config.get(key), dict):
            raise UserError(f"pretrain config: section '{key}' is missing")
    cfg = dict(config)
    data = config.get("data") or {}
    if "mixture" in data:
        cfg["data"] = {"mixture": _mixture_entries(data), "split": data.get("split", "train")}
    else:
        cfg["data"] = _merge("data", data, DATA_DEFAULTS)
    cfg["clip"] = _merge("clip", config.get("clip"), CLIP_DEFAULTS)
    cfg["pretrain"] = p = _merge("pretrain", config.get("pretrain"), PRETRAIN_DEFAULTS)
    if "mixture" not in cfg["data"] and cfg["data"]["index"] is None:
        raise UserError("pretrain config: data.index (or data.mixture) is required")
    if p["target"] not in ("feature", "pixel"):
        raise UserError(
            f"pretrain config: pretrain.target must be feature or pixel, not {p['target']!r}"
        )
    if p["dtype"] not in DTYPES:
        raise UserError(f"pretrain config: pretrain.dtype must be one of {', '.join(DTYPES)}")
    for key in ("batch_size", "epochs", "iterations_per_epoch", "accumulation_steps"):
        if int(p[key]) < 1:
            raise UserError(f"pretrain config: pretrain.{key} must be >= 1")
    model, clip = cfg["model"], cfg["clip"]
    if "num_frames" in model and model["num_frames"] != clip["frames_per_clip"]:
        raise UserError(
            f"pretrain config: clip.frames_per_clip {clip['frames_per_clip']} != "
            f"model.num_frames {model['num_frames']}"
        )
    if "img_size" in model and model["img_size"] != clip["crop_size"]:
        raise UserError(
            f"pretrain config: clip.crop_size {clip['crop_size']} != model.img_size {model['img_size']}"
        )
    return cfg


def _mixture_entries(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The checked ``mixture`` entries ``{index, task, weight}``, sorted by dataset name."""
    unknown = sorted(set(data) - {"mixture", "split"})
    if unknown:
        raise UserError(
            f"pretrain config: a data.mixture takes only data.split, not data.{', data.'.join(unknown)}"
        )
    entries = data["mixture"]
    if not isinstance(entries, list) or not entries:
        raise UserError("pretrain config: data.mixture must be a non-empty list of datasets")
    checked = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"index", "task", "weight"}:
            raise UserError(f"pretrain config: data.mixture[{i}] needs exactly index, task, weight")
        weight = entry["weight"]
        if weight is None:  # concatenated: files weigh the same across datasets
            checked.append(
                {"index": str(entry["index"]), "task": str(entry["task"]), "weight": None}
            )
            continue
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise UserError(f"pretrain config: data.mixture[{i}].weight must be a number")
        if not (math.isfinite(weight) and weight > 0):
            raise UserError(f"pretrain config: data.mixture[{i}].weight must be > 0")
        checked.append({"index": str(entry["index"]), "task": str(entry["task"]), "weight": weight})
    if len({e["weight"] is None for e in checked}) > 1:
        raise UserError("pretrain config: data.mixture weights: give every dataset one, or none")
    names = [e["task"] for e in checked]
    if len(set(names)) != len(names):
        raise UserError(f"pretrain config: data.mixture names a dataset twice ({', '.join(names)})")
    return sorted(checked, key=lambda e: e["task"])
