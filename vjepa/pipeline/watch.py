"""What a watcher of a run sees: each stage's state, its times and its last progress record.

The live view of ``vjepa-exp run`` and ``vjepa-exp status`` (from another terminal, or from a
login node reading a detached SLURM run's folders on the shared filesystem) build the same
snapshot, so both show the same bars, figures and ETAs. Nothing here asks DVC or the executor:
the runner's memory, the state files and ``runs/<kind>/<name>/progress.json`` are enough.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vjepa.pipeline import status
from vjepa.pipeline.graph import out_dir
from vjepa.utils.progress import read_progress

# a record last written this long before the stage's current attempt started is the previous
# attempt's (a persist folder keeps it until the resumed stage writes its own)
STALE_RECORD_S = 5.0

ACTIVE = ("pending", "running")
FINISHED = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class Progress:
    """One ``progress.json`` record, checked: a malformed file must never break a view."""

    phase: str
    unit: str
    done: int
    total: int
    figures: dict[str, float]
    rate: float | None
    eta_s: float | None
    updated: float

    @property
    def fraction(self) -> float:
        return min(1.0, max(0.0, self.done / self.total)) if self.total > 0 else 0.0


def parse_progress(record: dict[str, Any] | None) -> Progress | None:
    """A :class:`Progress` from a record (None when a field is missing or of the wrong type)."""
    if not isinstance(record, dict):
        return None
    try:
        figures = record.get("figures") or {}
        return Progress(
            phase=str(record.get("phase") or ""),
            unit=str(record.get("unit") or ""),
            done=int(record["done"]),
            total=int(record["total"]),
            figures={str(k): float(v) for k, v in dict(figures).items()},
            rate=_number(record.get("rate")),
            eta_s=_number(record.get("eta_s")),
            updated=float(record.get("updated") or 0.0),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def stage_progress(root: Path, name: str, started: float | None) -> Progress | None:
    """The last progress record of stage ``name``'s current attempt, if it wrote one."""
    record = parse_progress(read_progress(root / out_dir(name)))
    if record is None or (started and record.updated < started - STALE_RECORD_S):
        return None
    return record


@dataclass(frozen=True)
class StageSnap:
    """One stage as a watcher sees it; ``state`` is pending, running, done, failed, cancelled, or
    idle (stale but not submitted: no part of the run's remaining work)."""

    name: str
    kind: str
    state: str
    started: float | None = None
    ended: float | None = None
    seconds: float | None = None  # how long it ran (finished) or has been running
    progress: Progress | None = None
    job: str = ""  # the SLURM job id, when there is one
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunSnap:
    """A run at one moment; stages in topological order (inputs before the stages reading them)."""

    title: str
    stages: tuple[StageSnap, ...]
    now: float
    slots: int | None = None  # stages that may run at once; None: no limit (SLURM)

    def count(self, *states: str) -> int:
        return sum(s.state in states for s in self.stages)


def from_runner(runner: Any, now: float | None = None) -> RunSnap:
    """The snapshot of a live :class:`vjepa.pipeline.runner.Runner` (its planned stages)."""
    now = time.time() if now is None else now
    detachable = bool(getattr(runner.executor, "detachable", False))
    stages = []
    for stage in runner.todo:
        name = stage.name
        state = runner.states.get(name)
        value = state.value if state is not None else "pending"
        started, ended = runner.started.get(name), runner.ended.get(name)
        stages.append(
            StageSnap(
                name=name,
                kind=stage.kind,
                state=value,
                started=started,
                ended=ended,
                seconds=_seconds(value, started, ended, now),
                progress=stage_progress(runner.root, name, started) if value == "running" else None,
                job=runner.handles[name].job_id if detachable and name in runner.handles else "",
                inputs=tuple(i.name for i in stage.inputs),
            )
        )
    jobs = getattr(runner.executor, "jobs", None)
    slots = None if detachable else int(jobs or 1)
    return RunSnap(runner.compiled.spec.name, tuple(stages), now, slots)


def _seconds(state: str, started: float | None, ended: float | None, now: float) -> float | None:
    if not started:
        return None
    if state == "running":
        return max(0.0, now - started)
    if state in FINISHED and ended:
        return max(0.0, ended - started)
    return None


STATUS_STATES = {
    "up to date": "done",
    "failed": "failed",
    "running": "running",
    "pending": "pending",
    "stale": "idle",
}


def from_status(
    root: Path, compiled: Any, rows: list[status.StageStatus], now: float | None = None
) -> RunSnap:
    """The snapshot of a spec from ``vjepa-exp status`` rows (a run started anywhere else)."""
    now = time.time() if now is None else now
    stages = []
    for row, stage in zip(rows, compiled.stages, strict=True):
        st = status.read_state(root, row.name)
        state = STATUS_STATES.get(row.state, "idle")
        started = st.get("started")
        handle = st.get("handle") or {}
        stages.append(
            StageSnap(
                name=row.name,
                kind=row.kind,
                state=state,
                started=started,
                ended=st.get("ended") if state in FINISHED else None,
                seconds=row.seconds,
                progress=stage_progress(root, row.name, started) if state == "running" else None,
                job=str(handle.get("job_id", "")) if status.on_slurm(st) else "",
                inputs=tuple(i.name for i in stage.inputs),
            )
        )
    running = sum(s.state == "running" for s in stages)
    executor = compiled.executor or {}
    slots = None
    if executor.get("kind", "local") != "slurm":  # `-j` is not recorded: at least what runs now
        slots = max(int(executor.get("jobs") or 1), running, 1)
    return RunSnap(compiled.spec.name, tuple(stages), now, slots)
