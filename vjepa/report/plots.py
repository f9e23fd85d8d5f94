"""A report's pictures: per-task bars, or label-efficiency curves when the label fraction varies.

Read at a glance: every probe is a point, the mean of its row a bar (or a line), the spread over
seeds an error bar (or a band), and the chance level of each task a dashed line, so a number near
chance reads as such. ``summary.csv`` is the same cells as a small table for ``dvc plots``.
Matplotlib figures are built without pyplot (no global state, no display).
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vjepa.report.results import Pivot, order
from vjepa.utils.io import atomic_save

BARS = "bars.png"
CURVE = "label_efficiency.png"
SUMMARY = "summary.csv"  # the cells of the report, drawn by `dvc plots show`
CHANCE_STYLE = {"ls": "--", "lw": 1.0, "color": "0.35"}
DPI = 100


def top_k(metric: str) -> int | None:
    """k of a top-k accuracy (``top1``, ``val_top1``, ``top5``), else None."""
    match = re.search(r"(?:^|_)top(\d+)$", metric)
    return int(match[1]) if match else None


@dataclass(frozen=True)
class Point:
    """One finished probe as plotted."""

    series: tuple
    panel: tuple
    task: str | None
    fraction: float | None
    value: float


@dataclass
class Layout:
    """What a figure shows: its points, series (bars / lines), panels and units."""

    points: list[Point]
    series_keys: list[str]
    panel_keys: list[str]
    series: list[tuple]
    panels: list[tuple]
    curve: bool
    unit: str
    chance: dict[str, float]  # task -> chance level in plotted units

    def cell(self, series: tuple, panel: tuple) -> list[Point]:
        return [p for p in self.points if p.series == series and p.panel == panel]


def chance_levels(rows: Iterable[dict[str, Any]], metric: str) -> dict[str, float]:
    """Chance level (%) of each task whose class count is known: top-k of C classes is k / C."""
    k = top_k(metric)
    out: dict[str, float] = {}
    if k is None:
        return out
    for row in rows:
        task, classes = row.get("task"), row.get("num_classes")
        if task is not None and classes and task not in out:
            out[str(task)] = 100.0 * min(1.0, k / float(classes))
    return out


def _series_order(values: set[tuple], baseline: tuple | None) -> list[tuple]:
    """Sorted like the table's rows: the baseline series last."""
    ordered = sorted(values, key=lambda s: tuple(order(v) for v in s))
    if baseline is None:
        return ordered
    base = [s for s in ordered if s and str(s[0]) == str(baseline[0])]
    return [s for s in ordered if s not in base] + base


def layout(df: Any, pv: Pivot) -> Layout | None:
    """The points and groups to draw from a tidy table and its pivot; None when nothing finished."""
    metric = pv.metric
    if metric not in df.columns or df.height == 0:
        return None
    rows = [r for r in df.iter_rows(named=True) if r.get("done") and r.get(metric) is not None]
    if not rows:
        return None
    fractions = {r.get("label_fraction") for r in rows}
    curve = len(fractions - {None}) > 1
    series_keys = [
        k for k in pv.row_keys if k in df.columns and not (curve and k == "label_fraction")
    ]
    series_keys = series_keys or [k for k in ("variant",) if k in df.columns]
    panel_keys = [k for k in pv.col_keys if k in df.columns] or [
        k for k in ("task",) if k in df.columns
    ]
    accuracy = top_k(metric) is not None
    factor = 100.0 if accuracy and all(abs(r[metric]) <= 1.0 for r in rows) else 1.0
    points = [
        Point(
            tuple(r.get(k) for k in series_keys),
            tuple(r.get(k) for k in panel_keys),
            None if r.get("task") is None else str(r["task"]),
            r.get("label_fraction"),
            float(r[metric]) * factor,
        )
        for r in rows
    ]
    return Layout(
        points,
        series_keys,
        panel_keys,
        _series_order({p.series for p in points}, pv.baseline),
        sorted({p.panel for p in points}, key=lambda c: tuple(order(v) for v in c)),
        curve,
        " (%)" if accuracy else "",
        chance_levels(df.iter_rows(named=True), metric),
    )


def _name(values: tuple) -> str:
    return " / ".join(str(v) for v in values) or "all"


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _chance_lines(ax: Any, lay: Layout, panel: tuple) -> None:
    """One dashed line per task of the panel whose chance level is known."""
    tasks = sorted({p.task for p in lay.points if p.panel == panel and p.task in lay.chance})
    for task in tasks:
        level = lay.chance[task]
        label = f"chance {level:.1f}" + (f" ({task})" if len(tasks) > 1 else "")
        ax.axhline(level, label=label, zorder=1, **CHANCE_STYLE)


def _bars(ax: Any, lay: Layout, panel: tuple, colours: list[Any]) -> None:
    for i, series in enumerate(lay.series):
        values = [p.value for p in lay.cell(series, panel)]
        if not values:
            continue
        mean, std = _mean_std(values)
        colour = colours[i % len(colours)]
        ax.bar(i, mean, width=0.6, color=colour, alpha=0.45, edgecolor=colour, zorder=2)
        if std is not None:
            ax.errorbar(i, mean, yerr=std, fmt="none", ecolor="black", capsize=4, lw=1.2, zorder=4)
        n = len(values)
        offsets = [0.0] if n == 1 else [-0.15 + 0.3 * j / (n - 1) for j in range(n)]
        ax.scatter(
            [i + o for o in offsets],
            values,
            s=18,
            color=colour,
            edgecolor="black",
            lw=0.5,
            zorder=5,
        )
    ax.set_xticks(range(len(lay.series)), [_name(s) for s in lay.series], rotation=25, ha="right")
    ax.set_xlabel(" / ".join(lay.series_keys))


def _curves(ax: Any, lay: Layout, panel: tuple, colours: list[Any]) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    for i, series in enumerate(lay.series):
        points = [p for p in lay.cell(series, panel) if p.fraction is not None]
        if not points:
            continue
        colour = colours[i % len(colours)]
        xs = sorted({p.fraction for p in points})
        stats = [_mean_std([p.value for p in points if p.fraction == x]) for x in xs]
        pct = [x * 100 for x in xs]
        means = [m for m, _ in stats]
        ax.plot(pct, means, marker="o", ms=4, color=colour, label=_name(series), zorder=3)
        if any(s is not None for _, s in stats):
            lo = [m - (s or 0.0) for m, s in stats]
            hi = [m + (s or 0.0) for m, s in stats]
            ax.fill_between(pct, lo, hi, color=colour, alpha=0.18, lw=0, zorder=2)
        ax.scatter(
            [p.fraction * 100 for p in points],
            [p.value for p in points],
            s=12,
            color=colour,
            alpha=0.8,
            edgecolor="none",
            zorder=4,
        )
    ax.set_xscale("log")
    ticks = sorted({p.fraction * 100 for p in lay.points if p.fraction is not None})
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("labelled training data (%, log scale)")


def title(pv: Pivot, name: str) -> str:
    """The figure title: which spec and metric, and how many probes are still missing."""
    unit = " (%)" if top_k(pv.metric) is not None else ""
    missing = f"; {pv.missing} of {pv.total} probes missing" if pv.missing else ""
    return f"{name}: {pv.metric}{unit}, mean ± std over seeds{missing}"


def figure(df: Any, pv: Pivot, name: str) -> tuple[Any, str] | None:
    """(figure, file name) of a report: ``label_efficiency.png`` when the label fraction varies,
    else ``bars.png``; None when no probe finished."""
    from matplotlib.figure import Figure

    lay = layout(df, pv)
    if lay is None:
        return None
    colours = [f"C{i}" for i in range(10)]
    width = (3.2 + 0.55 * len(lay.series)) if not lay.curve else 4.4
    fig = Figure(figsize=(width * len(lay.panels), 3.9), layout="constrained")
    axes = fig.subplots(1, len(lay.panels), squeeze=False)[0]
    for ax, panel in zip(axes, lay.panels, strict=True):
        (_curves if lay.curve else _bars)(ax, lay, panel, colours)
        _chance_lines(ax, lay, panel)
        ax.set_title(_name(panel), fontsize=10)
        ax.set_ylabel(f"{pv.metric}{lay.unit}")
        ax.grid(axis="y", alpha=0.3, zorder=0)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    fig.suptitle(title(pv, name), fontsize=10)
    return fig, (CURVE if lay.curve else BARS)


def save_plots(df: Any, pv: Pivot, out: Path, name: str) -> list[str]:
    """Write the report's PNG into ``out``; the file names written."""
    made = figure(df, pv, name)
    if made is None:
        return []
    fig, file = made
    out.mkdir(parents=True, exist_ok=True)
    atomic_save(out / file, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    return [file]


def summary_csv(df: Any, pv: Pivot) -> str:
    """The pivot's cells as ``label,mean,std,n,chance`` (the units of the plots): what the DVC
    bar plot of a report draws, and compares across revisions."""
    fractions = all(abs(c.mean) <= 1.0 for c in pv.cells.values())
    factor = 100.0 if top_k(pv.metric) is not None and fractions else 1.0
    chance = chance_levels(df.iter_rows(named=True), pv.metric) if "task" in df.columns else {}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["label", "mean", "std", "n", "chance"])
    for r in pv.rows:
        for c in pv.cols:
            cell = pv.cells.get((r, c))
            if cell is None:
                continue
            task = dict(zip(pv.row_keys + pv.col_keys, r + c, strict=True)).get("task")
            level = chance.get(str(task)) if task is not None else None
            writer.writerow(
                [
                    f"{_name(r)} · {_name(c)}",
                    f"{cell.mean * factor:.4g}",
                    "" if cell.std is None else f"{cell.std * factor:.4g}",
                    cell.n,
                    "" if level is None else f"{level:.4g}",
                ]
            )
    return buf.getvalue()
