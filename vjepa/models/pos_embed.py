"""Fixed sin-cos position embeddings (V-JEPA, following MAE) and their trilinear resizing.

The embedding of a token is the concatenation of 1-D sin-cos codes of its grid coordinates.
With ``uniform_power=True`` (V-JEPA's configs) the time, height and width codes get the same
width, ``2 * ceil(D / 6)``, and the concatenation is cut to ``D``; otherwise time gets ``D / 2`` and
height and width ``D / 4`` each.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """``[sin(p * omega), cos(p * omega)]`` with ``omega_k = 10000 ** (-k / (dim / 2))``: [M, dim]."""
    if dim % 2:
        raise ValueError(f"a 1-D sin-cos embedding needs an even width, got {dim}")
    half = dim // 2
    omega = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64) / half)
    angles = positions.to(torch.float64).reshape(-1, 1) * omega
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def axis_dims(dim: int, uniform_power: bool = True) -> tuple[int, int, int]:
    """Widths of the (time, height, width) codes for a ``dim``-channel 3-D embedding."""
    if uniform_power:
        d = int(math.ceil(dim / 6) * 2)
        return d, d, d
    return dim // 2, dim // 4, dim // 4


def sincos_3d(dim: int, grid: tuple[int, int, int], uniform_power: bool = True) -> torch.Tensor:
    """3-D embedding of a (T, H, W) token grid in (t, h, w) order, w fastest: [T*H*W, dim]."""
    t, h, w = (torch.arange(n) for n in grid)
    tt, hh, ww = torch.meshgrid(t, h, w, indexing="ij")
    dt, dh, dw = axis_dims(dim, uniform_power)
    emb = torch.cat([sincos_1d(dt, tt), sincos_1d(dh, hh), sincos_1d(dw, ww)], dim=1)
    return emb[:, :dim].float()


def sincos_2d(dim: int, grid: tuple[int, int]) -> torch.Tensor:
    """2-D embedding of an (H, W) image grid as in MAE: first half codes the column, second the row."""
    h, w = (torch.arange(n) for n in grid)
    hh, ww = torch.meshgrid(h, w, indexing="ij")
    return torch.cat([sincos_1d(dim // 2, ww), sincos_1d(dim // 2, hh)], dim=1).float()


def sincos(dim: int, grid: tuple[int, int, int], uniform_power: bool = True) -> torch.Tensor:
    """The embedding the encoder stores: 3-D for clips, MAE's 2-D for one-frame (image) grids."""
    if grid[0] == 1:
        return sincos_2d(dim, grid[1:])
    return sincos_3d(dim, grid, uniform_power)


def resize(
    pos_embed: torch.Tensor, grid: tuple[int, ...], new_grid: tuple[int, ...]
) -> torch.Tensor:
    """Resample a [1, prod(grid), D] embedding to ``new_grid`` (trilinear / bilinear), as the
    reference encoder does for clips of another length or resolution."""
    if tuple(grid) == tuple(new_grid):
        return pos_embed
    dim = pos_embed.shape[-1]
    mode = "trilinear" if len(grid) == 3 else "bilinear"
    x = pos_embed.reshape(1, *grid, dim).movedim(-1, 1)
    x = F.interpolate(x, size=tuple(new_grid), mode=mode, align_corners=False)
    return x.movedim(1, -1).reshape(1, -1, dim)
