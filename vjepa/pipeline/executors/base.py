"""The executor interface: submit a stage (or an array of them) after its dependencies, poll,
cancel, read the log. The runner speaks only this interface, so local subprocesses and SLURM jobs
(submitit, ``--dependency=afterok``) are interchangeable.

A handle is plain data (``to_dict``/``from_dict``): the runner stores it in ``.vjepa/state`` so
that ``vjepa-exp status`` and ``vjepa-exp cancel`` can re-attach from another process.
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# the thread caps an executor gives each job (BLAS/OpenMP; torch reads OMP_NUM_THREADS at start)
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


class JobState(str, enum.Enum):
    PENDING = "pending"  # submitted, waiting for a slot or for its dependencies
    RUNNING = "running"
    DONE = "done"  # exited 0
    FAILED = "failed"  # exited non-zero, or could not start
    CANCELLED = "cancelled"  # by the user, or because a dependency failed

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class StageJob:
    """What to run for one stage: the command, where, its log file and per-kind resources."""

    stage: str
    kind: str
    cmd: tuple[str, ...]
    cwd: str
    log: str
    resources: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class JobHandle:
    """A submitted job: executor name, its job id there, the stage and its log path."""

    executor: str
    job_id: str
    stage: str
    log: str
    extra: dict[str, Any] = field(default_factory=dict)  # executor-specific (pid, array index, ...)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobHandle:
        return cls(**data)


@dataclass(frozen=True)
class JobStatus:
    state: JobState
    returncode: int | None = None
    started: float | None = None
    ended: float | None = None
    reason: str = ""
    native: str = ""  # the executor's own state name (SLURM: PENDING, RUNNING, REQUEUED, ...)


class Executor(ABC):
    """Runs stage jobs. Dependencies are ``afterok``: a job whose dependency fails is cancelled."""

    name: str = "base"
    arrays: bool = False  # True when submit_array makes one job array (the runner then batches)

    def check(self, jobs: Sequence[StageJob]) -> None:
        """Raise a ``UserError`` if one of ``jobs`` could never run here (before any submission)."""
        return None

    @abstractmethod
    def submit(self, job: StageJob, after: Sequence[JobHandle] = ()) -> JobHandle:
        """Queue ``job`` to start once every handle in ``after`` is DONE."""

    def submit_array(
        self, jobs: Sequence[StageJob], after: Sequence[JobHandle] = ()
    ) -> list[JobHandle]:
        """Queue independent jobs sharing dependencies (SLURM: one job array)."""
        return [self.submit(job, after) for job in jobs]

    @abstractmethod
    def poll(self, handle: JobHandle) -> JobStatus:
        """The job's current state (cheap; the runner calls it often)."""

    @abstractmethod
    def cancel(self, handle: JobHandle) -> None:
        """Stop the job (pending: never starts; running: terminated)."""

    def cancel_all(self, handles: Sequence[JobHandle]) -> None:
        """Stop every one of ``handles`` (Ctrl-C, SIGTERM of the runner)."""
        for handle in handles:
            self.cancel(handle)

    def retry_failed(
        self, jobs: Sequence[StageJob], deps: Mapping[str, Sequence[str]]
    ) -> list[JobHandle]:
        """Resubmit those of ``jobs`` whose last attempt failed (an executor that keeps a record
        of submitted jobs: SLURM); ``deps``: stage -> the stages it waits for."""
        from vjepa.errors import UserError

        raise UserError(
            f"--retry-failed: needs executor=slurm (a {self.name} run just reruns what is stale)"
        )

    def log_tail(self, handle: JobHandle, lines: int = 20) -> str:
        """The last ``lines`` lines of the job's log."""
        return tail(Path(handle.log), lines)

    def wait(self, handles: Sequence[JobHandle], timeout: float = 1.0) -> None:
        """Block up to ``timeout`` seconds or until something may have changed."""
        time.sleep(timeout)

    def close(self) -> None:
        """Release resources; running jobs of a detachable executor keep running."""
        return None

    @property
    def detachable(self) -> bool:
        """True when jobs outlive this process (SLURM), so the runner may exit early."""
        return False


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file ('' when missing)."""
    if not path.is_file():
        return ""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - 64 * 1024))
        text = fh.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def make_executor(
    config: dict[str, Any], root: Path, jobs: int | None = None, spec: str = "pipeline"
) -> Executor:
    """The executor that ``config`` (the spec's executor group) names; SLURM jobs are filed per spec."""
    kind = config.get("kind", "local")
    if kind == "local":
        from vjepa.pipeline.executors.local import LocalExecutor

        return LocalExecutor(jobs=jobs or int(config.get("jobs", 1)))
    if kind == "slurm":
        from vjepa.pipeline.executors.slurm import SlurmExecutor

        return SlurmExecutor(config, root, spec)
    from vjepa.errors import UserError

    raise UserError(f"executor.kind: unknown executor {kind!r} (expected local or slurm)")
