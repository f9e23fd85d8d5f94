"""Local executor: each stage is a subprocess; at most ``jobs`` run at once.

Children get their own process group (a terminal Ctrl-C reaches the runner only, which then
stops them in order) and, on Linux, die with the runner (PR_SET_PDEATHSIG), so a killed runner
leaves no orphan writing into a stage folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vjepa.pipeline.executors.base import (
    THREAD_VARS,
    Executor,
    JobHandle,
    JobState,
    JobStatus,
    StageJob,
)

_GRACE_S = 10.0


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies (Linux only; silently skipped elsewhere)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


@dataclass
class _Job:
    job: StageJob
    after: list[str]
    state: JobState = JobState.PENDING
    proc: subprocess.Popen | None = None
    returncode: int | None = None
    started: float | None = None
    ended: float | None = None
    reason: str = ""
    deadline: float | None = field(default=None)  # SIGKILL after this when terminating


class LocalExecutor(Executor):
    """Subprocesses with ``jobs`` slots; dependencies are honoured here (afterok)."""

    name = "local"

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = max(1, int(jobs))
        self._jobs: dict[str, _Job] = {}
        self._order: list[str] = []

    def submit(self, job: StageJob, after: Sequence[JobHandle] = ()) -> JobHandle:
        job_id = str(len(self._order))
        self._jobs[job_id] = _Job(job, [h.job_id for h in after])
        self._order.append(job_id)
        self._pump()
        return JobHandle(self.name, job_id, job.stage, job.log)

    def poll(self, handle: JobHandle) -> JobStatus:
        self._pump()
        j = self._jobs[handle.job_id]
        return JobStatus(j.state, j.returncode, j.started, j.ended, j.reason)

    def cancel(self, handle: JobHandle) -> None:
        j = self._jobs.get(handle.job_id)
        if j is None or j.state.finished:
            return
        if j.state == JobState.PENDING:
            j.state, j.reason, j.ended = JobState.CANCELLED, "cancelled", time.time()
            return
        self._terminate(j)
        j.reason = "cancelled"

    def cancel_all(self, handles: Sequence[JobHandle] = ()) -> None:
        """Cancel every unfinished job of this executor (not only ``handles``: a job it started
        is its child) and wait until the running ones are gone."""
        for job_id in self._order:
            self.cancel(JobHandle(self.name, job_id, "", ""))
        while any(j.state == JobState.RUNNING for j in self._jobs.values()):
            self._reap()
            time.sleep(0.05)

    def wait(self, handles: Sequence[JobHandle], timeout: float = 1.0) -> None:
        end = time.time() + timeout
        before = {k: j.state for k, j in self._jobs.items()}
        while time.time() < end:
            self._pump()
            if any(j.state != before[k] for k, j in self._jobs.items()):
                return
            time.sleep(0.05)

    def pid(self, handle: JobHandle) -> int | None:
        j = self._jobs.get(handle.job_id)
        return j.proc.pid if j and j.proc else None

    # -- internals

    def _terminate(self, j: _Job) -> None:
        if j.proc is None or j.proc.poll() is not None:
            return
        try:
            os.killpg(j.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        j.deadline = time.time() + _GRACE_S

    def _reap(self) -> None:
        for j in self._jobs.values():
            if j.state != JobState.RUNNING or j.proc is None:
                continue
            code = j.proc.poll()
            if code is None:
                if j.deadline is not None and time.time() > j.deadline:
                    try:
                        os.killpg(j.proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                continue
            j.returncode, j.ended = code, time.time()
            if j.reason == "cancelled":
                j.state = JobState.CANCELLED
            elif code == 0:
                j.state = JobState.DONE
            else:
                j.state, j.reason = JobState.FAILED, f"exit code {code}"

    def _pump(self) -> None:
        """Reap finished children, cancel jobs whose dependency failed, start what fits."""
        self._reap()
        running = sum(j.state == JobState.RUNNING for j in self._jobs.values())
        for job_id in self._order:
            j = self._jobs[job_id]
            if j.state != JobState.PENDING:
                continue
            deps = [self._jobs[d] for d in j.after]
            bad = [d for d in deps if d.state in (JobState.FAILED, JobState.CANCELLED)]
            if bad:
                j.state, j.ended = JobState.CANCELLED, time.time()
                j.reason = f"dependency {bad[0].job.stage} {bad[0].state.value}"
                continue
            if running >= self.jobs or any(d.state != JobState.DONE for d in deps):
                continue
            self._start(j)
            running += j.state == JobState.RUNNING

    def _start(self, j: _Job) -> None:
        log = Path(j.job.log)
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**_thread_budget(self.jobs), **os.environ, **j.job.env}
        try:
            with open(log, "ab") as fh:
                fh.write(f"$ {' '.join(j.job.cmd)}\n".encode())
                fh.flush()
                j.proc = subprocess.Popen(
                    list(j.job.cmd),
                    cwd=j.job.cwd,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
        except OSError as exc:
            j.state, j.reason, j.ended = JobState.FAILED, f"cannot start: {exc}", time.time()
            return
        j.state, j.started = JobState.RUNNING, time.time()


def _thread_budget(jobs: int) -> dict[str, str]:
    """Share the cores between concurrent stages: oversubscribed BLAS/OpenMP threads make a
    2-core machine several times slower. A user's own OMP_NUM_THREADS still wins."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    return dict.fromkeys(THREAD_VARS, str(threads))
