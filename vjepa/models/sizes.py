"""Named encoder sizes and the token grid they make of a clip: plain numbers, no torch.

The pipeline reads these at compile time (the spec's model names, head counts, the size of a
feature store) without importing torch; ``vjepa.models.presets`` builds the modules from them.
The paper's sizes (``vit_tiny`` ... ``vit_giant``) follow the reference implementation. Three small
sizes are ours, for pretraining on a CPU in minutes: ``vit_micro`` (96 wide, 4 blocks),
``vit_mini`` (192 wide, 6 blocks) and ``vit_mini4`` (192 wide, 4 blocks).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0


PRESETS: dict[str, Preset] = {
    # ours: CPU-sized encoders
    "vit_micro": Preset(96, 4, 3),
    "vit_mini": Preset(192, 6, 3),
    "vit_mini4": Preset(192, 4, 3),  # docs/science.md's 192-wide search point
    # the paper's / reference sizes
    "vit_tiny": Preset(192, 12, 3),
    "vit_small": Preset(384, 12, 6),
    "vit_base": Preset(768, 12, 12),
    "vit_large": Preset(1024, 24, 16),
    "vit_huge": Preset(1280, 32, 16),
    "vit_giant": Preset(1408, 40, 16, 48 / 11),
}

# the frozen-evaluation probes vjepa.models.probe builds
PROBE_KINDS = ("attentive", "linear")

MODEL_KEYS = (
    "name",
    "num_frames",
    "img_size",
    "patch_size",
    "tubelet_size",
    "uniform_power",
    "pred_depth",
    "pred_embed_dim",
)


def preset(name: str) -> Preset:
    """The preset called ``name``; a ValueError lists the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown encoder {name!r} (known: {', '.join(PRESETS)})") from None


def token_grid(
    num_frames: int, tubelet_size: int, patch_size: int, frames: int, crop: int
) -> tuple[int, int, int]:
    """Token grid (T', H', W') an encoder built for ``num_frames`` makes of a frames x crop^2 clip
    (an image encoder, ``num_frames == 1``, sees one frame: T' = 1)."""
    t = frames // tubelet_size if num_frames > 1 else 1
    return t, crop // patch_size, crop // patch_size
