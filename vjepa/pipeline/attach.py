"""Re-attach to SLURM jobs that no runner follows: record what finished, cancel what is asked.

``vjepa-exp run --detach`` submits a DAG and exits; the jobs then outlive every process of ours.
Whoever looks next (``status``, ``cancel``, or the next ``run``) asks SLURM about the stages the
state files show in flight, writes the outcome to the state files, removes the half outputs of
failed jobs and records finished stages in dvc.lock (``dvc commit``), so that ``dvc status`` is
clean without anyone having waited for the jobs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from vjepa.errors import UserError
from vjepa.pipeline import dvcio, status
from vjepa.pipeline.compiler import Compiled
from vjepa.pipeline.executors.base import JobHandle, JobState, JobStatus
from vjepa.utils.secrets import mask

if TYPE_CHECKING:
    from vjepa.pipeline.executors.slurm import SlurmExecutor

LOG_LINES = 20


def unfollowed(root: Path, names: Iterable[str]) -> dict[str, JobHandle]:
    """``stage -> handle`` of the SLURM jobs in flight that no live runner follows."""
    found = {}
    for name in names:
        st = status.read_state(root, name)
        if status.unfollowed(st):
            found[name] = JobHandle.from_dict(st["handle"])
    return found


def _adapters(
    root: Path, handles: dict[str, JobHandle]
) -> list[tuple[SlurmExecutor, list[JobHandle]]]:
    """One adapter per (spec, job folder) the handles were submitted with."""
    from vjepa.pipeline.executors.slurm import SlurmExecutor

    groups: dict[tuple[str, str], list[JobHandle]] = {}
    for h in handles.values():
        groups.setdefault((h.extra.get("spec", ""), h.extra.get("folder", "")), []).append(h)
    return [(SlurmExecutor.reattach(root, hs[0]), hs) for hs in groups.values()]


def sync(root: Path, compiled: Compiled) -> list[str]:
    """Bring the state files of ``compiled``'s unfollowed SLURM stages up to date; commit what ended.

    Returns the stages newly recorded as done. Needs the project's run lock (the caller holds it).
    """
    handles = unfollowed(root, [s.name for s in compiled.stages])
    done: list[str] = []
    for adapter, group in _adapters(root, handles):
        states = adapter.refresh(group)
        done += [h.stage for h in group if _record(root, compiled, adapter, h, states[h.stage])]
        for stage, (restarts, seconds) in adapter.attempts(group).items():
            status.write_state(root, stage, restarts=restarts, attempts_s=seconds)
    if done:
        dvcio.commit(root, done)
        for name in done:
            status.write_state(root, name, state="done", ended=time.time(), note="")
    return done


def _record(
    root: Path, compiled: Compiled, adapter: SlurmExecutor, h: JobHandle, st: JobStatus
) -> bool:
    """Write one job's state; True when it finished well and must be committed."""
    name = h.stage
    if not st.state.finished:
        started = st.started if st.state == JobState.RUNNING else None
        status.write_state(
            root, name, state=st.state.value, started=started, note=st.reason, native=st.native
        )
        return False
    if (
        st.state == JobState.DONE
        and (root / compiled.graph.stages[name].out / "metrics.json").is_file()
    ):
        return True
    reason = (
        st.reason if st.state != JobState.DONE else "the job ended without writing metrics.json"
    )
    state = JobState.CANCELLED if st.state == JobState.CANCELLED else JobState.FAILED
    status.remove_half_output(root, name, compiled.graph.stages[name].persist)
    status.write_state(
        root,
        name,
        state=state.value,
        started=st.started,
        ended=st.ended or time.time(),
        reason=reason,
        note="",
        log_tail=mask(adapter.log_tail(h, LOG_LINES)) if state == JobState.FAILED else "",
    )
    return False


def try_sync(root: Path, compiled: Compiled) -> str:
    """``sync`` under the run lock; when another run holds it, only say so (it records its own)."""
    from vjepa.pipeline.runner import run_lock

    try:
        with run_lock(root):
            sync(root, compiled)
    except UserError as exc:
        return f"not recording finished SLURM jobs now: {exc}"
    return ""


def cancel(root: Path, compiled: Compiled, wait_s: float = 60.0) -> list[str]:
    """scancel the unfollowed SLURM jobs of ``compiled``, wait until SLURM agrees, record them."""
    handles = unfollowed(root, [s.name for s in compiled.stages])
    for adapter, group in _adapters(root, handles):
        for h in group:
            adapter.cancel(h)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if all(st.state.finished for st in adapter.refresh(group).values()):
                break
            time.sleep(1.0)
    try_sync(root, compiled)
    return sorted(handles)


def spec_status(root: Path, compiled: Compiled) -> tuple[list[status.StageStatus], str]:
    """Every stage of a compiled spec with its state, after recording what detached SLURM jobs
    did since the last look; and a warning when that could not be recorded now."""
    note = try_sync(root, compiled)
    names = [s.name for s in compiled.stages]
    known = set(dvcio.read_stages(root)) & set(names)
    stale = (dvcio.stale(root, sorted(known)) if known else set()) | (set(names) - known)
    return status.stage_statuses(root, compiled.stages, stale), note
