"""Masking ratios as the paper reports them: the share of tokens masked per sample, and the
context and target shares that survive truncation to the batch minimum."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from vjepa.masks.generators import MaskGenerator


def _batch_seed(seed: int, index: int) -> int:
    """A well-mixed 63-bit seed for batch ``index`` of a measurement seeded ``seed``."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def stats(
    masks_ctx: Sequence[torch.Tensor], masks_tgt: Sequence[torch.Tensor], num_tokens: int
) -> list[dict[str, float]]:
    """Per generator: context and target share of the ``num_tokens`` tokens (after truncation).

    ``target`` is what the paper calls the masking ratio as the reference measures it."""
    return [
        {"context": ctx.shape[1] / num_tokens, "target": tgt.shape[1] / num_tokens}
        for ctx, tgt in zip(masks_ctx, masks_tgt, strict=True)
    ]


def measure(
    generators: Sequence[MaskGenerator], batch_size: int = 24, batches: int = 50, seed: int = 0
) -> list[dict[str, float]]:
    """Per generator, averaged over ``batches`` batches: ``masked``, the mean per-sample target
    share before truncation (the masking ratio the reference reports: ~0.63 short-range, ~0.81
    long-range at 16x224^2), and ``context`` / ``target``, the shares left after truncation."""
    totals = [{"masked": 0.0, "context": 0.0, "target": 0.0} for _ in generators]
    for index in range(batches):
        generator = torch.Generator().manual_seed(_batch_seed(seed, index))
        for total, gen in zip(totals, generators, strict=True):
            target = gen.sample(batch_size, generator).flatten(1)
            total["masked"] += target.float().mean().item()
            total["context"] += int((~target).sum(1).min()) / target.shape[1]
            total["target"] += int(target.sum(1).min()) / target.shape[1]
    return [{k: v / batches for k, v in total.items()} for total in totals]
