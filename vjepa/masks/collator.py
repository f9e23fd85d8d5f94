"""DataLoader collation with masks: each batch gets one (context, target) pair per generator.

Masks are a function of (seed, global batch index) only, so they do not depend on the number of
workers' timing and a resumed run draws the same masks as an uninterrupted one. In a worker, the
DataLoader hands batch i to worker i % num_workers, so worker w's c-th batch is global batch
``offset + c * num_workers + w``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import default_collate, get_worker_info

from vjepa.masks.generators import MaskGenerator


def batch_seed(seed: int, index: int) -> int:
    """A well-mixed 63-bit seed for batch ``index`` of a run seeded ``seed``."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def sample_masks(
    generators: Sequence[MaskGenerator], batch_size: int, generator: torch.Generator
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One (context, target) pair per generator, all drawn from ``generator``."""
    masks_ctx, masks_tgt = [], []
    for gen in generators:
        ctx, tgt = gen(batch_size, generator)
        masks_ctx.append(ctx)
        masks_tgt.append(tgt)
    return masks_ctx, masks_tgt


class MaskCollator:
    """``collate_fn`` returning (default_collate(items), masks_ctx list, masks_tgt list).

    Call ``set_step(global_step)`` (or ``set_epoch``) before iterating a DataLoader, e.g. when
    resuming, so the batch counter starts at the right place.
    """

    def __init__(self, generators: Sequence[MaskGenerator], seed: int = 0, step: int = 0) -> None:
        self.generators = list(generators)
        self.seed = seed
        self.offset = step
        self.count = 0

    def set_step(self, step: int) -> None:
        """The next batch is global batch ``step``."""
        self.offset, self.count = step, 0

    def set_epoch(self, epoch: int, batches_per_epoch: int) -> None:
        """The next batch is the first of ``epoch``."""
        self.set_step(epoch * batches_per_epoch)

    def next_index(self) -> int:
        """Global index of the batch being collated (see the module docstring)."""
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        index = self.offset + self.count * workers + worker
        self.count += 1
        return index

    def masks(self, batch_size: int, index: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The masks of global batch ``index``."""
        generator = torch.Generator().manual_seed(batch_seed(self.seed, index))
        return sample_masks(self.generators, batch_size, generator)

    def __call__(self, items: Sequence[Any]) -> tuple[Any, list[torch.Tensor], list[torch.Tensor]]:
        masks_ctx, masks_tgt = self.masks(len(items), self.next_index())
        return default_collate(list(items)), masks_ctx, masks_tgt


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
        generator = torch.Generator().manual_seed(batch_seed(seed, index))
        for total, gen in zip(totals, generators, strict=True):
            target = gen.sample(batch_size, generator).flatten(1)
            total["masked"] += target.float().mean().item()
            total["context"] += int((~target).sum(1).min()) / target.shape[1]
            total["target"] += int(target.sum(1).min()) / target.shape[1]
    return [{k: v / batches for k, v in total.items()} for total in totals]
