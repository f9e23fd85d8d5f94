"""V-JEPA masking: which tokens the context encoder sees and which the predictor must predict."""

from __future__ import annotations

from vjepa.masks.collator import MaskCollator, batch_seed, measure, sample_masks, stats
from vjepa.masks.config import PRESETS, build_mask_generators, preset
from vjepa.masks.generators import MaskGenerator, MultiBlock, RandomTube, truncated_indices

__all__ = [
    "PRESETS",
    "MaskCollator",
    "MaskGenerator",
    "MultiBlock",
    "RandomTube",
    "batch_seed",
    "measure",
    "build_mask_generators",
    "preset",
    "sample_masks",
    "stats",
    "truncated_indices",
]
