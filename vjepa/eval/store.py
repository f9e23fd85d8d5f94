"""Sharded, memory-mappable feature store.

A store is a folder:

    manifest.json        shape [N, S, V, tokens, D] (or [N, S, V, D] pooled), dtype, shards,
                         encoder uid, protocol; published last and atomically
    shard-00000.npy ...  rows [i * rows_per_shard, ...) as plain .npy (np.load(mmap_mode="r"))
    valid-00000.npy ...  bool per row: False where the video could not be decoded
    labels.npy           int64 [N]
    samples.json         the source path of each row
    groups.json          the carve-out group of each row (optional; rows that must stay together)
    plan.json            the partition of an extraction in progress (what resume must match)

Half-precision values are kept in 16 bits. numpy has no bfloat16, so bf16 shards hold the raw bits
as uint16 and ``manifest["dtype"]`` says how to view them; float16 shards are plain float16.
A folder without ``manifest.json`` is an unfinished extraction and cannot be opened.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa.errors import DataError, UserError
from vjepa.utils.io import atomic_path, atomic_write_json, read_json
from vjepa.utils.units import human_bytes

MANIFEST = "manifest.json"
PLAN = "plan.json"
FORMAT_VERSION = 1
DTYPES = {
    "float16": (torch.float16, np.float16),
    "bfloat16": (torch.bfloat16, np.uint16),
    "float32": (torch.float32, np.float32),
}


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.npy"


def valid_name(i: int) -> str:
    return f"valid-{i:05d}.npy"


def resolve_store(path: str | os.PathLike[str]) -> Path:
    """Accept a store folder or a stage folder holding ``features/``."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    if (path / "features" / MANIFEST).is_file():
        return path / "features"
    if path.is_dir() and ((path / PLAN).is_file() or (path / "features" / PLAN).is_file()):
        raise DataError(f"{path}: feature extraction did not finish (no {MANIFEST})")
    raise DataError(f"{path}: not a feature store (no {MANIFEST})")


def to_storage(x: torch.Tensor, dtype: str) -> np.ndarray:
    """Cast a float tensor to the stored numpy representation of ``dtype``."""
    tdt, _ = DTYPES[dtype]
    x = x.detach().to("cpu", tdt).contiguous()
    if tdt is torch.bfloat16:
        return x.view(torch.uint16).numpy()
    return x.numpy()


def from_storage(a: np.ndarray, dtype: str) -> torch.Tensor:
    """View stored numpy values as a torch tensor of ``dtype`` (no float conversion)."""
    t = torch.from_numpy(np.ascontiguousarray(a))
    if dtype == "bfloat16":
        return t.view(torch.bfloat16)
    return t


@dataclass(frozen=True)
class ShardPlan:
    """How N rows are cut into shards; fixed at the start so a resumed run cuts identically."""

    n: int
    rows_per_shard: int

    @property
    def num_shards(self) -> int:
        return max(1, -(-self.n // self.rows_per_shard))

    def rows(self, i: int) -> range:
        start = i * self.rows_per_shard
        return range(start, min(self.n, start + self.rows_per_shard))


def store_bytes(rows: int, row_shape: Sequence[int], dtype: str) -> int:
    """Bytes of the shards of a store of ``rows`` rows (labels and samples are negligible)."""
    return rows * int(np.prod(row_shape)) * np.dtype(DTYPES[dtype][1]).itemsize


def check_room(out: str | os.PathLike[str], rows: int, row_shape: Sequence[int], dtype: str) -> int:
    """The store's bytes; a ``UserError`` before anything is written when the disk cannot hold it.

    Shards already in ``out`` (an interrupted extraction being resumed) count as written.
    """
    from vjepa.errors import UserError

    out = Path(out)
    need = store_bytes(rows, row_shape, dtype)
    have = sum(f.stat().st_size for f in out.glob("shard-*.npy")) if out.is_dir() else 0
    where = next(p for p in (out, *out.parents) if p.exists())
    free = shutil.disk_usage(where).free
    if need - have > free:
        shape = " x ".join(str(d) for d in row_shape)
        raise UserError(
            f"extract: the feature store needs {human_bytes(need)} ({rows} clips x {shape} x "
            f"{np.dtype(DTYPES[dtype][1]).itemsize} B) and {where} has {human_bytes(free)} free: "
            "free disk space, or use fewer segments, views or clips"
        )
    return need


def rows_per_shard_for(row_shape: Sequence[int], dtype: str, shard_mb: float) -> int:
    """Rows that fill about ``shard_mb`` MiB (at least one)."""
    row_bytes = int(np.prod(row_shape)) * np.dtype(DTYPES[dtype][1]).itemsize
    return max(1, int(shard_mb * 2**20 // max(row_bytes, 1)))


class StoreWriter:
    """Writes shards of a store; resumable. Call ``begin``, ``write_shard`` per shard, ``publish``.

    ``begin`` keeps completed shards only when the saved plan equals the new one (same encoder,
    protocol, data and partition); anything else is an old extraction and is cleared.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def begin(self, plan: dict[str, Any]) -> list[int]:
        """Record ``plan``; return the indices of shards still to write."""
        self.root.mkdir(parents=True, exist_ok=True)
        old = self.root / PLAN
        if old.is_file() and read_json(old) != json.loads(json.dumps(plan, default=str)):
            self.clear()
        elif (self.root / MANIFEST).is_file() and not old.is_file():
            self.clear()
        if (self.root / MANIFEST).is_file():
            (self.root / MANIFEST).unlink()  # re-publishing: never expose a stale manifest
        atomic_write_json(self.root / PLAN, plan)
        sp = ShardPlan(plan["n"], plan["rows_per_shard"])
        row_shape = tuple(plan["row_shape"])
        return [
            i for i in range(sp.num_shards) if not self.shard_done(i, len(sp.rows(i)), row_shape)
        ]

    def clear(self) -> None:
        for p in self.root.iterdir():
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()

    def shard_done(self, i: int, rows: int, row_shape: tuple[int, ...]) -> bool:
        """A shard counts as done when both files exist and the header has the planned shape."""
        shard, valid = self.root / shard_name(i), self.root / valid_name(i)
        if not (shard.is_file() and valid.is_file()):
            return False
        try:
            a = np.load(shard, mmap_mode="r")
        except (ValueError, OSError):
            return False
        return tuple(a.shape) == (rows, *row_shape)

    def write_shard(self, i: int, feats: np.ndarray, valid: np.ndarray) -> None:
        """Publish shard ``i`` (valid flags first, the shard file last: it marks completion)."""
        with atomic_path(self.root / valid_name(i)) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(valid, dtype=bool))
        with atomic_path(self.root / shard_name(i)) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, feats)

    def publish(
        self,
        manifest: dict[str, Any],
        labels: np.ndarray,
        samples: list[str],
        groups: list[str] | None = None,
    ) -> None:
        """Write labels, samples (groups) and the manifest, in that order; the manifest commits."""
        with atomic_path(self.root / "labels.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(labels, dtype=np.int64))
        atomic_write_json(self.root / "samples.json", list(samples))
        if groups is not None:
            atomic_write_json(self.root / "groups.json", list(groups))
        atomic_write_json(self.root / MANIFEST, manifest)


class FeatureStore:
    """Read side of a store. Shards are memory-mapped lazily; ``take`` gathers rows in any order."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = resolve_store(path)
        self.manifest: dict[str, Any] = read_json(self.root / MANIFEST)
        if self.manifest.get("format") != FORMAT_VERSION:
            raise DataError(f"{self.root}: unsupported feature store format")
        self.dtype: str = self.manifest["dtype"]
        self.shape: tuple[int, ...] = tuple(self.manifest["shape"])
        self.plan = ShardPlan(self.shape[0], self.manifest["rows_per_shard"])
        self._shards: dict[int, np.ndarray] = {}
        self._labels: np.ndarray | None = None
        self._valid: np.ndarray | None = None

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def embed_dim(self) -> int:
        return self.shape[-1]

    @property
    def num_heads(self) -> int | None:
        return self.manifest.get("encoder", {}).get("num_heads")

    @property
    def num_classes(self) -> int:
        return int(self.manifest["num_classes"])

    @property
    def labels(self) -> np.ndarray:
        if self._labels is None:
            self._labels = np.load(self.root / "labels.npy")
        return self._labels

    @property
    def valid(self) -> np.ndarray:
        """True for rows whose video decoded; probes use only these."""
        if self._valid is None:
            self._valid = np.concatenate(
                [np.load(self.root / valid_name(i)) for i in range(self.plan.num_shards)]
            )
        return self._valid

    @property
    def samples(self) -> list[str]:
        return read_json(self.root / "samples.json")

    @property
    def groups(self) -> list[str] | None:
        """Carve-out group of each row, or None when every row is its own group."""
        path = self.root / "groups.json"
        return read_json(path) if path.is_file() else None

    def shard(self, i: int) -> np.ndarray:
        if i not in self._shards:
            self._shards[i] = np.load(self.root / shard_name(i), mmap_mode="r")
        return self._shards[i]

    def take(
        self, rows: np.ndarray | Sequence[int], dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Rows ``rows`` (any order) as a tensor [len(rows), ...] in ``dtype`` (default: stored)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise UserError(f"{self.root}: row index out of range [0, {len(self)})")
        out = np.empty((len(rows), *self.shape[1:]), dtype=DTYPES[self.dtype][1])
        shard_of = rows // self.plan.rows_per_shard
        for s in np.unique(shard_of):
            sel = np.nonzero(shard_of == s)[0]
            local = rows[sel] - s * self.plan.rows_per_shard
            order = np.argsort(local, kind="stable")  # sequential reads within a shard
            out[sel[order]] = self.shard(int(s))[local[order]]
        t = from_storage(out, self.dtype)
        return t if dtype is None else t.to(dtype)

    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(DTYPES[self.dtype][1]).itemsize


def write_array_store(
    root: str | os.PathLike[str],
    features: torch.Tensor,
    labels: Sequence[int] | np.ndarray,
    *,
    num_classes: int | None = None,
    dtype: str = "float16",
    rows_per_shard: int | None = None,
    num_heads: int | None = None,
    task: str | None = None,
    samples: Sequence[str] | None = None,
    encoder_uid: str | None = None,
) -> FeatureStore:
    """Store features already in memory ([N, S, V, tokens, D] or [N, S, V, D]).

    For features computed elsewhere (another framework, a benchmark, a test); the encoder uid is a
    hash of the values unless ``encoder_uid`` names the encoder.
    """
    n = features.shape[0]
    rows_per_shard = rows_per_shard or max(1, n)
    sp = ShardPlan(n, rows_per_shard)
    writer = StoreWriter(root)
    values = to_storage(features, dtype)
    uid = encoder_uid or hashlib.sha256(values.tobytes()).hexdigest()[:16]
    plan = {
        "n": n,
        "row_shape": list(features.shape[1:]),
        "dtype": dtype,
        "rows_per_shard": rows_per_shard,
        "encoder_uid": uid,
    }
    for i in writer.begin(plan):
        r = sp.rows(i)
        writer.write_shard(i, values[r.start : r.stop], np.ones(len(r), dtype=bool))
    labels = np.asarray(labels, dtype=np.int64)
    manifest = {
        "format": FORMAT_VERSION,
        "shape": list(features.shape),
        "layout": "N,S,V,D" if features.dim() == 4 else "N,S,V,tokens,D",
        "dtype": dtype,
        "storage_dtype": np.dtype(DTYPES[dtype][1]).name,
        "rows_per_shard": rows_per_shard,
        "num_shards": sp.num_shards,
        "num_classes": int(num_classes if num_classes is not None else labels.max() + 1),
        "encoder": {"uid": uid, "embed_dim": int(features.shape[-1]), "num_heads": num_heads},
        "task": task,
    }
    writer.publish(manifest, labels, list(samples) if samples else [str(i) for i in range(n)])
    return FeatureStore(root)
