"""Per-stage run state kept under ``.vjepa/``: what the runner started, when, and how it ended.

DVC knows whether a stage is up to date; only the runner knows that one is running now or
failed last time, so it writes one small JSON file per stage for ``vjepa-exp status``/``cancel``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vjepa.utils.io import atomic_write_json


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


@dataclass(frozen=True)
class StageStatus:
    name: str
    kind: str
    state: str  # up to date | stale | running | pending | failed
    seconds: float | None
    note: str = ""


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
        live = st.get("state") in ("running", "pending") and pid_alive(st.get("runner_pid"))
        seconds = _wall(root, stage.out)
        if live:
            state = st["state"]
            if st.get("started"):
                seconds = time.time() - st["started"]
        elif stage.name not in stale:
            state = "up to date"
        elif st.get("state") == "failed":
            state, seconds = "failed", (st.get("ended") or 0) - (st.get("started") or 0) or None
        else:
            state = "stale"
        rows.append(StageStatus(stage.name, stage.kind, state, seconds, st.get("reason", "") if state == "failed" else ""))
    return rows
