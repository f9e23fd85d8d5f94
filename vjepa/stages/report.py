"""Report stage: gather the probe metrics of one spec into results.parquet, table.md and plots.

It reads only its declared inputs, the probe folders its config lists (``probes[].dir``, relative
to where the stage runs, like every stage's input paths), and calls the pure table and plot code
of ``vjepa.report`` (polars, matplotlib; no DVC, nothing of the platform above it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vjepa.utils.io import atomic_save, atomic_write_text


def run(config: dict[str, Any], out: Path) -> dict[str, Any]:
    from vjepa.report import plots, results, tables

    out = Path(out)
    df, pv = results.pivot_report(config, results.read_folders(), results.probe_classes)
    atomic_save(out / "results.parquet", lambda p: df.write_parquet(p))
    atomic_write_text(out / "table.md", tables.markdown(pv, config["name"]))
    written = plots.save_plots(df, pv, out, config["name"])
    atomic_write_text(out / plots.SUMMARY, plots.summary_csv(df, pv))
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
