"""How far a running stage is: one small JSON file in its folder, replaced atomically.

The channel between a stage and whoever watches it (the runner's live view, ``vjepa-exp status``
from another terminal, a SLURM login node reading the shared filesystem) is ``progress.json`` in
the stage folder. It is written by the stage process only, at most once a second and always at the
end of a phase, through a temporary file and a rename: a reader sees the previous record or the
new one, never half of one, and a killed stage leaves its last whole record behind.

The science code never imports this module: its loops take an ``on_progress(done, total,
figures)`` callback, and the stage passes :meth:`ProgressWriter.update`.

Record fields: ``phase`` (what is counted: "pretrain", "extract train", "probe", "sweep"),
``unit`` ("step", "clip", "epoch", "trial"), ``done``, ``total``, ``figures`` (name -> number:
loss, lr, clips_per_s, best_val, ...), ``rate`` (units per second measured by this process, so a
resumed run does not count the steps it skipped), ``eta_s`` (seconds left at that rate),
``started`` and ``updated`` (Unix times).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

PROGRESS_FILE = "progress.json"

# the callback type the science loops take: (done, total, figures)
OnProgress = Callable[[int, int, Mapping[str, float]], None]


def _finite(figures: Mapping[str, Any]) -> dict[str, float]:
    """Numbers only, and no NaN/inf (json.dumps would write tokens other readers reject)."""
    out = {}
    for name, value in figures.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[name] = number
    return out


class ProgressWriter:
    """Writes ``progress.json`` for one phase of a stage; ``update`` is the science callback."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        phase: str,
        unit: str,
        min_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(folder) / PROGRESS_FILE
        self.phase, self.unit = phase, unit
        self.min_interval = min_interval
        self.clock = clock
        self.started = clock()
        self._first_done: int | None = None  # the count this process started from (a resume)
        self._first_time = self.started  # when it was reported: the rate counts from there
        self._last_write = -math.inf

    def update(self, done: int, total: int, figures: Mapping[str, Any] | None = None) -> None:
        """Record ``done`` of ``total``; written when a second has passed or the phase is done."""
        now = self.clock()
        if self._first_done is None:
            # the set-up before the first report (models, data, a resume) is not throughput
            self._first_done, self._first_time = done, now
        if done < total and now - self._last_write < self.min_interval:
            return
        self._last_write = now
        counted = done - self._first_done
        elapsed = now - self._first_time
        rate = counted / elapsed if counted > 0 and elapsed > 0 else None
        record = {
            "phase": self.phase,
            "unit": self.unit,
            "done": int(done),
            "total": int(total),
            "figures": _finite(figures or {}),
            "rate": rate,
            "eta_s": (total - done) / rate if rate and total >= done else None,
            "started": self.started,
            "updated": now,
        }
        write_progress(self.path, record)


def write_progress(path: Path, record: dict[str, Any]) -> None:
    """Replace ``path`` with ``record`` by rename (no fsync: a progress record is not a result)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def read_progress(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The last record in ``folder`` (None when there is none or it cannot be read)."""
    try:
        record = json.loads((Path(folder) / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
