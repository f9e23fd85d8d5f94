"""The body of every SLURM job: a stage command (``vjepa-exp exec <stage>``) that saves and
requeues on preemption.

Preemption and timeouts reach a job as SIGUSR2 (``--signal=USR2@<delay>`` or
``scancel --signal=USR2``). submitit's handler would requeue at once (``scontrol requeue``) and
the requeue would kill the stage while it saves. :class:`CheckpointableCommand` forwards the
signal to the stage instead: pretraining and streamed probes catch it
(``vjepa.utils.signals.stop_on_signals``), save their resume state and exit; only then is the job
requeued through submitit, so the requeued run resumes from exactly that step.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
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
