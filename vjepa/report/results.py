"""Probe metrics -> a tidy polars table (one row per probe stage) -> the pivot a report asks for.

Pure data code (polars only, no DVC, no CLI), shared by ``vjepa-exp results`` and the report stage.
Cells are mean +- sample std (ddof 1) over everything that is neither a row nor a column key
(seeds, label splits), with n, the best row per column and the delta to the baseline row.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Reader = Callable[[str], "dict[str, Any] | None"]
Classes = Callable[[str], "int | None"]


def read_folders(base: Path | None = None) -> Reader:
    """Metrics of a probe folder (``<folder>/metrics.json``; relative to ``base`` when given):
    what the report stage reads, its declared inputs only."""

    def read(folder: str) -> dict[str, Any] | None:
        path = Path(folder) / "metrics.json"
        try:
            return json.loads((base / path if base else path).read_text())
        except (OSError, ValueError):
            return None

    return read


def probe_classes(folder: str | Path) -> int | None:
    """Classes of a probe, read from its ``probe.pt`` (runs whose metrics predate ``num_classes``);
    None when the folder holds no readable probe."""
    path = Path(folder) / "probe.pt"
    if not zipfile.is_zipfile(path):  # missing, or not a torch checkpoint: no torch import
        return None
    try:
        import torch

        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(ckpt["num_classes"])
    except Exception:  # not a checkpoint of ours (a stand-in file, an older layout)
        return None


def _fill_classes(rows: list[dict[str, Any]], classes: Classes) -> None:
    """Give every row of a task the task's class count, asking ``classes`` once per task that no
    metrics row told: the chance level of the plots is 1 / classes."""
    for task in {r.get("task") for r in rows if r.get("task") is not None}:
        mine = [r for r in rows if r.get("task") == task]
        known = next((r["num_classes"] for r in mine if r.get("num_classes")), None)
        if known is None:
            for r in (r for r in mine if r["done"]):
                found = classes(r["dir"])
                if found:
                    known = float(found)
                    break
        if known is not None:
            for r in mine:
                r.setdefault("num_classes", known)


def tidy(report: dict[str, Any], read: Reader, classes: Classes | None = None) -> Any:
    """One row per probe: its labels, ``dir``, ``done`` and every numeric metric (``num_classes``
    too, from ``classes`` where the metrics lack it)."""
    import polars as pl

    rows = []
    for probe in report["probes"]:
        metrics = read(probe["dir"])
        row: dict[str, Any] = {
            k: (v if k in ("label_fraction", "seed") else str(v))
            for k, v in probe["labels"].items()
        }
        row["dir"] = probe["dir"]
        row["done"] = metrics is not None
        for key, value in (metrics or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                row[key] = float(value)
        rows.append(row)
    if not rows:
        return pl.DataFrame({"dir": [], "done": []}, schema={"dir": pl.Utf8, "done": pl.Boolean})
    if classes is not None:
        _fill_classes(rows, classes)
    return pl.DataFrame(rows, infer_schema_length=None)


@dataclass(frozen=True)
class Cell:
    mean: float
    std: float | None  # None when n == 1
    n: int
    delta: float | None = None  # mean minus the baseline row's mean in this column


@dataclass
class Pivot:
    metric: str
    row_keys: list[str]
    col_keys: list[str]
    rows: list[tuple]
    cols: list[tuple]
    cells: dict[tuple[tuple, tuple], Cell]
    baseline: tuple | None = None
    best: dict[tuple, tuple] = field(default_factory=dict)  # column -> best row
    total: int = 0
    missing: int = 0

    def is_baseline(self, row: tuple) -> bool:
        """A baseline row (with several row keys, one per value of the other keys)."""
        return self.baseline is not None and row[0] == self.baseline[0]

    def percent(self) -> bool:
        """Accuracies stored as fractions are shown as percentages."""
        return self.metric.startswith("top") and all(
            abs(c.mean) <= 1.0 for c in self.cells.values()
        )


def order(value: Any) -> tuple:
    """Sort key: numbers first, in value order, then text."""
    return (0, value, "") if isinstance(value, int | float) else (1, 0, str(value))


def pivot(df: Any, rows: list[str], columns: list[str], metric: str, baseline: Any = None) -> Pivot:
    """Aggregate ``df`` into rows x columns cells of ``metric``."""
    import polars as pl

    total = df.height
    have = [k for k in rows + columns if k in df.columns]
    if metric not in df.columns or len(have) < len(rows + columns):
        return Pivot(metric, rows, columns, [], [], {}, total=total, missing=total)
    done = df.filter(pl.col("done") & pl.col(metric).is_not_null())
    agg = done.group_by(rows + columns).agg(
        pl.col(metric).mean().alias("mean"),
        pl.col(metric).std(ddof=1).alias("std"),
        pl.len().alias("n"),
    )
    cells: dict[tuple[tuple, tuple], Cell] = {}
    for rec in agg.iter_rows(named=True):
        key = (tuple(rec[k] for k in rows), tuple(rec[k] for k in columns))
        cells[key] = Cell(rec["mean"], rec["std"] if rec["n"] > 1 else None, rec["n"])
    row_vals = sorted({k[0] for k in cells}, key=lambda r: tuple(order(v) for v in r))
    col_vals = sorted({k[1] for k in cells}, key=lambda c: tuple(order(v) for v in c))
    # the baseline rows: first row key == baseline; with more row keys (e.g. label_fraction)
    # each row is compared with the baseline row that matches it on the other keys
    bases = [r for r in row_vals if baseline is not None and str(r[0]) == str(baseline)]
    base = bases[0] if bases else None
    if bases:
        row_vals = [r for r in row_vals if r not in bases] + bases
        ref_row = {r[1:]: r for r in bases}
        for (r, c), cell in list(cells.items()):
            ref = cells.get((ref_row.get(r[1:]), c))
            if r not in bases and ref is not None:
                cells[(r, c)] = Cell(cell.mean, cell.std, cell.n, cell.mean - ref.mean)
    best = {}
    for c in col_vals:
        present = [(cells[(r, c)].mean, r) for r in row_vals if (r, c) in cells]
        if len(present) > 1:
            best[c] = max(present, key=lambda x: x[0])[1]
    return Pivot(
        metric, rows, columns, row_vals, col_vals, cells, base, best, total, total - done.height
    )


def pivot_report(
    report: dict[str, Any], read: Reader, classes: Classes | None = None
) -> tuple[Any, Pivot]:
    """Tidy table and pivot of a report stage config (``{name, probes, report}``)."""
    df = tidy(report, read, classes)
    spec = report["report"]
    return df, pivot(
        df, list(spec["rows"]), list(spec["columns"]), spec["metric"], spec.get("baseline")
    )


def compare(a: Pivot, b: Pivot) -> list[dict[str, Any]]:
    """Cells of two pivots side by side (keyed by row and column), with b - a."""
    out = []
    for key in sorted(
        set(a.cells) | set(b.cells), key=lambda k: tuple(order(v) for v in k[0] + k[1])
    ):
        ca, cb = a.cells.get(key), b.cells.get(key)
        out.append(
            {
                **dict(zip(a.row_keys, key[0], strict=False)),
                **dict(zip(a.col_keys, key[1], strict=False)),
                "a": ca.mean if ca else None,
                "b": cb.mean if cb else None,
                "diff": (cb.mean - ca.mean) if ca and cb else None,
            }
        )
    return out
