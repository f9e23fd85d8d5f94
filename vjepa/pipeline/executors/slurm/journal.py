"""The job journal: which stages this run submitted, under which SLURM job ids."""

from __future__ import annotations

import contextlib
import fcntl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vjepa.utils.io import atomic_write_json, read_json


class Journal:
    """Crash-safe record of submitted stages: ``{run_id, jobs: {stage: {job_id, status, ...}}}``.

    Every change is an atomic JSON rewrite under an flock, so two processes never interleave and
    a crash leaves the previous or the next version, never a torn file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.locked() as data:
            self.run_id: str = data["run_id"]

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        """Yield the journal's data for reading/changing; it is saved on a clean exit."""
        with open(self.path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = read_json(self.path) if self.path.exists() else {}
                data.setdefault("run_id", uuid.uuid4().hex[:8])
                data.setdefault("jobs", {})
                before = repr(data)
                yield data
                if repr(data) != before or not self.path.exists():
                    atomic_write_json(self.path, data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def entries(self) -> dict[str, dict[str, Any]]:
        with self.locked() as data:
            return dict(data["jobs"])
