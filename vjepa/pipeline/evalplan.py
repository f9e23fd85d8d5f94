"""Which path a task's frozen evaluation takes: a feature store, or features streamed by the probe.

``eval.features``: ``store`` (extract stages write every token once, probes read them), ``stream``
(no extract stage; the probe stage reads the clips and runs the frozen encoder on every batch, as
the reference does) or ``auto``: ``store`` when the task's stores (training + evaluation split)
would take at most ``eval.store_budget`` bytes, ``stream`` otherwise. The estimate is made at
compile time, without torch, from the number of clips (the dataset's CSVs, the synthetic
benchmark's config, or a known dataset's published size when its files are not here) and the
protocol: clips x segments x views x tokens x width x bytes per value.

``eval.store_budget``: bytes (``200000000000``), a size (``200GB``, ``1.5TiB``) or a share of the
free disk where the runs live (``50%``, the default). A budget read from the free disk makes the
choice depend on the machine; a store already extracted is kept whatever the budget (it costs
nothing more), and ``eval.features: store | stream`` fixes the choice for every machine.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vjepa.models.sizes import PRESETS, token_grid
from vjepa.utils.units import human_bytes

DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
RUNS = "runs"  # where stage folders live (vjepa.pipeline.graph.out_dir)

# Clips per split of datasets whose files may not be on the compiling machine (--no-check-paths);
# used only when the sources cannot be read. K400's count varies with the download (videos are
# taken down over time): the V-JEPA release lists about 240k training clips.
PUBLISHED_CLIPS: dict[str, dict[str, int]] = {
    "k400": {"train": 240_000, "val": 20_000, "test": 40_000},
    "ssv2": {"train": 168_913, "val": 24_777, "test": 27_157},
    "in1k": {"train": 1_281_167, "val": 50_000},
}


def free_disk(root: Path) -> int:
    """Free bytes on the filesystem that holds (or will hold) the runs folder."""
    where = root / RUNS
    while not where.exists() and where != where.parent:
        where = where.parent
    return shutil.disk_usage(where).free


def row_values(model: Mapping[str, Any], protocol: Mapping[str, Any]) -> int:
    """Values one clip takes in a store: segments x views x tokens x width."""
    t, h, w = token_grid(
        model["num_frames"],
        model["tubelet_size"],
        model["patch_size"],
        protocol["frames_per_clip"],
        protocol["crop_size"],
    )
    tokens = 1 if protocol.get("pool") == "mean" else t * h * w
    width = PRESETS[model["name"]].embed_dim
    return protocol["num_segments"] * protocol["num_views"] * tokens * width


@dataclass(frozen=True)
class StoreEstimate:
    """The size of one split's store, and where its clip count came from."""

    split: str
    clips: int | None
    counted_from: str  # "csv", "synthetic config", "published size" or "unknown"
    row_values: int
    bytes_per_value: int

    @property
    def bytes(self) -> int | None:
        return None if self.clips is None else self.clips * self.row_values * self.bytes_per_value

    def describe(self) -> str:
        if self.clips is None:
            return f"{self.split}: size unknown ({self.counted_from})"
        return (
            f"{self.split}: {human_bytes(self.bytes)} ({self.clips} clips, {self.counted_from}, "
            f"x {self.row_values} values x {self.bytes_per_value} B)"
        )


@dataclass(frozen=True)
class EvalChoice:
    """The evaluation path of one task under one model: the mode, why, and the estimates."""

    task: str
    model: str
    mode: str  # "store" or "stream"
    why: str
    stores: tuple[StoreEstimate, ...]

    @property
    def bytes(self) -> int | None:
        sizes = [s.bytes for s in self.stores]
        return None if any(b is None for b in sizes) else sum(sizes)

    def describe(self) -> str:
        total = "size unknown" if self.bytes is None else human_bytes(self.bytes)
        parts = "; ".join(s.describe() for s in self.stores)
        return f"{self.task} ({self.model}): {self.mode}: {self.why}; stores {total} [{parts}]"


def choose(
    wanted: str,
    stores: tuple[StoreEstimate, ...],
    budget: tuple[int | None, float | None],
    root: Path,
    extracted: bool,
) -> tuple[str, str]:
    """(mode, reason) for a task whose stores are ``stores`` (``extracted``: already on disk)."""
    if wanted != "auto":
        return wanted, f"eval.features={wanted}"
    if extracted:
        return "store", "its stores are extracted already"
    sizes = [s.bytes for s in stores]
    if any(b is None for b in sizes):
        return "store", "size unknown (the extract stage still checks the free disk)"
    need = sum(sizes)
    limit, share = budget
    if limit is None:
        free = free_disk(root)
        limit, what = int(free * share), f"{share:.0%} of the {human_bytes(free)} free"
    else:
        what = "eval.store_budget"
    if need <= limit:
        return "store", f"{human_bytes(need)} fits {what} ({human_bytes(limit)})"
    return "stream", f"{human_bytes(need)} exceeds {what} ({human_bytes(limit)})"
