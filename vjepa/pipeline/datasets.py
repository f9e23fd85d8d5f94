"""A spec's named datasets: their sources resolved under ``data.root`` and checked before any stage.

``data.datasets: {NAME: {train: SOURCE | [SOURCE, ...], val: ..., test: ..., num_classes: N}}``.
A SOURCE is a reference CSV (``path label``), a class-per-folder video tree or an ImageNet-style
image folder; a relative SOURCE starts at ``data.root`` (itself relative to the project root).
Each dataset becomes one data stage (its index), so adding a dataset re-indexes no other.

The check reads every CSV once (cached by size and mtime under ``.vjepa/cache/sources``), so a
bad line, a label outside ``num_classes`` or an empty split stops the run with one line naming
the file and line before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vjepa.pipeline.schema import SPLITS, Invalid

CACHE = Path(".vjepa") / "cache" / "sources"


@dataclass(frozen=True)
class Dataset:
    """One named dataset: split -> sources (as the data stage reads them), and its class count."""

    name: str
    splits: dict[str, list[str]]
    num_classes: int | None

    def stage_config(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The params section of this dataset's data stage."""
        return {
            "dataset": self.name,
            "splits": self.splits,
            "num_classes": self.num_classes,
            "probe": data["probe"],
            "workers": data["workers"],
        }


def resolve(data: Mapping[str, Any], project: Path) -> dict[str, Dataset]:
    """The datasets of a composed ``data`` section, each source resolved under ``data.root``."""
    root = Path(data["root"]) if data.get("root") else Path()
    if not root.is_absolute():
        root = project / root
    out = {}
    for name, entry in (data.get("datasets") or {}).items():
        splits = {}
        for split in SPLITS:
            value = entry.get(split)
            if value is None:
                continue
            sources = [value] if isinstance(value, str) else list(value)
            splits[split] = [_shown(_absolute(root, s), project) for s in sources]
        if not splits:
            raise Invalid(f"data.datasets.{name}", "defines no split (expected train, val or test)")
        out[name] = Dataset(name, splits, entry.get("num_classes"))
    return out


def _absolute(root: Path, source: str) -> Path:
    path = Path(source).expanduser()
    return path if path.is_absolute() else root / path


def _shown(path: Path, project: Path) -> str:
    """Relative to the project when inside it (a committed pipeline moves with its checkout)."""
    try:
        return path.relative_to(project).as_posix()
    except ValueError:
        return str(path)


def missing_sources(dataset: Dataset, project: Path) -> list[tuple[str, str]]:
    """``(key path, source)`` of every source that does not exist."""
    return [
        (f"data.datasets.{dataset.name}.{split}", source)
        for split, sources in dataset.splits.items()
        for source in sources
        if not (project / source).exists()
    ]


def check(dataset: Dataset, project: Path) -> None:
    """Read every source of ``dataset``; the first problem is an ``Invalid`` naming file and line."""
    from vjepa.data.index import dataset_classes
    from vjepa.data.sources import inspect_source
    from vjepa.errors import DataError

    where = f"data.datasets.{dataset.name}"
    infos = []
    for split, sources in dataset.splits.items():
        for source in sources:
            try:
                infos.append(inspect_source(project / source, cache_dir=project / CACHE))
            except DataError as exc:
                raise Invalid(f"{where}.{split}", str(exc)) from None
    try:
        dataset_classes(infos, dataset.num_classes, where)
    except DataError as exc:  # names the dataset (where) or a CSV's line itself
        raise Invalid(where, str(exc).removeprefix(f"{where}: ")) from None


def split_clips(
    dataset: Dataset, split: str, project: Path, published: Mapping[str, Mapping[str, int]]
) -> tuple[int | None, str]:
    """(clips, where the count came from) of one split, for a store-size estimate.

    CSV lines and a tree's media files are counted (both cached); a source that is not on this
    machine falls back to ``published`` sizes by dataset name.
    """
    from vjepa.data.sources import count_tree, inspect_source
    from vjepa.errors import DataError

    total, how = 0, set()
    for source in dataset.splits[split]:
        path = project / source
        try:
            if path.is_file() and path.suffix.lower() == ".csv":
                total += inspect_source(path, cache_dir=project / CACHE).rows
                how.add("CSV lines")
                continue
            if path.is_dir():
                total += count_tree(path, cache_dir=project / CACHE)
                how.add("files")
                continue
        except DataError:
            pass  # the dataset check reports it (or --no-check-paths deferred it)
        size = published.get(dataset.name, {}).get(split)
        if size is None:
            return None, "no CSV to count and no published size"
        return size, "published size"
    return total, "counted: " + " and ".join(sorted(how))
