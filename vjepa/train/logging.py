"""Per-step JSONL log (one record per optimizer step) and a rich progress bar on rank 0."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class JsonlLog:
    """Appends one JSON record per step; on resume drops records past the resumed step.

    A killed run may have logged steps after its last checkpoint (and a torn last line); those
    steps are replayed after resume, so they are cut to keep one record per step.
    """

    def __init__(self, path: Path, resume_step: int, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        self.records: list[dict[str, Any]] = []
        if not enabled:
            self._fh = None
            return
        self.records = [r for r in read_log(self.path) if r.get("step", 0) <= resume_step]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w") as fh:
            for r in self.records:
                fh.write(json.dumps(r) + "\n")
        self._fh = open(self.path, "a")

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self._fh is not None:
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_log(path: Path) -> list[dict[str, Any]]:
    """Records of a log.jsonl, skipping a torn last line."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def loss_summary(losses: list[float]) -> dict[str, float]:
    """Mean loss of the first and last 10% of steps (at least one step each)."""
    if not losses:
        return {"loss_first10": math.nan, "loss_last10": math.nan}
    k = max(1, len(losses) // 10)
    return {
        "loss_first10": sum(losses[:k]) / k,
        "loss_last10": sum(losses[-k:]) / k,
    }


def progress_bar(total: int, completed: int, enabled: bool):
    """A rich progress bar (disabled on ranks > 0 or when asked)."""
    progress = Progress(
        TextColumn("[bold]pretrain"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )
    task = progress.add_task("pretrain", total=total, completed=completed, info="")
    return progress, task
