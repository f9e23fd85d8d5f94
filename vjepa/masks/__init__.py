"""V-JEPA masking: which tokens the context encoder sees and which the predictor must predict."""

from __future__ import annotations

from vjepa.masks.config import PRESETS, build_mask_generators, preset
from vjepa.masks.generators import MaskGenerator, MultiBlock, RandomTube, truncated_indices
from vjepa.masks.ratios import measure, stats

__all__ = [
    "PRESETS",
    "MaskGenerator",
    "MultiBlock",
    "RandomTube",
    "measure",
    "build_mask_generators",
    "preset",
    "stats",
    "truncated_indices",
]
