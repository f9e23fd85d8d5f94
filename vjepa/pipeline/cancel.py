"""``vjepa-exp cancel``: stop the live runners that follow a spec's stages.

A runner is sent SIGTERM, not SIGINT: one started in the background by a script or ``nohup``
inherits an ignored SIGINT, so a SIGINT-based cancel reported success and stopped nothing. The
runner handles SIGTERM like Ctrl-C (stops its stages, removes half outputs). Detached SLURM jobs,
which no runner follows, are scancelled by ``vjepa.pipeline.attach.cancel``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from vjepa.pipeline import status


def live_runners(root: Path, compiled: Any) -> list[int]:
    """The pids of the live runners following a pending or running stage of ``compiled``."""
    pids = set()
    for stage in compiled.stages:
        st = status.read_state(root, stage.name)
        if st.get("state") in ("running", "pending") and status.pid_alive(st.get("runner_pid")):
            pids.add(st["runner_pid"])
    return sorted(pids)


def interrupt_runners(root: Path, compiled: Any) -> list[int]:
    """SIGTERM every live runner of ``compiled``; the pids it was sent to."""
    pids = live_runners(root, compiled)
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    return pids
