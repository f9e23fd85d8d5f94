"""The ``data`` stage: synthesize a benchmark (``synth: {...}``), index one source (``source: PATH``)
or index one named dataset (``dataset: NAME, splits: {split: [SOURCE, ...]}``) into ``out/``; the
product is always ``out/index.parquet``.

``progress.json`` follows the phases: ``synth`` (items written, after each chunk) and ``index``
(files indexed, at its start and end: the number of files is known once they are listed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vjepa.errors import DataError
from vjepa.utils.keys import reject_unknown
from vjepa.utils.progress import ProgressWriter

KEYS = ("synth", "source", "workers", "split")
DATASET_KEYS = ("dataset", "splits", "num_classes", "probe", "workers")


def run(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """Generate and/or index; the metrics are the index counts (and synth timing)."""
    from vjepa.data.index import build_index
    from vjepa.data.synth import SynthConfig, generate

    if "dataset" in config:
        return _run_dataset(config, Path(out))
    reject_unknown(config, KEYS, "data", DataError)
    has_synth, has_source = config.get("synth") is not None, config.get("source") is not None
    if has_synth == has_source:
        raise DataError(
            "data: give exactly one of 'synth' (a SynthConfig mapping) or 'source' (a path)"
        )
    workers = int(config.get("workers", 2))
    out = Path(out)
    metrics: dict[str, Any] = {}
    if has_synth:
        if not isinstance(config["synth"], dict):
            raise DataError("data.synth: expected a mapping of SynthConfig fields")
        cfg = SynthConfig.from_dict(config["synth"], where="data.synth")
        synth = ProgressWriter(out, "synth", "item")
        synth.update(0, cfg.videos + cfg.images)
        summary = generate(cfg, out, workers=workers, progress=False, on_progress=synth.update)
        metrics.update(
            videos=summary.videos, images=summary.images, synth_s=round(summary.seconds, 3)
        )
        source: Path = out
    else:
        source = Path(config["source"])
    indexing = ProgressWriter(out, "index", "file")
    indexing.update(0, 0)  # the number of files is known once they are indexed
    index = build_index(
        source, out / "index.parquet", workers=workers, split=config.get("split"), progress=False
    )
    indexing.update(index.files, index.files)
    metrics.update(
        rows=index.rows, ok=index.ok, bad=index.bad, files=index.files, probed=index.probed
    )
    return metrics


def _run_dataset(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """Index one named dataset: every split's sources, rows tagged with the dataset as task."""
    from vjepa.data.index import build_dataset_index

    reject_unknown(config, DATASET_KEYS, "data", DataError)
    splits = config.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise DataError(f"data.splits: dataset {config['dataset']!r} needs at least one split")
    indexing = ProgressWriter(out, "index", "file")
    indexing.update(0, 0)  # the number of files is known once they are indexed
    index = build_dataset_index(
        str(config["dataset"]),
        {split: list(sources) for split, sources in splits.items()},
        out / "index.parquet",
        num_classes=config.get("num_classes"),
        probe=str(config.get("probe", "full")),
        workers=int(config.get("workers", 2)),
    )
    indexing.update(index.files, index.files)
    return {
        "rows": index.rows,
        "ok": index.ok,
        "bad": index.bad,
        "unprobed": index.unprobed,
        "files": index.files,
        "probed": index.probed,
        "splits": dict(index.splits),
    }
