"""Bodies of SLURM jobs (submitit callables): a checkpointable stage runner and a sweep worker.

Preemption and timeouts reach a job as SIGUSR2 (``--signal=USR2@<delay>`` or
``scancel --signal=USR2``). submitit's handler calls ``checkpoint()``, requeues the job with
``scontrol requeue`` and exits. The pretrain stage goes one step further: it catches the signal
itself (``vjepa.utils.signals.stop_on_signals``), lets every rank agree on a step, saves
``ckpt/latest.pt`` and raises ``PretrainInterrupted``; :class:`StageRunner` then hands over to
submitit's handler, so the requeued run resumes from exactly that step.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import submitit

REQUEUE_SIGNAL = signal.SIGUSR2


def job_still_running() -> bool:
    """True while SLURM still counts this job as RUNNING (so not cancelled nor being requeued)."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return False
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "RUNNING"


def requeue_now(handler: Any) -> None:
    """Run submitit's USR2 handler: rank 0 checkpoints, requeues and exits; others wait to die."""
    if callable(handler):
        handler(REQUEUE_SIGNAL, None)  # rank 0 does not come back (sys.exit)
    time.sleep(60)  # other ranks: the requeue kills the whole job step
    sys.exit(-1)


class StageRunner(submitit.helpers.Checkpointable):
    """Run ``vjepa.stages.run_stage(kind, config, out, uid)`` as a requeueable SLURM job.

    ``checkpoint()`` (inherited) resubmits the same call: stages resume from their own state
    (``out/ckpt/latest.pt`` for pretraining), so nothing else needs to be carried over.
    """

    def __init__(
        self,
        kind: str,
        config: Mapping[str, Any],
        out: str,
        uid: str | None = None,
        fn: Callable[..., Any] | None = None,
    ) -> None:
        self.kind, self.config, self.out, self.uid = kind, dict(config), str(out), uid
        self.fn = fn  # tests substitute a small stage body with the same contract

    def __call__(self) -> Any:
        from vjepa.errors import StageInterrupted

        submitit_handler = signal.getsignal(REQUEUE_SIGNAL)
        try:
            return self._run()
        except StageInterrupted:
            # The stage saved its resume state. A cancelled job stays cancelled; a preempted or
            # timed-out one is requeued through submitit (which also counts timeouts).
            if job_still_running():
                requeue_now(submitit_handler)
            raise

    def _run(self) -> Any:
        if self.fn is not None:
            return self.fn(self.kind, self.config, self.out, self.uid)
        from vjepa.stages import run_stage

        return run_stage(self.kind, self.config, self.out, self.uid)


class CheckpointableCommand(submitit.helpers.Checkpointable):
    """Run a stage command (``vjepa-exp exec <stage>``) so that preemption saves and requeues.

    submitit's own USR2 handler would requeue at once and the requeue would kill the child while
    it saves. Instead the signal is forwarded to the child (the pretrain stage saves its resume
    state and exits), and the job is requeued through submitit only after the child has exited.
    """

    def __init__(
        self,
        command: list[str],
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        log: str | None = None,
    ) -> None:
        self.command, self.cwd = list(command), cwd
        self.env, self.log = dict(env or {}), log  # log: the stage's own log, as a local run has

    def __call__(self) -> int:
        submitit_handler = signal.getsignal(REQUEUE_SIGNAL)
        preempted = False
        child = self._start()

        def forward(signum: int, _frame: Any) -> None:
            nonlocal preempted
            preempted = True
            if child.poll() is None:
                child.send_signal(signum)

        signal.signal(REQUEUE_SIGNAL, forward)
        code = child.wait()
        signal.signal(REQUEUE_SIGNAL, submitit_handler)
        if preempted and code != 0 and job_still_running():
            requeue_now(submitit_handler)
        if code != 0:
            raise RuntimeError(f"{' '.join(self.command)} exited with code {code}")
        return code

    def _start(self) -> subprocess.Popen:
        """Start the command; its output goes to ``log`` (appended: a requeued run adds to it)."""
        env = {**os.environ, **self.env}
        if not self.log:
            return subprocess.Popen(self.command, cwd=self.cwd, env=env)
        os.makedirs(os.path.dirname(self.log) or ".", exist_ok=True)
        with open(self.log, "ab") as fh:
            fh.write(
                f"$ {' '.join(self.command)}  # SLURM job {os.environ.get('SLURM_JOB_ID', '?')}\n".encode()
            )
            fh.flush()
            return subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )


class WorkerStopped(Exception):
    """SLURM is ending this worker (scancel / time limit): fail its trial now, not after a timeout."""


def _raise_stopped(signum: int, _frame: Any) -> None:
    raise WorkerStopped(f"worker received {signal.Signals(signum).name}")


class SweepWorker(submitit.helpers.Checkpointable):
    """One worker of a sweep job array: ``vjepa.eval.sweep.run_worker`` on a shared study.

    Workers share the study through a journal file on the shared filesystem or an RDB URL; the
    global trial cap and stale-trial reaping live in ``run_worker``. SIGTERM (scancel, the end of
    the time limit) is turned into an exception inside the running trial, so the trial is marked
    FAIL at once instead of staying RUNNING until another worker reaps it. On preemption (USR2)
    the worker is requeued and rejoins the study.
    """

    def __init__(
        self, config: Mapping[str, Any], study_dir: str, fn: Callable[..., Any] | None = None
    ) -> None:
        self.config, self.study_dir, self.fn = dict(config), str(study_dir), fn

    def __call__(self) -> Any:
        previous = signal.signal(signal.SIGTERM, _raise_stopped)
        env = submitit.JobEnvironment()
        index = int(os.environ.get("SLURM_ARRAY_TASK_ID", env.global_rank))
        try:
            if self.fn is not None:
                return self.fn(self.config, self.study_dir, index)
            if self.config.get("stream") is not None:
                from vjepa.eval.stream_sweep import run_stream_worker

                return run_stream_worker(self.config, self.study_dir, index)
            from vjepa.eval.sweep import run_worker

            return run_worker(self.config, self.study_dir, index)
        finally:
            signal.signal(signal.SIGTERM, previous)


def sweep_jobs(name: str, config: Mapping[str, Any], study_dir: str, workers: int) -> list[Any]:
    """StageJobs for a sweep array; creates the study first, in the submitting process.

    Why first: N workers that start together on a fresh database all try to create Optuna's
    schema and study at once, and all but one fail on PostgreSQL's unique constraints.
    """
    from vjepa.eval.sweep import load_study, without_eval
    from vjepa.pipeline.executors.slurm import StageJob

    config = without_eval(config)  # the study name the workers derive from what they may see
    load_study(config, study_dir)
    kind = "stream" if config.get("stream") is not None else "probe"
    return [
        StageJob(f"{name}-w{i}", kind, fn=SweepWorker(config, study_dir)) for i in range(workers)
    ]


def distributed_env() -> dict[str, Any]:
    """Rank layout of this task as submitit/SLURM see it (what torch.distributed will use)."""
    env = submitit.JobEnvironment()
    return {
        "rank": env.global_rank,
        "world_size": env.num_tasks,
        "local_rank": env.local_rank,
        "node": env.node,
        "num_nodes": env.num_nodes,
        "master": env.hostnames[0],
    }
