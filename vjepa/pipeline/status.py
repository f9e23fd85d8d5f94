"""Per-stage run state kept under ``.vjepa/``: what the runner started, when, and how it ended.

DVC knows whether a stage is up to date; only the runner knows that one is running now or
failed last time, so it writes one small JSON file per stage for ``vjepa-exp status``/``cancel``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vjepa.pipeline.executors.base import tail
from vjepa.pipeline.graph import metrics_path, out_dir
from vjepa.utils.io import atomic_write_json
from vjepa.utils.secrets import mask

RUNNING_TAIL = 3  # log lines shown under a running stage


def state_dir(root: Path) -> Path:
    return root / ".vjepa" / "state"


def log_path(root: Path, stage: str) -> Path:
    return root / ".vjepa" / "logs" / f"{stage}.log"


def write_state(root: Path, stage: str, **fields: Any) -> None:
    """Merge ``fields`` into the stage's state file."""
    path = state_dir(root) / f"{stage}.json"
    data = read_state(root, stage)
    data.update(fields, updated=time.time())
    atomic_write_json(path, data)


def read_state(root: Path, stage: str) -> dict[str, Any]:
    path = state_dir(root) / f"{stage}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_half_output(root: Path, name: str, persist: bool) -> None:
    """Delete an unfinished stage's folder (persist folders keep their resume state)."""
    folder = root / out_dir(name)
    if not persist and folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    (root / metrics_path(name)).unlink(missing_ok=True)


def on_slurm(st: dict[str, Any]) -> bool:
    return (st.get("handle") or {}).get("executor") == "slurm"


def in_flight(st: dict[str, Any]) -> bool:
    """Submitted and not finished, as the state file last saw it."""
    return st.get("state") in ("running", "pending")


def unfollowed(st: dict[str, Any]) -> bool:
    """A SLURM job in flight that no live runner follows (detached, or its runner died)."""
    return on_slurm(st) and in_flight(st) and not pid_alive(st.get("runner_pid"))


@dataclass(frozen=True)
class StageStatus:
    name: str
    kind: str
    state: str  # up to date | stale | running | pending | failed
    seconds: float | None
    note: str = ""
    log_tail: str = ""  # a failed stage's last log lines, or a running stage's latest ones


def _wall(root: Path, out: str) -> float | None:
    try:
        return float(json.loads((root / out / "meta.json").read_text())["wall_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stage_statuses(root: Path, stages: list[Any], stale: set[str]) -> list[StageStatus]:
    """Combine DVC's stale set with the runner's state files."""
    rows = []
    for stage in stages:
        st = read_state(root, stage.name)
        live = in_flight(st) and (pid_alive(st.get("runner_pid")) or on_slurm(st))
        seconds = _wall(root, stage.out)
        if live:
            state = st["state"]
            if st.get("started"):
                seconds = time.time() - st["started"]
        elif stage.name not in stale:
            state = "up to date"
        elif st.get("state") == "failed":
            state, seconds = "failed", _span(st)
        else:
            state = "stale"
        if live and st.get("attempts_s") and st.get("restarts"):
            seconds = max(seconds or 0.0, float(st["attempts_s"]))  # every attempt, not the last
        tail_lines = ""
        if state == "failed":
            tail_lines = st.get("log_tail", "")
        elif state == "running":
            tail_lines = tail(log_path(root, stage.name), RUNNING_TAIL)
        tail_lines = mask(tail_lines)  # a log may quote a URL: never show its password
        rows.append(
            StageStatus(stage.name, stage.kind, state, seconds, _note(st, state), tail_lines)
        )
    return rows


def _note(st: dict[str, Any], state: str) -> str:
    """Why a stage failed; for a SLURM job in flight its job id and what it waits for."""
    if state == "failed":
        return st.get("reason", "")
    if state in ("running", "pending") and on_slurm(st):
        parts = [f"job {st['handle']['job_id']}", st.get("native") or ""]
        if st.get("note"):
            parts.append(f"({st['note']})")
        if st.get("restarts"):
            parts.append(f"restarted {st['restarts']}x")
        return " ".join(p for p in parts if p)
    return ""


def _span(st: dict[str, Any]) -> float | None:
    """How long a finished attempt ran (None when its start was never seen)."""
    if st.get("started") and st.get("ended"):
        return st["ended"] - st["started"]
    return None
