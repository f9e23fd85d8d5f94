"""3-D rotary position embedding (RoPE) of V-JEPA 2 and V-JEPA 2.1.

Each attention head's channels are cut into three chunks of ``A = 2 * floor(floor(head_dim / 3) / 2)``
channels, rotated by the token's time, height and width index; the remaining ``head_dim - 3A``
channels are not rotated. Only queries and keys rotate, every head with the same angles, so q.k
depends on where two tokens are relative to each other rather than on an added position table.

Within a chunk, frequency ``omega_j = 10000 ** (-j / (A / 2))`` for ``j < A / 2`` and angle
``pos * omega_j``. Channels are paired (2i, 2i + 1) with partner ``r[2i] = -x[2i + 1]``,
``r[2i + 1] = x[2i]`` and output ``x * cos + r * sin``. The two layouts differ in which angle a
channel uses:

- ``tiled`` (V-JEPA 2): channel m uses angle ``m mod A/2``, so a pair's two channels turn by
  different angles; not a rotation, but V-JEPA 2's weights were trained with it.
- ``interleaved`` (V-JEPA 2.1): channel m uses angle ``m // 2``, the standard pair rotation.

Positions are a token's grid coordinates (tubelet index, patch row, patch column) from the actual
input grid; a masked encoder keeps every kept token's own index. Angles are computed in the
queries' dtype, as V-JEPA 2 does under autocast.
"""

from __future__ import annotations

import torch

from vjepa.models.sizes import ROPE_LAYOUTS

BASE = 10000.0


def rope_dims(head_dim: int) -> int:
    """Channels per axis, ``A``: 20 for a 64-wide head, 26 for an 80-wide one."""
    return 2 * ((head_dim // 3) // 2)


def grid_coords(index: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """(t, h, w) of flat token indices ``t * H * W + h * W + w``: [...] -> [..., 3] (integers)."""
    _, h, w = grid
    return torch.stack((index // (h * w), (index % (h * w)) // w, index % w), dim=-1)


def full_index(grid: tuple[int, int, int], device: torch.device | None = None) -> torch.Tensor:
    """Every token index of ``grid`` in (t, h, w) order: [1, T * H * W]."""
    return torch.arange(grid[0] * grid[1] * grid[2], device=device).unsqueeze(0)


def axis_angles(pos: torch.Tensor, dims: int, layout: str) -> torch.Tensor:
    """Per-channel angles of one axis chunk: [...] -> [..., dims], in ``pos``'s dtype."""
    half = dims // 2
    omega = torch.arange(half, dtype=pos.dtype, device=pos.device) / half
    omega = 1.0 / BASE**omega
    angles = pos.unsqueeze(-1) * omega
    if layout == "tiled":
        return torch.cat((angles, angles), dim=-1)
    return angles.repeat_interleave(2, dim=-1)


def partner(x: torch.Tensor) -> torch.Tensor:
    """``r[2i] = -x[2i + 1], r[2i + 1] = x[2i]`` over the last dimension."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


class Rotary:
    """The rotation of one forward pass: coordinates [B, N, 3] of the tokens in a sequence.

    ``apply`` rotates queries or keys [B, heads, N, head_dim]; cos/sin are built once per dtype
    and shared by every layer.
    """

    def __init__(self, coords: torch.Tensor, head_dim: int, layout: str = "tiled") -> None:
        if layout not in ROPE_LAYOUTS:
            raise ValueError(f"unknown RoPE layout {layout!r} (expected {', '.join(ROPE_LAYOUTS)})")
        self.dims = rope_dims(head_dim)
        if self.dims < 2:
            raise ValueError(f"RoPE needs heads at least 6 channels wide, got {head_dim}")
        self.coords, self.layout = coords, layout
        self._tables: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}

    def tables(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin [B, 1, N, 3A] for the three axis chunks side by side."""
        if dtype not in self._tables:
            pos = self.coords.to(dtype)
            angles = torch.cat(
                [axis_angles(pos[..., a], self.dims, self.layout) for a in range(3)], dim=-1
            ).unsqueeze(1)
            self._tables[dtype] = (angles.cos(), angles.sin())
        return self._tables[dtype]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        cos, sin = self.tables(x.dtype)
        n = cos.shape[-1]
        head, rest = x[..., :n], x[..., n:]
        return torch.cat((head * cos + partner(head) * sin, rest), dim=-1)
