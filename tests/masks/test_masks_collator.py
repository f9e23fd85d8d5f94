"""MaskCollator: deterministic per (seed, batch index), also across DataLoader workers."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from vjepa.masks import MaskCollator, build_mask_generators

torch.set_num_threads(1)
GRID = (4, 4, 4)


class Items(Dataset):
    def __len__(self) -> int:
        return 24

    def __getitem__(self, i: int) -> dict:
        return {"video": torch.full((1, 3, 2, 2), float(i)), "label": i % 3, "index": i}


def collator(seed: int = 0) -> MaskCollator:
    return MaskCollator(build_mask_generators("multiblock", GRID), seed=seed)


def test_collates_items_and_one_mask_pair_per_generator() -> None:
    batch, masks_ctx, masks_tgt = collator()([Items()[i] for i in range(4)])
    assert batch["video"].shape == (4, 1, 3, 2, 2) and batch["label"].tolist() == [0, 1, 2, 0]
    assert len(masks_ctx) == len(masks_tgt) == 2
    assert all(m.shape[0] == 4 for m in masks_ctx + masks_tgt)


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b, strict=False)
    )


def test_masks_depend_on_seed_and_batch_index_only() -> None:
    items = [Items()[i] for i in range(4)]
    run = collator(0)
    batches = [run(items)[1:] for _ in range(3)]  # (masks_ctx, masks_tgt) of batches 0, 1, 2
    again = collator(0).masks(4, 2)
    assert same(batches[2][0], again[0]) and same(batches[2][1], again[1])
    assert not same(batches[0][0] + batches[0][1], batches[1][0] + batches[1][1])
    other_seed = collator(1).masks(4, 0)
    assert not same(other_seed[0] + other_seed[1], batches[0][0] + batches[0][1])
    # resuming at step 2 gives the masks of batch 2
    resumed = collator(0)
    resumed.set_step(2)
    ctx, tgt = resumed(items)[1:]
    assert same(ctx, batches[2][0]) and same(tgt, batches[2][1])


def test_same_masks_with_and_without_workers() -> None:
    def run(workers: int) -> list:
        loader = DataLoader(Items(), batch_size=4, num_workers=workers, collate_fn=collator(7))
        return [m for _, ctx, tgt in loader for m in ctx + tgt]

    serial, parallel = run(0), run(2)
    assert len(serial) == len(parallel) == 6 * 4
    assert same(serial, parallel)
