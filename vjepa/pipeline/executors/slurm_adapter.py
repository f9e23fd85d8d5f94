"""The runner's executor interface over ``executors.slurm.SlurmExecutor``.

Why an adapter: the SLURM executor has its own job and handle types (it also runs callables, job
arrays and sweep workers); the runner only speaks ``executors.base``. Each handle carries the spec
name and the job folder, so ``vjepa-exp status``/``cancel`` can re-attach from another process
with no other configuration than what the state file holds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vjepa.pipeline.executors import slurm
from vjepa.pipeline.executors.base import (
    THREAD_VARS,
    Executor,
    JobHandle,
    JobState,
    JobStatus,
    StageJob,
    tail,
)

_STATES = {
    "pending": JobState.PENDING,
    "running": JobState.RUNNING,
    "done": JobState.DONE,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}
_POLL_EVERY_S = 2.0


def job_status(info: tuple[str, str, str] | None) -> JobStatus:
    """A JobStatus from ``query_jobs``' (SLURM state, elapsed, reason).

    A job that neither squeue (which lists finished jobs for a few minutes) nor sacct knows was
    cancelled while pending: SLURM 22.05 keeps no record of such an array element. Reading it as
    pending would leave the run waiting for a job that no longer exists.
    """
    if info is None:
        return JobStatus(
            JobState.CANCELLED,
            ended=time.time(),
            reason="SLURM has no record of the job: it was cancelled while pending",
            native="GONE",
        )
    slurm_state, elapsed, reason = info
    state = _STATES.get(slurm.STATE_MAP.get(slurm_state, ""), JobState.PENDING)
    seconds = slurm.elapsed_seconds(elapsed) if state != JobState.PENDING else None
    now = time.time()
    started = now - seconds if seconds is not None else None  # a finished job: as if it just ended
    if state.finished:  # squeue's reason for a finished job is its last pending reason: drop it
        return JobStatus(
            state, started=started, ended=now, reason=f"SLURM {slurm_state}", native=slurm_state
        )
    return JobStatus(state, started=started, reason=reason, native=slurm_state)


class SlurmAdapter(Executor):
    """Stage jobs as sbatch jobs (afterok chains); detachable, re-attachable from the journal."""

    name = "slurm"
    arrays = True

    def __init__(self, config: Mapping[str, Any], root: Path, spec: str) -> None:
        self.spec = spec
        self._folder = str(config.get("folder") or slurm.SlurmConfig.folder)
        self._ex = slurm.SlurmExecutor(config, spec, root)
        self._info: dict[str, tuple[str, str, str] | None] = {}
        self._polled = 0.0

    @classmethod
    def reattach(cls, root: Path, handle: JobHandle) -> SlurmAdapter:
        """The adapter a stored handle was submitted with (reconciles its journal)."""
        extra = handle.extra
        return cls({"folder": extra.get("folder")}, root, extra.get("spec", "pipeline"))

    def _native_job(self, job: StageJob) -> slurm.StageJob:
        return slurm.StageJob(
            name=job.stage,
            kind=job.kind,
            command=list(job.cmd),
            resources=job.resources,
            cwd=job.cwd,
            env={**self._thread_env(job), **job.env},
            log=job.log,
        )

    def _thread_env(self, job: StageJob) -> dict[str, str]:
        """The job's OMP/MKL threads follow its ``cpus_per_task`` (SLURM sets no thread cap: a
        job would start one thread per core of the node beside its neighbours' threads). A cap the
        user exported still wins, as under the local executor."""
        cpus = str(self._ex.resources(job.kind, job.resources, job.stage).cpus_per_task)
        return {k: cpus for k in THREAD_VARS if k not in os.environ}

    def check(self, jobs: Sequence[StageJob]) -> None:
        self._ex.check_fits([self._native_job(j) for j in jobs])

    def _handle(self, job: StageJob, native: slurm.SlurmHandle) -> JobHandle:
        extra = {"spec": self.spec, "folder": self._folder}
        return JobHandle(self.name, native.job_id, job.stage, job.log, extra)

    @staticmethod
    def _native(handle: JobHandle) -> slurm.SlurmHandle:
        return slurm.SlurmHandle(handle.stage, handle.job_id)

    def submit(self, job: StageJob, after: Sequence[JobHandle] = ()) -> JobHandle:
        native = self._ex.submit(self._native_job(job), [self._native(a) for a in after])
        return self._handle(job, native)

    def submit_array(
        self, jobs: Sequence[StageJob], after: Sequence[JobHandle] = ()
    ) -> list[JobHandle]:
        """One SLURM job array (``array_parallelism`` elements at a time); each element is a
        stage of its own, polled, cancelled and requeued by its ``<array>_<index>`` id."""
        natives = self._ex.submit_array(
            [self._native_job(j) for j in jobs], [self._native(a) for a in after]
        )
        return [self._handle(j, n) for j, n in zip(jobs, natives, strict=True)]

    def retry_failed(
        self, jobs: Sequence[StageJob], deps: Mapping[str, Sequence[str]]
    ) -> list[JobHandle]:
        """Resubmit the jobs whose last SLURM attempt failed or was cancelled (see SlurmExecutor)."""
        by_name = {j.stage: j for j in jobs}
        natives = self._ex.retry_failed([self._native_job(j) for j in jobs], deps)
        return [self._handle(by_name[n.name], n) for n in natives]

    def refresh(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        """One squeue/sacct round for all ``handles``: ``stage -> status``."""
        found = slurm.query_jobs(h.job_id for h in handles)
        for h in handles:  # a job SLURM stopped listing must not keep its last state
            self._info[h.job_id] = found.get(h.job_id)
        self._polled = time.monotonic()
        return {h.stage: job_status(self._info.get(h.job_id)) for h in handles}

    def attempts(self, handles: Sequence[JobHandle]) -> dict[str, tuple[int, float]]:
        """``stage -> (restarts, seconds summed over its attempts)`` (sacct keeps every attempt
        of a requeued job; squeue shows only the current one)."""
        found = slurm.job_attempts(h.job_id for h in handles)
        return {h.stage: found[h.job_id] for h in handles if h.job_id in found}

    def poll(self, handle: JobHandle) -> JobStatus:
        if handle.job_id not in self._info or time.monotonic() - self._polled > _POLL_EVERY_S:
            self.refresh([handle])
        return job_status(self._info.get(handle.job_id))

    def wait(self, handles: Sequence[JobHandle], timeout: float = 1.0) -> None:
        time.sleep(max(timeout, _POLL_EVERY_S))
        self.refresh(handles)

    def cancel(self, handle: JobHandle) -> None:
        self._ex.cancel(self._native(handle))

    def log_tail(self, handle: JobHandle, lines: int = 20) -> str:
        """The stage's own log; submitit's files when the command never started."""
        return tail(Path(handle.log), lines) or self._ex.log_tail(self._native(handle), lines)

    @property
    def detachable(self) -> bool:
        return True
