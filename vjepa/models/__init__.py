"""V-JEPA models: the video ViT encoder, the narrow predictor, and checkpoint I/O.

State-dict names and shapes match the reference implementation, so official checkpoints load
into these modules unchanged.
"""

from __future__ import annotations

from typing import Any

from vjepa.models.checkpoint import (
    Checkpoint,
    export_official,
    load_checkpoint,
    load_encoder,
    save_checkpoint,
)
from vjepa.models.predictor import Predictor
from vjepa.models.presets import (
    MODEL_KEYS,
    PRESETS,
    build_encoder,
    build_from_config,
    build_predictor,
    model_config,
)
from vjepa.models.vit import VisionTransformer


def build_probe(*args: Any, **kwargs: Any) -> Any:
    """Frozen-evaluation probe; see ``vjepa.models.probe.build_probe``."""
    from vjepa.models.probe import build_probe as _build_probe

    return _build_probe(*args, **kwargs)


__all__ = [
    "MODEL_KEYS",
    "PRESETS",
    "Checkpoint",
    "Predictor",
    "VisionTransformer",
    "build_encoder",
    "build_from_config",
    "build_predictor",
    "build_probe",
    "export_official",
    "load_checkpoint",
    "load_encoder",
    "model_config",
    "save_checkpoint",
]
