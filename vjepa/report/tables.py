"""Render a ``Pivot`` as a rich table, Markdown, CSV or JSON (one function per format)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from vjepa.report.results import Cell, Pivot


def _num(p: Pivot, x: float) -> str:
    if p.percent():
        return f"{x * 100:.1f}"
    return f"{x:.1f}" if p.metric.startswith("top") else f"{x:.4g}"


def cell_text(p: Pivot, cell: Cell | None) -> str:
    """``71.2 ± 1.3 (n=3) [+5.1]``."""
    if cell is None:
        return "—"
    text = _num(p, cell.mean)
    if cell.std is not None:
        text += f" ± {_num(p, cell.std)}"
    text += f" (n={cell.n})"
    if cell.delta is not None:
        sign = "+" if cell.delta >= 0 else "-"
        text += f" [{sign}{_num(p, abs(cell.delta))}]"
    return text


def _col_name(col: tuple) -> str:
    return " / ".join(str(v) for v in col)


def _title(p: Pivot, name: str) -> str:
    unit = " (%)" if p.metric.startswith("top") else ""
    missing = f"; {p.missing} of {p.total} probes missing" if p.missing else ""
    return f"{name}: {p.metric}{unit}, mean ± std over seeds{missing}"


def records(p: Pivot) -> list[dict[str, Any]]:
    """One record per cell (CSV / JSON)."""
    out = []
    for r in p.rows:
        for c in p.cols:
            cell = p.cells.get((r, c))
            if cell is None:
                continue
            out.append(
                {
                    **dict(zip(p.row_keys, r, strict=True)),
                    **dict(zip(p.col_keys, c, strict=True)),
                    "metric": p.metric,
                    "mean": cell.mean,
                    "std": cell.std,
                    "n": cell.n,
                    "delta": cell.delta,
                    "best": p.best.get(c) == r,
                    "baseline": p.is_baseline(r),
                }
            )
    return out


def rich_table(p: Pivot, name: str) -> Any:
    from rich.table import Table

    table = Table(title=_title(p, name))
    for key in p.row_keys:
        table.add_column(key, style="bold")
    for c in p.cols:
        table.add_column(_col_name(c), justify="right")
    for r in p.rows:
        cells = []
        for c in p.cols:
            text = cell_text(p, p.cells.get((r, c)))
            cells.append(f"[bold green]{text}[/]" if p.best.get(c) == r else text)
        table.add_row(
            *[str(v) for v in r],
            *cells,
            style="dim" if p.is_baseline(r) else None,
        )
    return table


def markdown(p: Pivot, name: str) -> str:
    head = list(p.row_keys) + [_col_name(c) for c in p.cols]
    lines = [
        f"**{_title(p, name)}**",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * len(p.row_keys) + ["---:"] * len(p.cols)) + "|",
    ]
    for r in p.rows:
        cells = []
        for c in p.cols:
            text = cell_text(p, p.cells.get((r, c)))
            cells.append(f"**{text}**" if p.best.get(c) == r else text)
        lines.append("| " + " | ".join([str(v) for v in r] + cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(p: Pivot) -> str:
    rows = records(p)
    buf = io.StringIO()
    fields = (
        list(p.row_keys)
        + list(p.col_keys)
        + ["metric", "mean", "std", "n", "delta", "best", "baseline"]
    )
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def to_json(p: Pivot) -> str:
    return json.dumps(records(p), indent=2) + "\n"


def render(p: Pivot, name: str, fmt: str) -> Any:
    """``fmt`` in table | csv | md | json: a rich renderable or a string."""
    return (
        {"table": rich_table, "md": markdown}[fmt](p, name)
        if fmt in ("table", "md")
        else (to_csv(p) if fmt == "csv" else to_json(p))
    )
