"""Mask generators over a (T, H, W) token grid: V-JEPA's 3-D multi-block and random-tube masks.

A generator returns, for a batch, the context indices (what the context encoder sees) and the
target indices (what the predictor must predict), each ascending and truncated to the batch's
minimum count so the batch stacks into one tensor, as in the reference collator.
All randomness comes from the ``torch.Generator`` passed in, so masks are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Grid = tuple[int, int, int]
Masks = tuple[torch.Tensor, torch.Tensor]
MAX_RESAMPLES = 100


def uniform(bounds: tuple[float, float], generator: torch.Generator) -> float:
    """One draw from U(lo, hi)."""
    lo, hi = bounds
    return lo + torch.rand(1, generator=generator).item() * (hi - lo)


def truncated_indices(keep: torch.Tensor) -> torch.Tensor:
    """Ascending indices of the True entries of each row of ``keep`` [B, N], cut to the smallest
    row count: [B, min_b sum(keep[b])]."""
    k = int(keep.sum(1).min())
    order = torch.argsort((~keep).to(torch.uint8), dim=1, stable=True)
    return order[:, :k]


def split(target: torch.Tensor) -> Masks:
    """(context, target) index tensors from a boolean target mask [B, T, H, W]."""
    target = target.flatten(1)
    return truncated_indices(~target), truncated_indices(target)


@dataclass
class MultiBlock:
    """Multi-block 3-D masking: the target is the union of ``num_blocks`` random spatio-temporal
    blocks, the context is the rest.

    The block size (duration, height, width) is drawn once per batch; block positions per
    sample. With ``max_temporal_keep`` p < 1 the time slices from max(1, int(T * p)) on are also
    targets: the context covers only the start of the clip (the paper's causal multi-block).
    """

    grid: Grid
    num_blocks: int = 8
    spatial_scale: tuple[float, float] = (0.15, 0.15)
    temporal_scale: tuple[float, float] = (1.0, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    max_temporal_keep: float = 1.0

    kind = "multiblock"

    @property
    def context_duration(self) -> int:
        """Leading time slices the context may come from."""
        return max(1, int(self.grid[0] * self.max_temporal_keep))

    def block_size(self, generator: torch.Generator) -> Grid:
        """(t, h, w) of this batch's blocks, drawn as the reference collator does."""
        T, H, W = self.grid
        t = max(1, int(T * uniform(self.temporal_scale, generator)))
        keep = int(H * W * uniform(self.spatial_scale, generator))
        ar = uniform(self.aspect_ratio, generator)
        h = min(max(1, round((keep * ar) ** 0.5)), H)  # >= 1: tiny grids still get a target
        w = min(max(1, round((keep / ar) ** 0.5)), W)
        return t, h, w

    def blocks(self, batch_size: int, size: Grid, generator: torch.Generator) -> torch.Tensor:
        """Boolean target mask [B, T, H, W]: the union of the blocks placed per sample."""
        covered = []
        for extent, length in zip(size, self.grid, strict=True):
            start = torch.randint(
                0, length - extent + 1, (batch_size, self.num_blocks, 1), generator=generator
            )
            pos = torch.arange(length)
            covered.append((pos >= start) & (pos < start + extent))  # [B, blocks, length]
        t, h, w = covered
        target = (t[..., :, None, None] & h[..., None, :, None] & w[..., None, None, :]).any(1)
        target[:, self.context_duration :] = True
        return target

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Boolean target mask [B, T, H, W] of one batch; a sample left without context is
        redrawn (same block size)."""
        size = self.block_size(generator)
        target = self.blocks(batch_size, size, generator)
        for _ in range(MAX_RESAMPLES):
            empty = target.flatten(1).all(1)
            if not empty.any():
                return target
            target[empty] = self.blocks(int(empty.sum()), size, generator)
        raise ValueError(f"{self} leaves no context tokens on grid {self.grid}")

    def __call__(self, batch_size: int, generator: torch.Generator) -> Masks:
        return split(self.sample(batch_size, generator))


@dataclass
class RandomTube:
    """Random-tube[r] masking: keep int(H*W*(1-r)) random spatial positions as context, the same
    ones at every time slice; everything else is the target."""

    grid: Grid
    ratio: float = 0.9

    kind = "random_tube"

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Boolean target mask [B, T, H, W] of one batch."""
        T, H, W = self.grid
        keep = int(H * W * (1 - self.ratio))
        if keep < 1:
            raise ValueError(f"random_tube ratio {self.ratio} keeps no context on a {H}x{W} grid")
        chosen = torch.rand(batch_size, H * W, generator=generator).argsort(1)[:, :keep]
        context = torch.zeros(batch_size, H * W, dtype=torch.bool)
        context.scatter_(1, chosen, True)
        return ~context.view(batch_size, 1, H, W).expand(-1, T, -1, -1)

    def __call__(self, batch_size: int, generator: torch.Generator) -> Masks:
        return split(self.sample(batch_size, generator))


MaskGenerator = MultiBlock | RandomTube
