"""SLURM executor: stages become sbatch jobs (through submitit) that outlive the submitting process.

Why it looks the way it does:
- A whole DAG is submitted at once with ``--dependency=afterok`` chains, so the login-node process
  may exit; a later ``vjepa-exp status`` re-attaches from the handles the state files keep.
- Stages of one kind that become ready together go out as one job array; each element is a stage
  of its own (``<array>_<index>``), waited for, polled and cancelled by that id.
- The journal (``<folder>/<spec>/journal.json``) is written atomically *before* each sbatch (entry
  marked ``submitting``) and after it (job id). Jobs are named ``vx-<run id>-<stage>``, so a
  submission interrupted between sbatch and the journal write is found again with squeue/sacct
  and adopted; jobs of this run that the journal does not know are cancelled (no orphans).
- Bad SLURM parameters fail at submission with sbatch's own reason as one line; sbatch created
  no job, and the journal entry is dropped.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from vjepa.pipeline.executors.base import (
    THREAD_VARS,
    Executor,
    JobHandle,
    JobState,
    JobStatus,
    StageJob,
    tail,
)
from vjepa.pipeline.executors.slurm import commands
from vjepa.pipeline.executors.slurm.commands import FINAL, STATE_MAP, SlurmError, one_line
from vjepa.pipeline.executors.slurm.config import (
    _STR_KEYS,
    SlurmConfig,
    SlurmResources,
    check_resource,
    parse_slurm_config,
)
from vjepa.pipeline.executors.slurm.journal import Journal

_STATES = {
    "pending": JobState.PENDING,
    "running": JobState.RUNNING,
    "done": JobState.DONE,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}
_POLL_EVERY_S = 2.0


def job_status(info: tuple[str, str, str] | None) -> JobStatus:
    """A JobStatus from ``commands.query_jobs``' (SLURM state, elapsed, reason).

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
    state = _STATES.get(STATE_MAP.get(slurm_state, ""), JobState.PENDING)
    seconds = commands.elapsed_seconds(elapsed) if state != JobState.PENDING else None
    now = time.time()
    started = now - seconds if seconds is not None else None  # a finished job: as if it just ended
    if state.finished:  # squeue's reason for a finished job is its last pending reason: drop it
        return JobStatus(
            state, started=started, ended=now, reason=f"SLURM {slurm_state}", native=slurm_state
        )
    return JobStatus(state, started=started, reason=reason, native=slurm_state)


class SlurmExecutor(Executor):
    """Stage jobs as sbatch jobs (afterok chains, job arrays); detachable, re-attachable."""

    name = "slurm"
    arrays = True

    def __init__(
        self,
        config: SlurmConfig | Mapping[str, Any],
        root: str | os.PathLike[str],
        spec: str,
        reconcile: bool = True,
    ) -> None:
        self.config = config if isinstance(config, SlurmConfig) else parse_slurm_config(config)
        self.spec = spec
        self.root = Path(root).resolve()
        self.folder = (self.root / self.config.folder / spec).resolve()
        self.journal = Journal(self.folder / "journal.json")
        self.run_id = self.journal.run_id
        self._info: dict[str, tuple[str, str, str] | None] = {}
        self._polled = 0.0
        if reconcile:
            self.reconcile()

    @classmethod
    def reattach(cls, root: Path, handle: JobHandle) -> SlurmExecutor:
        """The executor a stored handle was submitted with (reconciles its journal)."""
        extra = handle.extra
        return cls({"folder": extra.get("folder")}, root, extra.get("spec", "pipeline"))

    def job_name(self, stage: str) -> str:
        return f"vx-{self.run_id}-{stage}"

    def _handle(self, stage: str, job_id: str, log: str) -> JobHandle:
        extra = {"spec": self.spec, "folder": self.config.folder}
        return JobHandle(self.name, job_id, stage, log, extra)

    # -- resources ---------------------------------------------------------------------------
    def resources(self, job: StageJob) -> SlurmResources:
        """What ``job`` asks for: its kind's resources, then its own overrides."""
        res = self.config.for_kind(job.kind)
        if job.resources:
            where = f"job {job.stage} resources"
            res = replace(res, **{k: check_resource(where, k, v) for k, v in job.resources.items()})
        return res

    def check(self, jobs: Sequence[StageJob]) -> None:
        """A ``SlurmError`` naming the stage, the key and the limit when a job asks more than its
        partition can ever give (checked before any sbatch, so nothing is submitted)."""
        from vjepa.pipeline.executors.slurm.limits import misfit, read_partitions

        if not jobs:
            return
        parts = read_partitions(commands.slurm)
        for job in jobs:
            res = self.resources(job)
            request = {**asdict(res), "tasks": res.tasks}
            why = misfit(f"executor.resources.{job.kind}", job.stage, request, parts)
            if why:
                raise SlurmError(f"{why} (nothing was submitted)")

    def _sbatch_executor(self, job: StageJob, name: str, after: Sequence[JobHandle]) -> Any:
        """A submitit executor set up for ``job``'s resources, named ``name``, after ``after``."""
        import submitit

        res = self.resources(job)
        ex = submitit.AutoExecutor(
            folder=self.folder / "%j",
            cluster="slurm",
            slurm_max_num_timeout=self.config.max_num_timeout,
        )
        params: dict[str, Any] = {
            "slurm_job_name": self.job_name(name),
            "slurm_time": res.time,
            "slurm_nodes": res.nodes,
            "slurm_ntasks_per_node": res.tasks,
            "slurm_cpus_per_task": res.cpus_per_task,
            "slurm_array_parallelism": res.array_parallelism,
            "slurm_signal_delay_s": self.config.signal_delay_s,
            "slurm_setup": list(res.setup),
            "slurm_comment": f"vjepa-exp run {self.run_id}",
        }
        if res.gpus_per_node:
            params["slurm_gpus_per_node"] = res.gpus_per_node
        if res.mem_gb is not None:
            mem = res.mem_gb
            params["slurm_mem"] = f"{int(mem)}G" if mem == int(mem) else f"{int(mem * 1024)}M"
        for key in _STR_KEYS:
            if getattr(res, key):
                params[f"slurm_{key}"] = getattr(res, key)
        additional = dict(res.additional)
        if after:
            # an array element's own id (123_4): a stage waits for its input, not the whole array
            additional["dependency"] = "afterok:" + ":".join(sorted({h.job_id for h in after}))
            additional["kill-on-invalid-dep"] = "yes"
        if additional:
            params["slurm_additional_parameters"] = additional
        ex.update_parameters(**params)
        return ex

    def _body(self, job: StageJob) -> Any:
        """The job's callable: the stage command, saving and requeueing on preemption. Its
        OMP/MKL threads follow ``cpus_per_task`` (SLURM sets no thread cap: a job would start one
        thread per core of the node beside its neighbours'); a cap the user exported still wins."""
        from vjepa.pipeline.executors.slurm.jobs import CheckpointableCommand

        cpus = str(self.resources(job).cpus_per_task)
        env = {**{k: cpus for k in THREAD_VARS if k not in os.environ}, **job.env}
        return CheckpointableCommand(list(job.cmd), job.cwd, env, job.log)

    # -- submission --------------------------------------------------------------------------
    def submit(self, job: StageJob, after: Sequence[JobHandle] = ()) -> JobHandle:
        return self._submit([job], after, array=False)[0]

    def submit_array(
        self, jobs: Sequence[StageJob], after: Sequence[JobHandle] = ()
    ) -> list[JobHandle]:
        """One SLURM job array (``array_parallelism`` elements at a time) of same-kind stages."""
        if not jobs:
            return []
        if len({j.kind for j in jobs}) != 1:
            raise SlurmError("a SLURM job array needs stages of one kind")
        return self._submit(list(jobs), after, array=True)

    def _submit(
        self, jobs: list[StageJob], after: Sequence[JobHandle], array: bool
    ) -> list[JobHandle]:
        import submitit

        names = [j.stage for j in jobs]
        group = f"array-{names[0]}" if array else names[0]
        ex = self._sbatch_executor(jobs[0], group, after)
        with self.journal.locked() as data:  # 1. intent, before sbatch
            for j in jobs:
                data["jobs"][j.stage] = {
                    "status": "submitting",
                    "kind": j.kind,
                    "job_id": None,
                    "job_name": self.job_name(group),
                    "after": [h.stage for h in after],
                    "attempt": data["jobs"].get(j.stage, {}).get("attempt", 0) + 1,
                    "submitted_at": time.time(),
                }
        try:
            bodies = [self._body(j) for j in jobs]
            # submitit also prints a refused sbatch's stderr: the error below is its one line
            with contextlib.redirect_stderr(io.StringIO()):
                if array:
                    with ex.batch():
                        sjobs = [ex.submit(body) for body in bodies]
                else:
                    sjobs = [ex.submit(bodies[0])]
        except (submitit.core.utils.FailedJobError, subprocess.CalledProcessError) as exc:
            self._forget(names)
            what = names[0] + (f" (and the {len(names) - 1} other stages of its array)" * array)
            raise SlurmError(f"sbatch refused {what}: {one_line(str(exc))}") from None
        # Any other exit (KeyboardInterrupt, a crash) keeps the 'submitting' marks for reconcile().
        with self.journal.locked() as data:  # 2. the ids
            for j, sj in zip(jobs, sjobs, strict=True):
                data["jobs"][j.stage].update(job_id=sj.job_id, status="submitted")
        return [self._handle(j.stage, sj.job_id, j.log) for j, sj in zip(jobs, sjobs, strict=True)]

    def _forget(self, names: Iterable[str]) -> None:
        with self.journal.locked() as data:
            for n in names:
                data["jobs"].pop(n, None)

    def reconcile(self) -> dict[str, list[str]]:
        """Adopt jobs whose submission was interrupted; cancel this run's jobs nobody tracks."""
        prefix = f"vx-{self.run_id}-"
        live = commands.jobs_named(prefix)
        adopted: list[str] = []
        with self.journal.locked() as data:
            known = {e["job_id"].split("_")[0] for e in data["jobs"].values() if e.get("job_id")}
            by_name: dict[str, list[str]] = {}
            for jid, name in live.items():
                if jid not in known:
                    by_name.setdefault(name, []).append(jid)
            pending = [(n, e) for n, e in data["jobs"].items() if e.get("status") == "submitting"]
            groups: dict[str, list[str]] = {}
            for n, e in pending:
                groups.setdefault(e["job_name"], []).append(n)
            for job_name, stage_names in groups.items():
                ids = sorted(by_name.pop(job_name, []), key=int)
                if not ids:  # sbatch never ran: forget the intent
                    for n in stage_names:
                        data["jobs"].pop(n)
                    continue
                jid = ids.pop()  # the newest; older duplicates are orphans
                by_name.setdefault(job_name, []).extend(ids)
                array = len(stage_names) > 1 or job_name.startswith(f"{prefix}array-")
                for i, n in enumerate(stage_names):
                    data["jobs"][n].update(
                        job_id=f"{jid}_{i}" if array else jid, status="submitted"
                    )
                    adopted.append(n)
        orphans = [jid for ids in by_name.values() for jid in ids]
        active = commands.query_jobs(orphans)
        to_cancel = [j for j, (s, _, _) in active.items() if STATE_MAP.get(s) not in FINAL]
        commands.cancel_jobs(to_cancel)
        return {"adopted": adopted, "cancelled": to_cancel}

    # -- state -------------------------------------------------------------------------------
    def refresh(self, handles: Sequence[JobHandle]) -> dict[str, JobStatus]:
        """One squeue/sacct round for all ``handles``: ``stage -> status``."""
        found = commands.query_jobs(h.job_id for h in handles)
        for h in handles:  # a job SLURM stopped listing must not keep its last state
            self._info[h.job_id] = found.get(h.job_id)
        self._polled = time.monotonic()
        return {h.stage: job_status(self._info[h.job_id]) for h in handles}

    def attempts(self, handles: Sequence[JobHandle]) -> dict[str, tuple[int, float]]:
        """``stage -> (restarts, seconds summed over its attempts)`` (sacct keeps every attempt
        of a requeued job; squeue shows only the current one)."""
        found = commands.job_attempts(h.job_id for h in handles)
        return {h.stage: found[h.job_id] for h in handles if h.job_id in found}

    def poll(self, handle: JobHandle) -> JobStatus:
        if handle.job_id not in self._info or time.monotonic() - self._polled > _POLL_EVERY_S:
            self.refresh([handle])
        return job_status(self._info.get(handle.job_id))

    def wait(self, handles: Sequence[JobHandle], timeout: float = 1.0) -> None:
        time.sleep(max(timeout, _POLL_EVERY_S))
        self.refresh(handles)

    def cancel(self, handle: JobHandle) -> None:
        commands.cancel_jobs([handle.job_id])

    def cancel_all(self, handles: Sequence[JobHandle]) -> None:
        """One scancel for every unfinished job of ``handles``."""
        states = self.refresh(handles)
        commands.cancel_jobs(h.job_id for h in handles if not states[h.stage].state.finished)

    def log_tail(self, handle: JobHandle, lines: int = 20) -> str:
        """The stage's own log; submitit's stdout/stderr when the command never started."""
        own = tail(Path(handle.log), lines)
        if own:
            return own
        from submitit.core.utils import JobPaths

        paths = JobPaths(self.folder / "%j", job_id=handle.job_id, task_id=0)
        parts = []
        for path in (paths.stdout, paths.stderr):
            text = tail(path, lines)
            if text:
                parts.append(f"==> {path.name} <==\n{text}")
        return "\n".join(parts)

    def retry_failed(
        self, jobs: Sequence[StageJob], deps: Mapping[str, Sequence[str]]
    ) -> list[JobHandle]:
        """Resubmit the stages among ``jobs`` (in dependency order) whose last SLURM job failed or
        was cancelled; one still pending, running or done is left alone, and a resubmitted stage
        waits for those of its ``deps`` that are not done yet."""
        entries = self.journal.entries()
        current = {
            name: self._handle(name, e["job_id"], "") for name, e in entries.items() if e["job_id"]
        }
        states = {name: st.state for name, st in self.refresh(list(current.values())).items()}
        redo = {
            j.stage
            for j in jobs
            if states.get(j.stage, JobState.FAILED) in (JobState.FAILED, JobState.CANCELLED)
        }
        out: list[JobHandle] = []
        for job in jobs:
            if job.stage not in redo:
                continue
            after = [
                current[d]
                for d in deps.get(job.stage, ())
                if d in current and (d in redo or states.get(d) != JobState.DONE)
            ]
            handle = self.submit(job, after=after)
            current[job.stage] = handle
            out.append(handle)
        return out

    @property
    def detachable(self) -> bool:
        return True
