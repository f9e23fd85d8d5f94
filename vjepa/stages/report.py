"""Report stage: gather the probe metrics of one spec into results.parquet, table.md and PNG plots.

It reads only its declared inputs (the probe folders listed in its config) and reuses the pure
table code of ``vjepa.pipeline.results``/``tables``/``plots`` (polars, matplotlib; no DVC).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vjepa.utils.io import atomic_save, atomic_write_text


def run(config: dict[str, Any], out: Path) -> dict[str, Any]:
    from vjepa.pipeline import plots, results, tables

    df, pv = results.pivot_report(config, results.read_workdir(Path.cwd()))
    atomic_save(out / "results.parquet", lambda p: df.write_parquet(p))
    atomic_write_text(out / "table.md", tables.markdown(pv, config["name"]))
    written = plots.save_plots(df, pv.metric, out)
    cells = {
        "/".join(str(v) for v in r + c): round(cell.mean, 6)
        for (r, c), cell in sorted(pv.cells.items(), key=str)
    }
    return {
        "n_probes": pv.total,
        "n_missing": pv.missing,
        "metric": pv.metric,
        "plots": written,
        "cells": cells,
    }
