"""V-JEPA models: the video ViT encoder (sin-cos or V-JEPA 2's RoPE positions), the narrow
predictor, the frozen-evaluation probes, and checkpoint I/O.

State-dict names and shapes match the reference implementations (V-JEPA, V-JEPA 2, V-JEPA 2.1),
so their checkpoints load into these modules unchanged. The names below load on first use, so
that the torch-free ``vjepa.models.sizes`` (read by the pipeline at compile time) imports without
torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Checkpoint": "checkpoint",
    "export_official": "checkpoint",
    "load_checkpoint": "checkpoint",
    "load_encoder": "checkpoint",
    "save_checkpoint": "checkpoint",
    "Predictor": "predictor",
    "build_encoder": "presets",
    "build_from_config": "presets",
    "build_predictor": "presets",
    "model_config": "presets",
    "build_probe": "probe",
    "MODEL_KEYS": "sizes",
    "PRESETS": "sizes",
    "VisionTransformer": "vit",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = sorted(_HOMES)
