"""``vjepa-exp status --follow``: keep a spec's status and progress current until its run ends.

A full look (recording what detached SLURM jobs did, asking DVC what is stale) costs seconds, so
it is taken every ``every`` seconds; in between, each ``tick`` re-reads only the state files and
the running stages' ``progress.json`` (milliseconds), so the bars and ETAs move every second. A
stage that ends between two full looks brings the next one forward. Following changes
nothing: leaving it (Ctrl-C) leaves the run going.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vjepa.pipeline import status
from vjepa.pipeline.attach import spec_status
from vjepa.pipeline.watch import RunSnap, from_status

Show = Callable[[list[status.StageStatus], str, RunSnap], None]


def _in_flight(rows: list[status.StageStatus]) -> frozenset[str]:
    return frozenset(r.name for r in rows if r.state in ("pending", "running"))


def follow(
    root: Path,
    compiled: Any,
    show: Show,
    every: float = 5.0,
    tick: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[status.StageStatus]:
    """Call ``show(rows, note, snapshot)`` until no stage of ``compiled`` is pending or running;
    the last rows."""
    every, tick = max(1.0, every), min(max(0.1, tick), max(1.0, every))
    while True:
        rows, note = spec_status(root, compiled)
        show(rows, note, from_status(root, compiled, rows))
        flying = _in_flight(rows)
        if not flying:
            return rows
        stale = {r.name for r in rows if r.state != "up to date"}
        deadline = time.monotonic() + every
        while time.monotonic() < deadline:
            sleep(tick)
            rows = status.stage_statuses(root, compiled.stages, stale)
            if _in_flight(rows) != flying:
                break  # a stage started or ended: take the full look now
            show(rows, note, from_status(root, compiled, rows))
