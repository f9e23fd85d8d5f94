"""How long a run has left, from what its stages measured.

A running stage that reports progress knows its own ETA (its units per second, measured by the
stage process). A stage without one, or not started yet, is expected to take as long as the
finished stages of its kind did (else as long as its running siblings project); with nothing of
its kind known its time is unknown, and the run's ETA is a lower bound ("ETA >5m") or unknown
("ETA ?"). The stages are then laid out on the run's slots in order, each after its inputs, so
two parallel probes count once and a chain counts in full.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from vjepa.pipeline.watch import ACTIVE, RunSnap, StageSnap


@dataclass(frozen=True)
class Eta:
    """Seconds left (a lower bound when ``unknown`` stages have no estimate)."""

    seconds: float
    unknown: int  # active stages whose time is not known
    active: int  # stages still pending or running

    @property
    def known(self) -> bool:
        return self.active > 0 and self.unknown < self.active


def _own_remaining(stage: StageSnap, now: float) -> float | None:
    """A running stage's own ETA, aged since its record was written."""
    p = stage.progress
    if p is None or p.eta_s is None:
        return None
    return max(0.0, p.eta_s - max(0.0, now - p.updated))


def typical_seconds(snap: RunSnap) -> dict[str, float]:
    """Per kind: the mean time of its finished stages, else the running ones' projected totals."""
    finished: dict[str, list[float]] = {}
    projected: dict[str, list[float]] = {}
    for s in snap.stages:
        if s.state == "done" and s.seconds is not None:
            finished.setdefault(s.kind, []).append(s.seconds)
        elif s.state == "running":
            left = _own_remaining(s, snap.now)
            if left is not None:
                projected.setdefault(s.kind, []).append((s.seconds or 0.0) + left)
    out = {kind: sum(v) / len(v) for kind, v in projected.items()}
    out.update({kind: sum(v) / len(v) for kind, v in finished.items()})
    return out


def stage_remaining(
    stage: StageSnap, now: float, typical: dict[str, float] | None = None
) -> float | None:
    """Seconds ``stage`` has left (0 when finished, None when nothing is known)."""
    if stage.state not in ACTIVE:
        return 0.0
    if stage.state == "running":
        own = _own_remaining(stage, now)
        if own is not None:
            return own
    mean = (typical or {}).get(stage.kind)
    if mean is None:
        return None
    return max(0.0, mean - (stage.seconds or 0.0)) if stage.state == "running" else mean


def run_eta(snap: RunSnap) -> Eta:
    """The run's time left: its active stages scheduled on its slots, inputs first."""
    typical = typical_seconds(snap)
    active = [s for s in snap.stages if s.state in ACTIVE]
    left = {s.name: stage_remaining(s, snap.now, typical) for s in active}
    unknown = sum(v is None for v in left.values())
    running = [s for s in active if s.state == "running"]
    slots = max(snap.slots or len(active), len(running), 1)
    ends = {s.name: left[s.name] or 0.0 for s in running}
    free = sorted(ends.values()) + [0.0] * (slots - len(running))
    heapq.heapify(free)
    for s in active:
        if s.state == "running":
            continue
        ready = max((ends[i] for i in s.inputs if i in ends), default=0.0)
        start = max(ready, heapq.heappop(free))
        ends[s.name] = start + (left[s.name] or 0.0)
        heapq.heappush(free, ends[s.name])
    return Eta(max(ends.values(), default=0.0), unknown, len(active))
