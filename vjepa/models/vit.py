"""The V-JEPA encoder: a video ViT over tubelets with no [cls] token, in three layouts.

- ``pos: sincos`` (V-JEPA): a fixed 3-D sin-cos ``pos_embed`` is added to the tokens.
- ``pos: rope`` (V-JEPA 2): no position table; every attention layer rotates queries and keys
  by the tokens' grid coordinates (``vjepa.models.rope``, ``tiled`` or ``interleaved`` angles).
- ``arch: vjepa2_1`` (V-JEPA 2.1, with RoPE): a second tokenizer for images (``patch_embed_img``,
  one frame deep), a learned image or video embedding added to every token, and four LayerNorms
  (``norms_block``) on evenly spaced blocks instead of one final ``norm``; the output is the last
  one's. Height and width positions are rescaled to the 16-row grid it was trained on.

State-dict names follow the reference code of each (``patch_embed.proj``, ``pos_embed``,
``blocks.{i}.*``, ``norm`` / ``norms_block.{k}``), so their checkpoints load with ``strict=True``.
"""

from __future__ import annotations

import torch
from torch import nn

from vjepa.models import pos_embed as pe
from vjepa.models.blocks import LN_EPS, Block, gather_tokens, init_weights, rescale_blocks
from vjepa.models.rope import Rotary, full_index, grid_coords
from vjepa.models.sizes import ARCHS, MODEL_DEFAULTS, POS_KINDS, ROPE_LAYOUTS, hierarchical_layers


class PatchEmbed3D(nn.Module):
    """Tubelet embedding: a (tubelet, patch, patch) Conv3d with equal stride; tokens in (t, h, w)
    order, w fastest."""

    def __init__(self, patch_size: int, tubelet_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        k = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class PatchEmbed2D(nn.Module):
    """Image patch embedding (one-frame encoders): a (patch, patch) Conv2d."""

    def __init__(self, patch_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


Masks = torch.Tensor | list[torch.Tensor] | None


def check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    """A ValueError naming ``key`` when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f"model.{key}: unknown value {value!r} (expected {', '.join(choices)})")


def rope_reference_grid(patch_size: int) -> int:
    """The patch rows V-JEPA 2.1 rescales height and width positions to: 256 px worth of patches
    (16 for patch 16, 18 for patch 14)."""
    return 256 // patch_size


class VisionTransformer(nn.Module):
    """Video ViT: x [B, C, T, H, W] -> tokens [B, N, D] (or [B, K, D] for the kept indices).

    ``masks`` are token indices to keep, gathered after the positions are added (the context
    encoder of V-JEPA sees only the context tokens); under RoPE the kept tokens rotate by their
    own indices. A list of masks repeats the batch once per mask and concatenates along the
    batch, as the reference does.
    """

    def __init__(
        self,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        num_frames: int = 16,
        img_size: int = 224,
        patch_size: int = 16,
        tubelet_size: int = 2,
        in_chans: int = 3,
        uniform_power: bool = True,
        preset: str | None = None,
        pos: str = str(MODEL_DEFAULTS["pos"]),
        rope_layout: str = str(MODEL_DEFAULTS["rope_layout"]),
        arch: str = str(MODEL_DEFAULTS["arch"]),
    ) -> None:
        super().__init__()
        check_choice("pos", pos, POS_KINDS)
        check_choice("rope_layout", rope_layout, ROPE_LAYOUTS)
        check_choice("arch", arch, ARCHS)
        if arch == "vjepa2_1" and (pos != "rope" or num_frames == 1):
            raise ValueError("model.arch: vjepa2_1 is a video encoder with pos: rope")
        self.pos, self.rope_layout, self.arch = pos, rope_layout, arch
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.num_frames = num_frames
        self.img_size = img_size
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.uniform_power = uniform_power
        self.preset = preset
        self.is_video = num_frames > 1
        if self.is_video:
            if num_frames % tubelet_size:
                raise ValueError(
                    f"num_frames {num_frames} is not a multiple of tubelet {tubelet_size}"
                )
            self.patch_embed: nn.Module = PatchEmbed3D(
                patch_size, tubelet_size, in_chans, embed_dim
            )
        else:
            self.patch_embed = PatchEmbed2D(patch_size, in_chans, embed_dim)
        self.grid = self.grid_for(num_frames, img_size, img_size)
        self.num_patches = self.grid[0] * self.grid[1] * self.grid[2]
        self.pos_embed: nn.Parameter | None = None
        if pos == "sincos":
            self.pos_embed = nn.Parameter(
                torch.zeros(1, self.num_patches, embed_dim), requires_grad=False
            )
        if arch == "vjepa2_1":
            self.patch_embed_img = PatchEmbed3D(patch_size, 1, in_chans, embed_dim)
            self.img_mod_embed = nn.Parameter(torch.zeros(1, 1, embed_dim))
            self.video_mod_embed = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        if arch == "vjepa2_1":
            self.levels = hierarchical_layers(depth)
            self.norms_block = nn.ModuleList(
                nn.LayerNorm(embed_dim, eps=LN_EPS) for _ in self.levels
            )
        else:
            self.norm = nn.LayerNorm(embed_dim, eps=LN_EPS)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reference init; the sin-cos table is written in place (it stays a fixed Parameter)."""
        if self.patch_embed.proj.weight.is_meta:
            return
        self.apply(init_weights)
        rescale_blocks(self.blocks)
        with torch.no_grad():
            if self.pos_embed is not None:
                table = pe.sincos(self.embed_dim, self.grid, self.uniform_power)
                self.pos_embed.copy_(table.unsqueeze(0))
            if self.arch == "vjepa2_1":
                nn.init.trunc_normal_(self.img_mod_embed, std=0.02)
                nn.init.trunc_normal_(self.video_mod_embed, std=0.02)

    def rotary(self, index: torch.Tensor, grid: tuple[int, int, int]) -> Rotary:
        """The rotation of tokens at flat ``index`` [B, K] of an input ``grid``."""
        coords = grid_coords(index, grid)
        if self.arch == "vjepa2_1":  # h, w rescaled to the 16-row training grid; t unchanged
            ref = rope_reference_grid(self.patch_size) - 1
            coords = coords.float()
            for axis in (1, 2):
                if grid[axis] > 1:
                    coords[..., axis] *= ref / (grid[axis] - 1)
        return Rotary(coords, self.embed_dim // self.num_heads, self.rope_layout)

    def grid_for(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Token grid (T', H', W') of a clip of the given size."""
        t = frames // self.tubelet_size if self.is_video else 1
        return t, height // self.patch_size, width // self.patch_size

    def positions(self, grid: tuple[int, int, int]) -> torch.Tensor:
        """The position table for an input grid, resized from the construction grid if needed."""
        if grid == self.grid:
            return self.pos_embed
        if not self.is_video:
            return pe.resize(self.pos_embed, self.grid[1:], grid[1:])
        return pe.resize(self.pos_embed, self.grid, grid)

    def forward(self, x: torch.Tensor, masks: Masks = None) -> torch.Tensor:
        image = False
        if self.is_video:
            if x.ndim != 5:
                raise ValueError(f"expected a clip [B, C, T, H, W], got shape {tuple(x.shape)}")
            image = self.arch == "vjepa2_1" and x.shape[2] == 1
            grid = (
                (1, *self.grid_for(1, *x.shape[3:])[1:]) if image else self.grid_for(*x.shape[2:])
            )
        else:
            if x.ndim == 5:  # a one-frame clip [B, C, 1, H, W]
                x = x.squeeze(2)
            grid = self.grid_for(1, *x.shape[2:])
        if image:
            x = self.patch_embed_img(x) + self.img_mod_embed.to(x.dtype)
        else:
            x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self.positions(grid).to(x.dtype)
        if self.arch == "vjepa2_1" and not image:
            x = x + self.video_mod_embed.to(x.dtype)
        index = full_index(grid, x.device)
        if masks is not None:
            masks = masks if isinstance(masks, list | tuple) else [masks]
            x = torch.cat([gather_tokens(x, m) for m in masks], dim=0)
            index = torch.cat(list(masks), dim=0)
        rope = self.rotary(index, grid) if self.pos == "rope" else None
        for block in self.blocks:
            x = block(x, rope)
        if self.arch == "vjepa2_1":
            return self.norms_block[-1](x)
        return self.norm(x)
