"""SLURM executor: stages become sbatch jobs (through submitit) that outlive the submitting process.

Why it looks the way it does:
- A whole DAG is submitted at once with ``--dependency=afterok`` chains, so the login-node process
  may exit; ``status()`` re-attaches later from a journal of job ids.
- The journal (``<folder>/journal.json``) is written atomically *before* each sbatch (entry marked
  ``submitting``) and after it (job id). Jobs are named ``vx-<run id>-<stage>``, so a submission
  interrupted between sbatch and the journal write is found again with squeue/sacct and adopted;
  jobs of this run that the journal does not know are cancelled (no untracked orphans).
- Bad SLURM parameters fail at submission with sbatch's own reason as one line; sbatch created
  no job, and the journal entry is dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import io
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from vjepa.errors import SpecError, UserError
from vjepa.stages import KINDS
from vjepa.utils.io import atomic_write_json, read_json

TOP_KEYS = ("kind", "jobs", "folder", "max_num_timeout", "signal_delay_s", "resources")

# SLURM job states -> the executor's small vocabulary.
STATE_MAP = {
    "PENDING": "pending",
    "REQUEUED": "pending",
    "REQUEUE_HOLD": "pending",
    "REQUEUE_FED": "pending",
    "CONFIGURING": "pending",
    "RESIZING": "pending",
    "RUNNING": "running",
    "COMPLETING": "running",
    "SUSPENDED": "running",
    "STAGE_OUT": "running",
    "SIGNALING": "running",
    "STOPPED": "running",
    "COMPLETED": "done",
    "CANCELLED": "cancelled",
    "FAILED": "failed",
    "TIMEOUT": "failed",
    "NODE_FAIL": "failed",
    "OUT_OF_MEMORY": "failed",
    "BOOT_FAIL": "failed",
    "DEADLINE": "failed",
    "PREEMPTED": "failed",
    "SPECIAL_EXIT": "failed",
    "REVOKED": "failed",
}
FINAL = ("done", "failed", "cancelled")


class SlurmError(UserError):
    """SLURM refused or lost a job; the message is sbatch's/scontrol's reason on one line."""


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class SlurmResources:
    """What one stage kind asks SLURM for (time in minutes, memory in GB per node)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    time: int = 60
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int | None = None
    cpus_per_task: int = 4
    mem_gb: float | None = 16
    array_parallelism: int = 32
    setup: tuple[str, ...] = ()
    additional: Mapping[str, Any] = field(default_factory=dict)

    @property
    def tasks(self) -> int:
        """One task per GPU (torch.distributed ranks), one task without GPUs."""
        return self.tasks_per_node or max(1, self.gpus_per_node)


RESOURCE_KEYS = tuple(f.name for f in fields(SlurmResources))
_INT_MIN = {
    "time": 1,
    "nodes": 1,
    "gpus_per_node": 0,
    "tasks_per_node": 1,
    "cpus_per_task": 1,
    "array_parallelism": 1,
}
_STR_KEYS = ("partition", "account", "qos", "constraint")


@dataclass(frozen=True)
class SlurmConfig:
    """The ``executor: slurm`` group, resolved per stage kind."""

    resources: Mapping[str, SlurmResources]
    folder: str = ".vjepa/slurm"
    jobs: int = 64
    max_num_timeout: int = 20
    signal_delay_s: int = 120

    def for_kind(self, kind: str) -> SlurmResources:
        return self.resources.get(kind, self.resources["default"])


def _check_resource(where: str, key: str, value: Any) -> Any:
    """Validate one resource value; returns it normalised."""
    if key not in RESOURCE_KEYS:
        raise SpecError(f"{where}.{key}: unknown key (expected one of {', '.join(RESOURCE_KEYS)})")
    if key in _STR_KEYS:
        if value is not None and not isinstance(value, str):
            raise SpecError(f"{where}.{key}: expected a string or null, got {value!r}")
        return value
    if key in _INT_MIN:
        if value is None and key == "tasks_per_node":
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < _INT_MIN[key]:
            raise SpecError(f"{where}.{key}: expected an integer >= {_INT_MIN[key]}, got {value!r}")
        return value
    if key == "mem_gb":
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0
        ):
            raise SpecError(
                f"{where}.{key}: expected a positive number of GB or null, got {value!r}"
            )
        return value
    if key == "setup":
        if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
            raise SpecError(f"{where}.{key}: expected a list of shell lines")
        return tuple(value)
    if not isinstance(value, Mapping):  # additional
        raise SpecError(f"{where}.{key}: expected a mapping of sbatch options")
    return dict(value)


def parse_slurm_config(cfg: Mapping[str, Any] | None, where: str = "executor") -> SlurmConfig:
    """Validate the ``executor: slurm`` mapping; unknown keys and bad types stop with one line."""
    cfg = dict(cfg or {})
    for key in cfg:
        if key not in TOP_KEYS:
            raise SpecError(f"{where}.{key}: unknown key (expected one of {', '.join(TOP_KEYS)})")
    raw = cfg.get("resources") or {}
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}.resources: expected a mapping of stage kind -> resources")
    resolved: dict[str, SlurmResources] = {}
    default = SlurmResources()
    for kind in ("default", *KINDS):
        section = raw.get(kind) or {}
        if not isinstance(section, Mapping):
            raise SpecError(f"{where}.resources.{kind}: expected a mapping")
        base = default if kind != "default" else SlurmResources()
        values = {k: _check_resource(f"{where}.resources.{kind}", k, v) for k, v in section.items()}
        resolved[kind] = replace(base, **values)
        if kind == "default":
            default = resolved[kind]
    for kind in raw:
        if kind not in resolved:
            raise SpecError(
                f"{where}.resources.{kind}: unknown stage kind "
                f"(expected default or one of {', '.join(KINDS)})"
            )
    for key in ("max_num_timeout", "signal_delay_s"):
        value = cfg.get(key, getattr(SlurmConfig, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SpecError(f"{where}.{key}: expected an integer >= 0, got {value!r}")
    folder = cfg.get("folder")
    if folder is not None and not isinstance(folder, str):
        raise SpecError(f"{where}.folder: expected a path or null, got {folder!r}")
    return SlurmConfig(
        resources=resolved,
        folder=folder or SlurmConfig.folder,
        max_num_timeout=cfg.get("max_num_timeout", 20),
        signal_delay_s=cfg.get("signal_delay_s", 120),
    )


# ----------------------------------------------------------------------------- jobs and handles
@dataclass
class StageJob:
    """One stage to run: a command line or a picklable callable, plus per-job resource overrides."""

    name: str
    kind: str
    command: Sequence[str] | None = None
    fn: Callable[..., Any] | None = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    resources: Mapping[str, Any] = field(default_factory=dict)
    cwd: str | None = None  # for ``command``: where it runs, extra environment, its log file
    env: Mapping[str, str] = field(default_factory=dict)
    log: str | None = None


@dataclass(frozen=True)
class SlurmHandle:
    """A submitted stage: its name and SLURM job id (``123`` or ``123_4`` for an array task)."""

    name: str
    job_id: str

    @property
    def base_id(self) -> str:
        return self.job_id.split("_")[0]


@dataclass(frozen=True)
class JobStatus:
    """What ``status`` reports about one stage."""

    name: str
    job_id: str | None
    state: str  # pending | running | done | failed | cancelled | unknown
    slurm_state: str
    elapsed: str
    reason: str = ""


# ----------------------------------------------------------------------------- SLURM commands
def _slurm(args: Sequence[str], timeout: float = 30) -> str:
    """Run a SLURM client command; failures become one-line SlurmErrors."""
    try:
        out = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise SlurmError(f"{args[0]}: not found (is this a SLURM login node?)") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{' '.join(args[:2])}: no answer from SLURM in {timeout:.0f} s") from None
    if out.returncode != 0:
        raise SlurmError(f"{args[0]} failed: {one_line(out.stderr or out.stdout)}")
    return out.stdout


def one_line(text: str) -> str:
    """SLURM's reason on one line: its ``error:`` lines, deduplicated, else the last line."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    errors = [re.sub(r"^\w+: error: ", "", ln) for ln in lines if "error:" in ln]
    picked = list(dict.fromkeys(errors)) or lines[-1:]
    return "; ".join(picked) or "no reason given"


def _user() -> str:
    return os.environ.get("USER") or getpass.getuser()


def query_jobs(job_ids: Iterable[str]) -> dict[str, tuple[str, str, str]]:
    """``job id -> (SLURM state, elapsed, reason)`` from squeue, then sacct for finished jobs."""
    wanted = {str(j) for j in job_ids if j}
    if not wanted:
        return {}
    found: dict[str, tuple[str, str, str]] = {}
    # -t all: squeue also lists jobs that ended in the last MinJobAge seconds (sacct may lag)
    squeue = ["squeue", "-h", "-r", "-t", "all", "-u", _user(), "-o", "%i|%T|%M|%r"]
    for line in _slurm(squeue).splitlines():
        jid, state, elapsed, reason = (line.split("|") + ["", "", ""])[:4]
        if jid in wanted:
            found[jid] = (state, elapsed, "" if reason == "None" else reason)
    missing = sorted(wanted - found.keys())
    if missing:
        out = _slurm(
            [
                "sacct",
                "-n",
                "-X",
                "-P",
                "-j",
                ",".join(missing),
                "--format=JobID,State,Elapsed,Reason",
            ]
        )
        for line in out.splitlines():
            jid, state, elapsed, reason = (line.split("|") + ["", "", ""])[:4]
            if jid in wanted and jid not in found:
                found[jid] = (
                    state.split()[0] if state else "UNKNOWN",
                    elapsed,
                    "" if reason == "None" else reason,
                )
    return found


def elapsed_seconds(text: str) -> float | None:
    """SLURM's ``[D-][HH:]MM:SS`` as seconds (None when empty or unreadable)."""
    days, _, clock = text.strip().rpartition("-")
    try:
        parts = [int(p) for p in clock.split(":")]
        seconds = sum(v * 60**i for i, v in enumerate(reversed(parts)))
        return seconds + 86400 * int(days or 0)
    except ValueError:
        return None


def job_attempts(job_ids: Iterable[str]) -> dict[str, tuple[int, float]]:
    """``job id -> (restarts, elapsed seconds summed over attempts)`` from ``sacct -D``."""
    wanted = sorted({str(j) for j in job_ids if j})
    if not wanted:
        return {}
    out = _slurm(
        ["sacct", "-n", "-X", "-P", "-D", "-j", ",".join(wanted), "--format=JobID,Elapsed"]
    )
    seen: dict[str, list[float]] = {}
    for line in out.splitlines():
        jid, _, elapsed = line.partition("|")
        if jid in wanted:
            seen.setdefault(jid, []).append(elapsed_seconds(elapsed) or 0.0)
    return {jid: (len(times) - 1, sum(times)) for jid, times in seen.items()}


def jobs_named(prefix: str) -> dict[str, str]:
    """``job id -> job name`` of this user's jobs whose name starts with ``prefix`` (any state)."""
    found: dict[str, str] = {}
    for line in _slurm(["squeue", "-h", "-u", _user(), "-o", "%F|%j|%T"]).splitlines():
        jid, name, _ = (line.split("|") + ["", ""])[:3]
        if name.startswith(prefix):
            found[jid] = name
    out = _slurm(
        ["sacct", "-n", "-X", "-P", "-u", _user(), "-S", "now-14days", "--format=JobID,JobName"]
    )
    for line in out.splitlines():
        jid, name = (line.split("|") + [""])[:2]
        if name.startswith(prefix):
            found.setdefault(jid.split("_")[0], name)
    return found


def cancel_jobs(job_ids: Iterable[str]) -> None:
    ids = sorted({str(j) for j in job_ids if j})
    if ids:
        _slurm(["scancel", *ids])


# ----------------------------------------------------------------------------- journal
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


# ----------------------------------------------------------------------------- the executor
class SlurmExecutor:
    """Submit stages (or arrays of them) to SLURM, poll, cancel, tail logs, re-attach."""

    def __init__(
        self,
        config: SlurmConfig | Mapping[str, Any],
        spec: str,
        root: str | os.PathLike[str] | None = None,
        reconcile: bool = True,
    ) -> None:
        self.config = config if isinstance(config, SlurmConfig) else parse_slurm_config(config)
        self.root = Path(root or Path.cwd()).resolve()
        self.folder = (self.root / self.config.folder / spec).resolve()
        self.journal = Journal(self.folder / "journal.json")
        self.run_id = self.journal.run_id
        if reconcile:
            self.reconcile()

    # -- naming ------------------------------------------------------------------------------
    def job_name(self, stage: str) -> str:
        return f"vx-{self.run_id}-{stage}"

    def handles(self) -> dict[str, SlurmHandle]:
        """The journal's submitted stages as handles (what a new process re-attaches to)."""
        return {
            name: SlurmHandle(name, e["job_id"])
            for name, e in self.journal.entries().items()
            if e.get("job_id")
        }

    # -- submission --------------------------------------------------------------------------
    def resources(self, kind: str, overrides: Mapping[str, Any], name: str) -> SlurmResources:
        """What job ``name`` of ``kind`` asks for: the kind's resources, then its own overrides."""
        res = self.config.for_kind(kind)
        if overrides:
            res = replace(
                res,
                **{k: _check_resource(f"job {name} resources", k, v) for k, v in overrides.items()},
            )
        return res

    def check_fits(self, jobs: Sequence[StageJob]) -> None:
        """A ``SlurmError`` naming the stage, the key and the limit when a job asks more than its
        partition can ever give (checked before any sbatch, so nothing is submitted)."""
        from vjepa.pipeline.executors.slurm_limits import misfit, read_partitions

        if not jobs:
            return
        parts = read_partitions(_slurm)
        for job in jobs:
            res = self.resources(job.kind, job.resources, job.name)
            request = {**asdict(res), "tasks": res.tasks}
            why = misfit(f"executor.resources.{job.kind}", job.name, request, parts)
            if why:
                raise SlurmError(f"{why} (nothing was submitted)")

    def _executor(
        self, kind: str, overrides: Mapping[str, Any], name: str, after: Sequence[SlurmHandle]
    ) -> Any:
        import submitit

        res = self.resources(kind, overrides, name)
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

    @staticmethod
    def _callable(job: StageJob) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        if job.fn is not None:
            return job.fn, tuple(job.args), dict(job.kwargs)
        if job.command:
            from vjepa.pipeline.slurm_jobs import CheckpointableCommand

            return CheckpointableCommand(list(job.command), job.cwd, job.env, job.log), (), {}
        raise UserError(f"stage {job.name}: a SLURM job needs a command or a callable")

    def submit(self, job: StageJob, after: Sequence[SlurmHandle] = ()) -> SlurmHandle:
        """Submit one stage, to start after ``after`` succeeded."""
        return self._submit([job], after, array=False)[0]

    def submit_array(
        self, jobs: Sequence[StageJob], after: Sequence[SlurmHandle] = ()
    ) -> list[SlurmHandle]:
        """Submit same-kind stages (probe trials, label splits) as one job array."""
        if not jobs:
            return []
        if len({j.kind for j in jobs}) != 1:
            raise UserError("a SLURM job array needs stages of one kind")
        return self._submit(list(jobs), after, array=True)

    def _submit(
        self, jobs: list[StageJob], after: Sequence[SlurmHandle], array: bool
    ) -> list[SlurmHandle]:
        import submitit

        names = [j.name for j in jobs]
        group = names[0] if not array else f"array-{names[0]}"
        ex = self._executor(jobs[0].kind, jobs[0].resources, group if array else names[0], after)
        with self.journal.locked() as data:  # 1. intent, before sbatch
            for j in jobs:
                data["jobs"][j.name] = {
                    "status": "submitting",
                    "kind": j.kind,
                    "job_id": None,
                    "job_name": self.job_name(group if array else j.name),
                    "after": [h.name for h in after],
                    "attempt": data["jobs"].get(j.name, {}).get("attempt", 0) + 1,
                    "submitted_at": time.time(),
                }
        try:
            calls = [self._callable(j) for j in jobs]
            # submitit also prints a refused sbatch's stderr: the error below is its one line
            with contextlib.redirect_stderr(io.StringIO()):
                sjobs = self._sbatch(ex, calls, array)
        except (submitit.core.utils.FailedJobError, subprocess.CalledProcessError) as exc:
            self._forget(names)
            what = names[0] + (f" (and the {len(names) - 1} other stages of its array)" * array)
            raise SlurmError(f"sbatch refused {what}: {one_line(str(exc))}") from None
        # Any other exit (KeyboardInterrupt, a crash) keeps the 'submitting' marks for reconcile().
        handles = [SlurmHandle(n, sj.job_id) for n, sj in zip(names, sjobs, strict=True)]
        with self.journal.locked() as data:  # 2. the ids
            for h in handles:
                data["jobs"][h.name].update(job_id=h.job_id, status="submitted")
        return handles

    @staticmethod
    def _sbatch(ex: Any, calls: list[tuple[Callable[..., Any], tuple, dict]], array: bool) -> list:
        if not array:
            fn, a, kw = calls[0]
            return [ex.submit(fn, *a, **kw)]
        with ex.batch():
            return [ex.submit(fn, *a, **kw) for fn, a, kw in calls]

    def _forget(self, names: Iterable[str]) -> None:
        with self.journal.locked() as data:
            for n in names:
                data["jobs"].pop(n, None)

    # -- re-attach ---------------------------------------------------------------------------
    def reconcile(self) -> dict[str, list[str]]:
        """Adopt jobs whose submission was interrupted; cancel this run's jobs nobody tracks."""
        prefix = f"vx-{self.run_id}-"
        live = jobs_named(prefix)
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
        active = query_jobs(orphans)
        to_cancel = [j for j, (s, _, _) in active.items() if STATE_MAP.get(s) not in FINAL]
        cancel_jobs(to_cancel)
        return {"adopted": adopted, "cancelled": to_cancel}

    def status(self) -> list[JobStatus]:
        """State, elapsed time and pending reason of every stage in the journal."""
        entries = self.journal.entries()
        info = query_jobs(e["job_id"] for e in entries.values() if e.get("job_id"))
        rows = []
        for name, e in sorted(entries.items()):
            jid = e.get("job_id")
            slurm_state, elapsed, reason = info.get(jid or "", ("UNKNOWN", "", ""))
            if jid is None:
                slurm_state = "SUBMITTING"
            rows.append(
                JobStatus(
                    name, jid, STATE_MAP.get(slurm_state, "unknown"), slurm_state, elapsed, reason
                )
            )
        return rows

    # -- poll / cancel / logs ----------------------------------------------------------------
    def poll(self, handle: SlurmHandle) -> str:
        """pending | running | done | failed | cancelled | unknown."""
        return self.poll_many([handle])[handle.name]

    def poll_many(self, handles: Sequence[SlurmHandle]) -> dict[str, str]:
        info = query_jobs(h.job_id for h in handles)
        return {
            h.name: STATE_MAP.get(info.get(h.job_id, ("UNKNOWN",))[0], "unknown") for h in handles
        }

    def wait(
        self,
        handles: Sequence[SlurmHandle],
        timeout_s: float | None = None,
        interval_s: float = 2.0,
    ) -> dict[str, str]:
        """Poll until every handle is final (or the timeout passes); returns the last states."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            states = self.poll_many(handles)
            if all(s in FINAL for s in states.values()):
                return states
            if deadline is not None and time.monotonic() > deadline:
                return states
            time.sleep(interval_s)

    def cancel(self, handle: SlurmHandle) -> None:
        cancel_jobs([handle.job_id])

    def cancel_all(self) -> list[str]:
        """Cancel every unfinished job of this run."""
        rows = [r for r in self.status() if r.job_id and r.state not in FINAL]
        cancel_jobs(r.job_id for r in rows if r.job_id)
        return [r.name for r in rows]

    def result(self, handle: SlurmHandle, tasks: int = 1) -> Any:
        """The callable's return value (a list over tasks if ``tasks`` > 1); raises if it failed."""
        import submitit

        job = submitit.SlurmJob(
            folder=self.folder / "%j", job_id=handle.job_id, tasks=list(range(tasks))
        )
        return job.results() if tasks > 1 else job.result()

    def log_paths(self, handle: SlurmHandle) -> tuple[Path, Path]:
        """submitit's stdout/stderr files of the job's first task."""
        from submitit.core.utils import JobPaths

        paths = JobPaths(self.folder / "%j", job_id=handle.job_id, task_id=0)
        return paths.stdout, paths.stderr

    def log_tail(self, handle: SlurmHandle, n: int = 20) -> str:
        """Last ``n`` lines of the job's stdout then stderr (tracebacks land in stderr)."""
        parts = []
        for path in self.log_paths(handle):
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-n:]
                if lines:
                    parts.append(f"==> {path.name} <==\n" + "\n".join(lines))
        return "\n".join(parts)

    # -- retry -------------------------------------------------------------------------------
    def retry_failed(
        self, jobs: Sequence[StageJob], deps: Mapping[str, Sequence[str]] | None = None
    ) -> list[SlurmHandle]:
        """Resubmit the stages among ``jobs`` (in dependency order) that failed or were cancelled.

        Stages still pending, running or done are left alone; a resubmitted stage waits for those
        of its ``deps`` that are not done yet.
        """
        deps = deps or {}
        states = {r.name: r.state for r in self.status()}
        current = self.handles()
        redo = {
            j.name
            for j in jobs
            if states.get(j.name, "failed") in ("failed", "cancelled", "unknown")
        }
        out: list[SlurmHandle] = []
        for job in jobs:
            if job.name not in redo:
                continue
            after = [
                current[d]
                for d in deps.get(job.name, ())
                if d in current and (d in redo or states.get(d) != "done")
            ]
            handle = self.submit(job, after=after)
            current[job.name] = handle
            out.append(handle)
        return out
