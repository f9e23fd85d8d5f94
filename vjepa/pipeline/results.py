"""Where a spec's probe metrics are read from: the working tree or a git revision.

The tidy table and the pivot are ``vjepa.report.results`` (shared with the report stage); this
module adds the readers that need the platform: the tracked metrics copies and git.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from vjepa.pipeline.graph import metrics_path
from vjepa.report.results import Reader


def _copy_path(folder: str) -> str:
    """The tracked metrics copy of the stage folder ``runs/<kind>/<label>-<uid>``."""
    return metrics_path(f"{Path(folder).parent.name}-{Path(folder).name}")


def read_workdir(root: Path) -> Reader:
    """Metrics of a probe folder in the working tree (the git-tracked copy first)."""

    def read(folder: str) -> dict[str, Any] | None:
        for path in (root / _copy_path(folder), root / folder / "metrics.json"):
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError):
                continue
        return None

    return read


def read_git(root: Path, rev: str) -> Reader:
    """Metrics of a probe folder at git revision ``rev`` (its tracked metrics copy)."""

    def read(folder: str) -> dict[str, Any] | None:
        out = subprocess.run(
            ["git", "show", f"{rev}:{_copy_path(folder)}"], cwd=root, capture_output=True, text=True
        )
        if out.returncode != 0:
            return None
        try:
            return json.loads(out.stdout)
        except ValueError:
            return None

    return read
