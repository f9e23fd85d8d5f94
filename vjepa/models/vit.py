"""The V-JEPA encoder: a video ViT over tubelets with fixed sin-cos positions and no [cls] token.

State-dict names follow the reference (``patch_embed.proj``, ``pos_embed``, ``blocks.{i}.*``,
``norm``), so official checkpoints load with ``strict=True``.
"""

from __future__ import annotations

import torch
from torch import nn

from vjepa.models import pos_embed as pe
from vjepa.models.blocks import LN_EPS, Block, gather_tokens, init_weights, rescale_blocks


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


class VisionTransformer(nn.Module):
    """Video ViT: x [B, C, T, H, W] -> tokens [B, N, D] (or [B, K, D] for the kept indices).

    ``masks`` are token indices to keep, gathered after the positions are added (the context
    encoder of V-JEPA sees only the context tokens). A list of masks repeats the batch once per
    mask and concatenates along the batch, as the reference does.
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
    ) -> None:
        super().__init__()
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
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.num_patches, embed_dim), requires_grad=False
        )
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=LN_EPS)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reference init; the sin-cos table is written in place (it stays a fixed Parameter)."""
        if self.pos_embed.is_meta:
            return
        self.apply(init_weights)
        rescale_blocks(self.blocks)
        with torch.no_grad():
            table = pe.sincos(self.embed_dim, self.grid, self.uniform_power)
            self.pos_embed.copy_(table.unsqueeze(0))

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
        if self.is_video:
            if x.ndim != 5:
                raise ValueError(f"expected a clip [B, C, T, H, W], got shape {tuple(x.shape)}")
            grid = self.grid_for(*x.shape[2:])
        else:
            if x.ndim == 5:  # a one-frame clip [B, C, 1, H, W]
                x = x.squeeze(2)
            grid = self.grid_for(1, *x.shape[2:])
        x = self.patch_embed(x)
        x = x + self.positions(grid).to(x.dtype)
        if masks is not None:
            masks = masks if isinstance(masks, list | tuple) else [masks]
            x = torch.cat([gather_tokens(x, m) for m in masks], dim=0)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
