"""Deterministic data order and mask sampling, so a resumed run sees exactly the same batches.

- The order of an epoch is a function of (seed, epoch): concatenated permutations of the dataset
  (the loader cycles when an epoch needs more clips than there are videos).
- Global micro-batch j of an epoch holds positions [j*B*W, (j+1)*B*W) of that order; rank r takes
  its B-slice, so W ranks with batch B see the same clips as one rank with batch B*W.
- Each item carries its pass number over the videos (epoch x passes per epoch + pass), which the
  dataset uses as its epoch: clip position, crop and flip are drawn from (seed, pass, video), so
  they do not depend on the worker count, on persistent workers, or on where a run resumed.
- A mixture of datasets (VideoMix2M = K710 + SSv2 + HowTo100M, as the reference's
  ``datasets_weights``) draws every clip of an epoch with replacement: dataset d with probability
  w_d / sum(w), then a file uniformly within it, so each file has weight w_d / N_d. The draws are a
  function of (seed, epoch); item p of epoch e carries the pass e x L + p (L clips per epoch), so a
  file drawn twice gets two different clips.
- Masks are sampled in the main process for the whole global batch from a generator seeded by
  (seed, step, micro-step); each rank keeps its slice, so truncation to the batch minimum is the
  same as on one process.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

_MASK_STREAM, _ORDER_STREAM, _MIXTURE_STREAM = 1, 2, 3


def derive_seed(*keys: int) -> int:
    """A 63-bit seed that is a pure function of ``keys`` (numpy SeedSequence hashing)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def passes_per_epoch(num_items: int, length: int) -> int:
    """How many passes over ``num_items`` videos one epoch of ``length`` clips needs."""
    return -(-length // num_items)


def epoch_order(num_items: int, seed: int, epoch: int, length: int) -> list[tuple[int, int]]:
    """``length`` (video index, pass) pairs for ``epoch``: permutations of the videos, cycled."""
    passes = passes_per_epoch(num_items, length)
    order: list[tuple[int, int]] = []
    for cycle in range(passes):
        data_pass = epoch * passes + cycle
        g = torch.Generator().manual_seed(derive_seed(_ORDER_STREAM, seed, data_pass))
        order.extend((i, data_pass) for i in torch.randperm(num_items, generator=g).tolist())
    return order[:length]


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields this rank's micro-batches of ``(video index, pass)`` keys for one epoch.

    ``set_epoch(epoch, start)`` selects the epoch and the first micro-batch (resume skips ahead
    without loading the skipped clips).
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        batches_per_epoch: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        if num_items < 1:
            raise ValueError("the dataset is empty")
        self.num_items = num_items
        self.batch_size = batch_size
        self.batches_per_epoch = batches_per_epoch
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start

    @property
    def epoch_length(self) -> int:
        """Clips per epoch over all ranks."""
        return self.batches_per_epoch * self.batch_size * self.world_size

    def epoch_keys(self) -> list[tuple[int, int]]:
        """The ``(video index, pass)`` keys of the whole epoch, all ranks."""
        return epoch_order(self.num_items, self.seed, self.epoch, self.epoch_length)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        global_batch = self.batch_size * self.world_size
        order = self.epoch_keys()
        for j in range(self.start, self.batches_per_epoch):
            first = j * global_batch + self.rank * self.batch_size
            yield order[first : first + self.batch_size]


def _mixture_generator(seed: int, epoch: int) -> torch.Generator:
    """One generator per epoch: its first draw is the datasets, so they can be recounted."""
    return torch.Generator().manual_seed(derive_seed(_MIXTURE_STREAM, seed, epoch))


def _draw_datasets(weights: torch.Tensor, length: int, g: torch.Generator) -> torch.Tensor:
    """The dataset of each of ``length`` clips, with replacement, P(d) = w_d / sum(w)."""
    return torch.multinomial(weights, length, replacement=True, generator=g)


def mixture_order(
    sizes: Sequence[int], weights: Sequence[float], seed: int, epoch: int, length: int
) -> list[tuple[int, int]]:
    """``length`` (file index, pass) pairs for ``epoch`` of a mixture, drawn with replacement.

    Files are numbered dataset after dataset (dataset d holds ``[offset_d, offset_d + N_d)``).
    Drawing the dataset first and then a file uniformly within it is the per-file weight
    w_d / N_d of the reference's weighted sampler, without a weight per file.
    """
    g = _mixture_generator(seed, epoch)
    datasets = _draw_datasets(torch.tensor(weights, dtype=torch.float64), length, g)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
    files = torch.empty(length, dtype=torch.long)
    for d, (offset, size) in enumerate(zip(offsets, sizes, strict=True)):
        where = (datasets == d).nonzero().squeeze(1)
        files[where] = offset + torch.randint(size, (len(where),), generator=g)
    first_pass = epoch * length
    return list(zip(files.tolist(), range(first_pass, first_pass + length), strict=True))


class MixtureBatchSampler(EpochBatchSampler):
    """:class:`EpochBatchSampler` over a weighted mixture of datasets (see :func:`mixture_order`).

    ``sizes[d]`` files of dataset d, numbered dataset after dataset; ``weights[d] > 0``.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float],
        batch_size: int,
        batches_per_epoch: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        if len(sizes) != len(weights) or not sizes:
            raise ValueError("a mixture needs one size and one weight per dataset")
        if min(sizes) < 1:
            raise ValueError("a dataset of the mixture is empty")
        if not all(float(w) > 0 and np.isfinite(float(w)) for w in weights):
            raise ValueError("mixture weights must be finite and > 0")
        super().__init__(sum(sizes), batch_size, batches_per_epoch, seed, rank, world_size)
        self.sizes = [int(n) for n in sizes]
        self.weights = [float(w) for w in weights]

    def epoch_keys(self) -> list[tuple[int, int]]:
        return mixture_order(self.sizes, self.weights, self.seed, self.epoch, self.epoch_length)

    def drawn(self, clips: int) -> list[int]:
        """Clips per dataset among the first ``clips`` draws of the run (all ranks, all epochs).

        Recomputed from (seed, epoch), so a resumed run counts what an uninterrupted one drew.
        """
        weights = torch.tensor(self.weights, dtype=torch.float64)
        counts = torch.zeros(len(self.sizes), dtype=torch.long)
        for epoch in range(-(-clips // self.epoch_length)):
            stop = min(self.epoch_length, clips - epoch * self.epoch_length)
            datasets = _draw_datasets(
                weights, self.epoch_length, _mixture_generator(self.seed, epoch)
            )
            counts += torch.bincount(datasets[:stop], minlength=len(self.sizes))
        return counts.tolist()


class PassItems(Dataset):
    """Wraps a dataset with ``set_epoch``: item ``(index, pass)`` is loaded with epoch = pass.

    Setting the epoch per item (not per DataLoader epoch) keeps persistent workers, whose dataset
    copies never see the main process's ``set_epoch``, in step with the sampler.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]):
        index, data_pass = key
        self.dataset.set_epoch(data_pass)  # type: ignore[attr-defined]
        return self.dataset[index]


def mask_generator(seed: int, step: int, micro: int) -> torch.Generator:
    """The torch generator that draws the masks of one micro-step."""
    return torch.Generator().manual_seed(derive_seed(_MASK_STREAM, seed, step, micro))


def sample_masks(
    generators: list, global_batch: int, rank: int, batch_size: int, rng: torch.Generator
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Draw (context, target) index masks of every generator for the global batch; keep our slice."""
    ctx_all, tgt_all = [], []
    for gen in generators:
        ctx, tgt = gen(global_batch, rng)
        lo = rank * batch_size
        ctx_all.append(ctx[lo : lo + batch_size])
        tgt_all.append(tgt[lo : lo + batch_size])
    return ctx_all, tgt_all
