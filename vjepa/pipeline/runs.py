"""Runs remember how they were started: the spec, its overrides and the stages they compiled to.

``vjepa-exp run SPEC a=b`` appends a record to ``.vjepa/runs/<spec>.jsonl`` (untracked, next to
the run's other state); ``status``, ``cancel``, ``results`` and ``compare`` given the spec alone
then act on its latest run (or ``--run ID``; ``vjepa-exp runs SPEC`` lists them), so the hints a
run prints work when pasted and a detached SLURM run can be followed and cancelled without
retyping its overrides. Overrides given on the command line always win over the record.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from vjepa.errors import UserError

FOLDER = Path(".vjepa") / "runs"


@dataclass(frozen=True)
class RunRecord:
    """One ``vjepa-exp run``: when, the spec as given, its overrides, the stages it compiled to."""

    id: str
    spec: str
    overrides: list[str]
    started: float
    executor: str
    stages: list[str]


def _key(root: Path, spec: Path) -> str:
    """The record file's name for ``spec``: its path under the project, flattened."""
    path = (spec if spec.is_absolute() else root / spec).resolve()
    try:
        shown = path.relative_to(root.resolve()).as_posix()
    except ValueError:
        shown = path.as_posix().lstrip("/")
    return shown.replace("/", "__")


def _file(root: Path, spec: Path) -> Path:
    return root / FOLDER / f"{_key(root, spec)}.jsonl"


def record_run(
    root: Path, spec: Path, overrides: list[str], executor: str, stages: list[str]
) -> RunRecord:
    """Append the record of a run that is starting (one JSON line; appends are atomic)."""
    record = RunRecord(
        id=time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4],
        spec=str(spec),
        overrides=list(overrides),
        started=time.time(),
        executor=executor,
        stages=list(stages),
    )
    path = _file(root, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(asdict(record), sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return record


def runs_of(root: Path, spec: Path) -> list[RunRecord]:
    """The recorded runs of ``spec``, oldest first (a torn last line is skipped)."""
    path = _file(root, spec)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(RunRecord(**json.loads(line)))
        except (ValueError, TypeError):
            continue
    return out


def pick_run(root: Path, spec: Path, run_id: str | None) -> RunRecord | None:
    """The run ``run_id`` of ``spec`` (a unique prefix is enough), or its latest run."""
    runs = runs_of(root, spec)
    if run_id is None:
        return runs[-1] if runs else None
    found = [r for r in runs if r.id.startswith(run_id)]
    if len(found) != 1:
        known = ", ".join(r.id for r in runs[-5:]) or "none"
        what = "no run" if not found else f"{len(found)} runs"
        raise UserError(f"--run {run_id}: {what} of {spec} match (latest: {known})")
    return found[0]


def overrides_for(
    root: Path, spec: Path, overrides: list[str], run_id: str | None
) -> tuple[list[str], RunRecord | None]:
    """The overrides a command on ``spec`` acts with: the ones given, else its run's."""
    if overrides and run_id is None:
        return overrides, None
    run = pick_run(root, spec, run_id)
    if run is None:
        return overrides, None
    return [*run.overrides, *overrides], run
