"""The ``data`` stage: synthesize a benchmark (``synth: {...}``) or index an existing dataset
(``source: PATH``) into ``out/``; either way the product is ``out/index.parquet``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vjepa.errors import DataError
from vjepa.utils.keys import reject_unknown

KEYS = ("synth", "source", "workers", "split")


def run(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """Generate and/or index; the metrics are the index counts (and synth timing)."""
    from vjepa.data.index import build_index
    from vjepa.data.synth import SynthConfig, generate

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
        summary = generate(cfg, out, workers=workers, progress=False)
        metrics.update(
            videos=summary.videos, images=summary.images, synth_s=round(summary.seconds, 3)
        )
        source: Path = out
    else:
        source = Path(config["source"])
    index = build_index(
        source, out / "index.parquet", workers=workers, split=config.get("split"), progress=False
    )
    metrics.update(
        rows=index.rows, ok=index.ok, bad=index.bad, files=index.files, probed=index.probed
    )
    return metrics
