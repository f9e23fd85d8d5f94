"""Named encoder sizes and the token grid they make of a clip: plain numbers, no torch.

The pipeline reads these at compile time (the spec's model names, head counts, the size of a
feature store) without importing torch; ``vjepa.models.presets`` builds the modules from them.
The paper's sizes (``vit_tiny`` ... ``vit_giant``) follow the reference implementation; V-JEPA 2
and 2.1 release B, L and H at the same sizes plus two wider-headed giants (``vit_giant_xformers``,
22 heads; ``vit_gigantic_xformers``, 26 heads). Three small sizes are ours, for pretraining on a CPU
in minutes: ``vit_micro`` (96 wide, 4 blocks), ``vit_mini`` (192 wide, 6 blocks) and ``vit_mini4``
(192 wide, 4 blocks).

Positions are a model choice (``pos``): V-JEPA's fixed 3-D sin-cos table added to the tokens, or
V-JEPA 2's 3-D rotary embedding inside every attention layer, whose channel pairing is the
``rope_layout`` (V-JEPA 2's ``tiled`` angles, kept by V-JEPA 2 for checkpoint compatibility, or
V-JEPA 2.1's ``interleaved`` true rotation). ``arch: vjepa2_1`` is the V-JEPA 2.1 encoder (image
tokenizer, modality embeddings, four normed output levels instead of one final norm).
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
    # V-JEPA 2 / 2.1 giants (vit_giant_xformers / vit_gigantic_xformers in their code)
    "vit_giant_xformers": Preset(1408, 40, 22, 48 / 11),
    "vit_gigantic_xformers": Preset(1664, 48, 26, 64 / 13),
}

# the sizes V-JEPA 2 / 2.1 released: a RoPE checkpoint's width, depth and MLP width name one
# of these first (a 1408-wide, 40-deep RoPE file is the 22-head giant, never V-JEPA's 16-head one)
VJEPA2_PRESETS = (
    "vit_base",
    "vit_large",
    "vit_huge",
    "vit_giant_xformers",
    "vit_gigantic_xformers",
)

POS_KINDS = ("sincos", "rope")
ROPE_LAYOUTS = ("tiled", "interleaved")
ARCHS = ("vjepa", "vjepa2_1")
# keys a model config may leave out: without them it is V-JEPA's encoder (sin-cos positions) and
# a predictor with the encoder's head count (V-JEPA 2's predictors use 12 heads at every size)
MODEL_DEFAULTS: dict[str, str | int | None] = {
    "pos": "sincos",
    "rope_layout": "tiled",
    "arch": "vjepa",
    "pred_num_heads": None,
}

# the frozen-evaluation probes vjepa.models.probe builds
PROBE_KINDS = ("attentive", "attentive_v2", "linear")
# V-JEPA 2's attentive probe: 3 self-attention blocks, then the query cross-attention; 16 heads
PROBE_V2_DEPTH = 4
PROBE_V2_HEADS = 16

MODEL_KEYS = (
    "name",
    "num_frames",
    "img_size",
    "patch_size",
    "tubelet_size",
    "uniform_power",
    "pred_depth",
    "pred_embed_dim",
    *MODEL_DEFAULTS,
)


# the blocks whose outputs V-JEPA 2.1 normalises (``norms_block.{k}``); other depths: even quarters
HIERARCHICAL_LAYERS = {
    12: (2, 5, 8, 11),
    24: (5, 11, 17, 23),
    40: (9, 19, 29, 39),
    48: (11, 23, 37, 47),
}


def hierarchical_layers(depth: int) -> tuple[int, ...]:
    """The four block indices of a depth-``depth`` V-JEPA 2.1 encoder's output levels."""
    if depth in HIERARCHICAL_LAYERS:
        return HIERARCHICAL_LAYERS[depth]
    if depth < 4:
        raise ValueError(f"a V-JEPA 2.1 encoder needs at least 4 blocks, got {depth}")
    return tuple(depth * (k + 1) // 4 - 1 for k in range(4))


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
