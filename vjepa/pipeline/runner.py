"""``vjepa-exp run``: compile, ask DVC what is stale, run it through an executor, commit what finished.

Completion rule: a stage folder is finished when it holds ``metrics.json`` (written last by
``run_stage``). ``vjepa-exp exec`` clears an unfinished folder before it starts (a persist folder
without metrics.json is kept: it holds the checkpoint to resume from), and the runner removes the
half outputs of stages it stops, so an interrupted run never leaves one that looks complete.
SIGTERM is handled like Ctrl-C: a runner started in the background (``nohup``, a script, CI)
ignores SIGINT, so ``kill`` and ``vjepa-exp cancel`` must be able to stop it the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vjepa.errors import UserError
from vjepa.pipeline import dvcio, placement, status
from vjepa.pipeline.compiler import Compiled, compile_spec
from vjepa.pipeline.executors.base import Executor, JobHandle, JobState, StageJob, make_executor
from vjepa.pipeline.graph import Stage, descendants, metrics_path, out_dir, parse_name
from vjepa.pipeline.runs import record_run
from vjepa.pipeline.status import remove_half_output
from vjepa.utils.secrets import mask


@dataclass
class RunOptions:
    spec: Path
    overrides: list[str] = field(default_factory=list)
    jobs: int | None = None
    dry_run: bool = False
    force: list[str] = field(default_factory=list)
    force_all: bool = False
    keep_going: bool = False
    check_paths: bool = True
    detach: bool = False  # SLURM: submit the whole DAG and return; `vjepa-exp status` follows it
    retry_failed: bool = False  # SLURM: resubmit only the stages whose last job failed


@dataclass
class RunResult:
    compiled: Compiled
    ran: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    interrupted: bool = False
    stop_signal: int = 0  # the signal that interrupted the run (SIGINT or SIGTERM), else 0
    submitted: dict[str, str] = field(default_factory=dict)  # stage -> job id, when detached

    @property
    def ok(self) -> bool:
        return not (self.failed or self.cancelled or self.interrupted)


def publish(root: Path, compiled: list[Compiled], prune: bool = False) -> tuple[bool, list[str]]:
    """Write dvc.yaml + params.yaml for ``compiled`` (all checks done first); (changed, pruned)."""
    dvc_text, params_text, pruned = dvcio.render(root, compiled, prune)  # checks the names first
    dvcio.ensure_dvcignore(root)
    changed = dvcio.write_if_changed(root / "params.yaml", params_text)
    changed = dvcio.write_if_changed(root / "dvc.yaml", dvc_text) or changed
    placement.write(root, {n: p for c in compiled for n, p in c.placement.items()}, pruned)
    return changed, pruned


@contextlib.contextmanager
def run_lock(root: Path) -> Iterator[None]:
    """One runner per project at a time."""
    path = root / ".vjepa" / "run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise UserError(
                f"another vjepa-exp run is active in this project (pid {fh.read().strip() or '?'})"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()


def plan(
    root: Path,
    compiled: Compiled,
    force: list[str],
    force_all: bool,
    known: set[str] | None = None,
) -> list[Stage]:
    """The stages to run: DVC's stale ones, forced ones, and everything downstream of them.

    ``known``: the stages dvc.yaml holds, when it may not hold them all (a dry run writes
    nothing); DVC is asked about those, and the others are new, so they run.
    """
    stages = compiled.stages
    names = {s.name for s in stages}
    for name in force:
        if name not in names:
            from vjepa.pipeline.schema import suggest

            raise UserError(
                f"--force: no stage {name!r} in {compiled.spec.name}{suggest(name, names)}"
            )
    asked = names if known is None else names & known
    roots = names if force_all else dvcio.stale(root, asked) | (names - asked) | set(force)
    todo = descendants(stages, roots)
    return [s for s in stages if s.name in todo]


def stage_job(root: Path, stage: Stage, resources: dict[str, Any]) -> StageJob:
    return StageJob(
        stage=stage.name,
        kind=stage.kind,
        cmd=(sys.executable, "-m", "cli.main", "exec", stage.name),
        cwd=str(root),
        log=str(status.log_path(root, stage.name)),
        resources=dict(resources.get(stage.kind) or {}),
        env={"DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"},
    )


class NullView:
    """A view that shows nothing (programmatic runs); the CLI passes a rich one."""

    def warn(self, message: str) -> None: ...
    def start(self, runner: Runner) -> None: ...
    def update(self, runner: Runner) -> None: ...
    def stop(self) -> None: ...
    def event(self, name: str, what: str, seconds: float | None) -> None: ...
    def failure(self, name: str, reason: str, log_tail: str, log: str) -> None: ...


class Runner:
    """Submits the planned stages to an executor, tracks them, commits what finishes."""

    def __init__(
        self,
        root: Path,
        compiled: Compiled,
        todo: list[Stage],
        executor: Executor,
        keep_going: bool,
        view: Any,
    ) -> None:
        self.root, self.compiled, self.todo, self.executor = root, compiled, todo, executor
        self.keep_going, self.view = keep_going, view
        self.handles: dict[str, JobHandle] = {}
        self.states: dict[str, JobState] = {}
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}  # when each stage finished, as this runner saw it
        self.result = RunResult(compiled, planned=[s.name for s in todo])

    def _job(self, stage: Stage) -> StageJob:
        return stage_job(self.root, stage, self.compiled.executor.get("resources") or {})

    def _track(self, handle: JobHandle) -> None:
        self.handles[handle.stage] = handle
        self.states[handle.stage] = JobState.PENDING
        status.write_state(
            self.root,
            handle.stage,
            state="pending",
            handle=handle.to_dict(),
            runner_pid=os.getpid(),
            started=None,
            ended=None,
            reason="",
            note="",
            log_tail="",
        )

    def submit(self) -> None:
        """Every job or none: each is checked against what the executor can ever run first, and
        if one submission is refused, the jobs this run had already submitted are cancelled."""
        self.executor.check([self._job(s) for s in self.todo])
        submitted: list[JobHandle] = []
        try:
            for batch in self._batches():
                first = batch[0]
                after = [self.handles[i.name] for i in first.inputs if i.name in self.handles]
                for stage in batch:
                    status.log_path(self.root, stage.name).unlink(missing_ok=True)
                jobs = [self._job(s) for s in batch]
                if len(batch) == 1:
                    handles = [self.executor.submit(jobs[0], after)]
                else:
                    handles = self.executor.submit_array(jobs, after)
                for handle in handles:
                    submitted.append(handle)
                    self._track(handle)
        except UserError as exc:
            if not submitted:
                raise
            for handle in submitted:
                self.executor.cancel(handle)
                status.write_state(
                    self.root,
                    handle.stage,
                    state="cancelled",
                    ended=time.time(),
                    reason="another stage of the run was refused",
                )
            ids = ", ".join(h.job_id for h in submitted)
            raise UserError(
                f"{exc}; cancelled the {len(submitted)} jobs this run had submitted ({ids})"
            ) from None

    def _batches(self) -> list[list[Stage]]:
        """The planned stages in submission order; on an executor with job arrays, the stages of
        one kind that wait for the same stages of this run go together (one array: they become
        ready at the same moment and ask for the same resources)."""
        if not self.executor.arrays:
            return [[s] for s in self.todo]
        planned = {s.name for s in self.todo}
        groups: dict[tuple[str, tuple[str, ...]], list[Stage]] = {}
        for stage in self.todo:
            waits_for = tuple(sorted(i.name for i in stage.inputs if i.name in planned))
            groups.setdefault((stage.kind, waits_for), []).append(stage)
        return list(groups.values())  # dicts keep the order of each group's first stage

    def retry_failed(self, in_flight: dict[str, JobHandle]) -> None:
        """SLURM: resubmit the failed/cancelled stages of ``todo``; follow those still in flight."""
        todo = [s for s in self.todo if s.name not in in_flight]
        for stage in todo:
            status.log_path(self.root, stage.name).unlink(missing_ok=True)
        deps = {s.name: [i.name for i in s.inputs] for s in self.todo}
        for handle in self.executor.retry_failed([self._job(s) for s in todo], deps):
            self._track(handle)
        for name, handle in in_flight.items():
            self.handles[name], self.states[name] = handle, JobState.PENDING
            status.write_state(self.root, name, runner_pid=os.getpid())
        self.result.planned = list(self.handles)

    def detach(self) -> None:
        """Leave the submitted jobs to SLURM; `vjepa-exp status` records them later."""
        for name, handle in self.handles.items():
            status.write_state(self.root, name, runner_pid=None)
            self.result.submitted[name] = handle.job_id

    def loop(self) -> None:
        while any(not s.finished for s in self.states.values()):
            self.executor.wait(list(self.handles.values()), timeout=0.5)
            done = []
            for name, handle in self.handles.items():
                old = self.states[name]
                if old.finished:
                    continue
                st = self.executor.poll(handle)
                if st.state == old:
                    continue
                self.states[name] = st.state
                if st.started and name not in self.started:  # finished before we saw it run
                    self.started[name] = st.started
                if st.state == JobState.RUNNING:
                    self.started[name] = st.started or time.time()
                    status.write_state(self.root, name, state="running", started=self.started[name])
                elif st.state == JobState.DONE:
                    done.append(name)
                elif st.state.finished:
                    self._failed(name, st.state, st.reason)
            if done:
                dvcio.commit(self.root, done)
                for name in done:
                    self.result.ran.append(name)
                    self.ended[name] = time.time()
                    status.write_state(self.root, name, state="done", ended=self.ended[name])
                    self.view.event(name, "done", time.time() - self.started.get(name, time.time()))
            self.view.update(self)

    def _failed(self, name: str, state: JobState, reason: str) -> None:
        stage = self.compiled.graph.stages[name]
        remove_half_output(self.root, name, stage.persist)
        log_tail = (
            self.executor.log_tail(self.handles[name], 20) if state == JobState.FAILED else ""
        )
        log_tail = mask(log_tail)  # shown and kept in the job journal: no URL password
        self.ended[name] = time.time()
        status.write_state(
            self.root,
            name,
            state=state.value,
            started=self.started.get(name),
            ended=self.ended[name],
            reason=reason,
            log_tail=log_tail,
        )
        if state == JobState.FAILED:
            self.result.failed.append(name)
            self.view.failure(name, reason, log_tail, str(status.log_path(self.root, name)))
            if not self.keep_going:
                for other, handle in self.handles.items():
                    if self.states[other] == JobState.PENDING:
                        self.executor.cancel(handle)
        else:
            self.result.cancelled.append(name)
            self.view.event(
                name, "cancelled" + (f" ({reason})" if reason != "cancelled" else ""), None
            )
            # SLURM runs a job whose afterok input it has dropped (a pending array element that
            # was cancelled): stop the stages that wait for this one ourselves
            for other in descendants(self.compiled.stages, {name}) - {name}:
                if other in self.handles and self.states[other] == JobState.PENDING:
                    self.executor.cancel(self.handles[other])

    def interrupt(self) -> None:
        """Ctrl-C or SIGTERM: stop every job, remove half outputs, record the states."""
        self.executor.cancel_all(list(self.handles.values()))
        for name, state in self.states.items():
            if not state.finished:
                remove_half_output(self.root, name, self.compiled.graph.stages[name].persist)
                self.ended[name] = time.time()
                status.write_state(
                    self.root, name, state="cancelled", ended=self.ended[name], reason="interrupted"
                )
                self.result.cancelled.append(name)
        self.result.interrupted = True


def run(root: Path, opts: RunOptions, view: Any) -> RunResult:
    """Compile ``opts.spec``, run its stale stages, return what happened."""
    compiled = compile_spec(opts.spec, opts.overrides, root, check_paths=opts.check_paths)
    check_options(compiled, opts)
    for warning in compiled.warnings:
        view.warn(warning)
    if opts.dry_run:
        todo = plan(root, compiled, opts.force, opts.force_all, known=set(dvcio.read_stages(root)))
        return RunResult(compiled, planned=[s.name for s in todo])
    publish(root, [compiled])
    with run_lock(root):
        from vjepa.pipeline import attach

        attach.sync(root, compiled)  # record detached SLURM jobs that ended since the last look
        in_flight = attach.unfollowed(root, [s.name for s in compiled.stages])
        if in_flight and not opts.retry_failed:
            raise UserError(
                f"{compiled.spec.name}: {len(in_flight)} stages are still queued or running on SLURM; "
                f"follow them with `vjepa-exp status {opts.spec}`, stop them with "
                f"`vjepa-exp cancel {opts.spec}`, or resubmit the failed ones with --retry-failed"
            )
        # what `status`, `cancel` and `results` of the spec alone act on from now on
        record_run(
            root,
            opts.spec,
            opts.overrides,
            compiled.executor.get("kind", "local"),
            [s.name for s in compiled.stages],
        )
        todo = plan(root, compiled, opts.force, opts.force_all)
        todo = [s for s in todo if s.name not in in_flight] + [
            s for s in compiled.stages if s.name in in_flight
        ]
        if not todo:
            return RunResult(compiled)
        result = _execute(root, compiled, todo, opts, view, in_flight)
        if result.ok and not result.submitted:
            # DVC's own check of the finished spec: it records the verdict the next no-op reuses
            # (vjepa.pipeline.uptodate), so that one does not pay DVC's seconds
            dvcio.stale(root, [s.name for s in compiled.stages])
        return result


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwind exactly like Ctrl-C."""


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into ``Terminated`` while the runner follows its jobs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_options(compiled: Compiled, opts: RunOptions) -> None:
    """--detach and --retry-failed only make sense for jobs that outlive the runner (SLURM)."""
    if compiled.executor.get("kind") == "slurm":
        return
    for flag, on in (("--detach", opts.detach), ("--retry-failed", opts.retry_failed)):
        if on:
            raise UserError(f"{flag}: needs executor=slurm (local stages stop with the runner)")


def _execute(
    root: Path,
    compiled: Compiled,
    todo: list[Stage],
    opts: RunOptions,
    view: Any,
    in_flight: dict[str, JobHandle],
) -> RunResult:
    """Submit ``todo``, then detach or follow the jobs to the end (the caller holds the run lock)."""
    executor = make_executor(compiled.executor, root, opts.jobs, compiled.spec.name)
    runner = Runner(root, compiled, todo, executor, opts.keep_going, view)
    try:
        with _sigterm_interrupts():
            if opts.retry_failed:
                runner.retry_failed(in_flight)
            else:
                runner.submit()
            if opts.detach:
                runner.detach()
                return runner.result
            view.start(runner)
            runner.loop()
    except KeyboardInterrupt as exc:
        runner.interrupt()
        runner.result.stop_signal = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
    finally:
        view.stop()
        executor.close()
    return runner.result


def exec_stage(root: Path, name: str) -> dict[str, Any]:
    """``vjepa-exp exec``: run stage ``name`` from its params.yaml section; publish its metrics copy."""
    from vjepa.stages import run_stage
    from vjepa.utils.io import atomic_write_json

    try:
        kind, _, uid = parse_name(name)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    params = dvcio.read_params(root)
    if name not in params:
        raise UserError(f"params.yaml has no section {name!r}: compile the spec first")
    config = params[name]
    entry = dvcio.read_stages(root).get(name, {})
    persist = any(
        isinstance(o, dict) and any(v.get("persist") for v in o.values())
        for o in entry.get("outs", [])
    )
    for dep in entry.get("deps", []):  # a stage never starts on an input that did not finish
        if dep.startswith("runs/") and dep.count("/") == 2:
            if not (root / dep / "metrics.json").is_file():
                raise UserError(f"stage {name}: its input {dep} has not finished (no metrics.json)")
    out = root / out_dir(name)
    if out.exists() and (not persist or (out / "metrics.json").exists()):
        shutil.rmtree(out)  # unfinished, or finished by an older run of changed code
    (root / metrics_path(name)).unlink(missing_ok=True)
    # where and how it runs (sweep storage, workers): untracked, not in params.yaml nor the uid
    metrics = run_stage(kind, config, out, uid, placement=placement.for_stage(root, name))
    atomic_write_json(root / metrics_path(name), metrics)
    return metrics
