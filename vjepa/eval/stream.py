"""Frozen features computed on the fly: the probe reads clips and runs the frozen encoder per batch.

The reference protocol, for stores too large to write: each training batch is decoded with the
evaluation protocol (the same fixed segments and crops a feature store is extracted with), encoded
under ``torch.no_grad`` (bf16 autocast on a GPU), rounded to the protocol's storage dtype (so a
streamed probe sees exactly the values a store would hold) and fed to every probe head. The
validation carve-out, read every epoch, is kept in memory after its first pass when it fits in
``cache_mb``; the training rows are encoded again every epoch.

Config (the ``stream`` section of a probe stage):

    encoder:  {source, path, which, seed}    as for an extract stage
    model:    the encoder's model config
    data:     {index, task, train: SPLIT, eval: SPLIT, num_classes (optional)}
    protocol: frames_per_clip, frame_step, num_segments, num_views, crop_size, pool
    dtype:    float16 | bfloat16 | float32   (what a store would keep)
    batch_size: clips per encoder forward, or auto
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vjepa.errors import UserError
from vjepa.eval.extract import (
    Protocol,
    auto_batch_size,
    build_frozen_encoder,
    encode_batch,
    encoder_uid,
    eval_clips,
)
from vjepa.eval.probe_train import to_view_tokens
from vjepa.eval.store import DTYPES

VAL_CACHE_MB = 2048  # the validation carve-out is read every epoch: kept in memory when it fits


@dataclass
class EncodeStats:
    """Clips the frozen encoder ran on, and the seconds spent reading and encoding them."""

    clips: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        rate = round(self.clips / self.seconds, 2) if self.seconds > 0 else None
        return {
            "clips_encoded": self.clips,
            "encode_s": round(self.seconds, 3),
            "clips_per_s": rate,
        }


@dataclass
class StreamSource:
    """The frozen encoder and one labelled split of clips, as the stream config names them."""

    encoder: torch.nn.Module
    protocol: Protocol
    dtype: str
    device: torch.device
    chunk: int  # clips per encoder forward
    num_classes: int
    stats: EncodeStats = field(default_factory=EncodeStats)

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    @property
    def num_heads(self) -> int | None:
        return getattr(self.encoder, "num_heads", None)

    @property
    def uid(self) -> str:
        return encoder_uid(self.encoder)


def open_stream(config: Mapping[str, Any], where: str = "probe.stream") -> StreamSource:
    """Build the frozen encoder of a stream config (on the GPU when there is one)."""
    from vjepa.data.index import task_classes

    cfg = dict(config or {})
    data = dict(cfg.get("data") or {})
    if not data.get("index"):
        raise UserError(f"{where}.data.index: no data index given")
    if cfg.get("dtype", "float16") not in DTYPES:
        raise UserError(f"{where}.dtype: {cfg.get('dtype')!r} is not one of {', '.join(DTYPES)}")
    protocol = Protocol.from_config(cfg.get("protocol"), f"{where}.protocol")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    encoder = build_frozen_encoder(dict(cfg.get("encoder") or {}), cfg.get("model"), where)
    encoder = encoder.eval().requires_grad_(False).to(device)
    chunk = cfg.get("batch_size", "auto")
    chunk = auto_batch_size(encoder, protocol, device) if chunk == "auto" else int(chunk)
    num_classes = int(data.get("num_classes") or task_classes(data["index"], data.get("task")))
    return StreamSource(encoder, protocol, cfg.get("dtype", "float16"), device, chunk, num_classes)


def split_records(config: Mapping[str, Any], which: str) -> list[dict]:
    """The index rows of the stream's ``train`` or ``eval`` split (usable rows, index order)."""
    from vjepa.data.index import read_index

    data = dict((config or {}).get("data") or {})
    split = data.get(which)
    if not split:
        raise UserError(f"probe.stream.data.{which}: no split given")
    records = read_index(data["index"], task=data.get("task"), split=split)
    if not records:
        raise UserError(
            f"probe.stream.data: no usable {data.get('task')}/{split} rows in {data['index']}"
        )
    return records


def record_columns(records: list[dict]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(labels, valid, carve-out groups) of index rows; a row without a group is its own."""
    labels = np.asarray([int(r["label"]) for r in records], dtype=np.int64)
    groups = [str(r.get("group") or r["path"]) for r in records]
    return labels, np.ones(len(records), dtype=bool), groups


def loader_workers(device: torch.device) -> int:
    """Decoding processes beside the encoder, up to 8: on a GPU the cores but one; on a CPU the
    cores the compute threads leave free (a worker beside two threads on two cores slowed a
    streamed sweep by 1.2-1.3x: docs/benchmarks.md)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    spare = cores - 1 if device.type == "cuda" else cores - torch.get_num_threads()
    return max(0, min(8, spare))


class _Order(torch.utils.data.Sampler):
    """The rows to read next, set before each pass (one loader, its workers kept across passes)."""

    def __init__(self) -> None:
        self.rows: list[int] = []

    def __iter__(self) -> Iterator[int]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


class StreamRows:
    """Some rows of a split whose features are encoded when a batch is asked for.

    Clips that fail to decode are left out of their batch (the stored path marks them invalid).
    """

    def __init__(
        self,
        source: StreamSource,
        records: list[dict],
        rows: np.ndarray,
        *,
        cache_mb: float = 0.0,
        num_workers: int | None = None,
    ) -> None:
        self.source, self.rows = source, np.asarray(rows, dtype=np.int64)
        self.dataset = eval_clips([records[i] for i in self.rows], source.protocol)
        self.labels = torch.as_tensor([int(records[i]["label"]) for i in self.rows])
        self.num_workers = loader_workers(source.device) if num_workers is None else num_workers
        self.cache_mb = cache_mb
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self._order = _Order()
        self._loaders: dict[int, torch.utils.data.DataLoader] = {}  # by batch size

    def __len__(self) -> int:
        return len(self.rows)

    def _row_bytes(self) -> int:
        p, enc = self.source.protocol, self.source.encoder
        t, h, w = enc.grid_for(p.frames_per_clip, p.crop_size, p.crop_size)
        tokens = 1 if p.pool == "mean" else t * h * w
        size = np.dtype(DTYPES[self.source.dtype][1]).itemsize
        return p.num_segments * p.num_views * tokens * enc.embed_dim * size

    def batches(
        self, order: torch.Tensor, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(features [b, V, S*T, D] on the source's device, labels [b]) per ``batch_size`` rows."""
        if self._cache is not None:
            x, y = self._cache
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                idx = idx[y[idx] >= 0]
                yield x[idx.to(x.device)].float(), y[idx].to(x.device)
            return
        caching = self.cache_mb > 0 and len(self) * self._row_bytes() <= self.cache_mb * 2**20
        caching = caching and len(order) == len(self)
        parts: list[tuple[torch.Tensor, torch.Tensor]] = []
        for x, y, keep in self._encoded(order, batch_size):
            if caching:
                parts.append((x.to(DTYPES[self.source.dtype][0]), torch.where(keep, y, -1)))
            yield x[keep.to(x.device)], y[keep].to(x.device)
        if caching:  # every row seen once: later passes read memory
            xs, ys = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
            inverse = torch.empty_like(order)
            inverse[order] = torch.arange(len(order))
            self._cache = (xs[inverse.to(xs.device)], ys[inverse])

    def _encoded(
        self, order: torch.Tensor, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        src = self.source
        if batch_size not in self._loaders:
            self._loaders[batch_size] = torch.utils.data.DataLoader(
                self.dataset,
                batch_size=batch_size,
                sampler=self._order,
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
                pin_memory=src.device.type == "cuda",
            )
        loader = self._loaders[batch_size]
        self._order.rows = order.tolist()
        storage = DTYPES[src.dtype][0]
        start, last = 0, time.perf_counter()
        for batch in loader:
            video = batch["video"]
            z = torch.cat(
                [
                    encode_batch(
                        src.encoder, video[i : i + src.chunk], src.protocol.pool, src.device, True
                    )
                    for i in range(0, len(video), src.chunk)
                ]
            )
            x = to_view_tokens(z.to(storage).float())  # the values a store would hold
            keep = ~torch.as_tensor(batch["skipped"], dtype=torch.bool)
            y = self.labels[order[start : start + len(video)]]
            start += len(video)
            src.stats.clips += len(video)
            src.stats.seconds += time.perf_counter() - last  # reading and encoding, not training
            yield x, y, keep
            last = time.perf_counter()
