"""SLURM's client commands (squeue, sacct, scancel) as small functions; a failure is one line.

Why squeue before sacct, and both: squeue knows pending and running jobs (and, with ``-t all``,
jobs that ended in the last MinJobAge seconds), sacct the finished ones; a job neither lists was
cancelled while pending (SLURM 22.05 keeps no record of such an array element).
"""

from __future__ import annotations

import getpass
import os
import re
import subprocess
from collections.abc import Iterable, Sequence

from vjepa.errors import UserError

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


def slurm(args: Sequence[str], timeout: float = 30) -> str:
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
    for line in slurm(squeue).splitlines():
        jid, state, elapsed, reason = (line.split("|") + ["", "", ""])[:4]
        if jid in wanted:
            found[jid] = (state, elapsed, "" if reason == "None" else reason)
    missing = sorted(wanted - found.keys())
    if missing:
        out = slurm(
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
    out = slurm(["sacct", "-n", "-X", "-P", "-D", "-j", ",".join(wanted), "--format=JobID,Elapsed"])
    seen: dict[str, list[float]] = {}
    for line in out.splitlines():
        jid, _, elapsed = line.partition("|")
        if jid in wanted:
            seen.setdefault(jid, []).append(elapsed_seconds(elapsed) or 0.0)
    return {jid: (len(times) - 1, sum(times)) for jid, times in seen.items()}


def jobs_named(prefix: str) -> dict[str, str]:
    """``job id -> job name`` of this user's jobs whose name starts with ``prefix`` (any state)."""
    found: dict[str, str] = {}
    for line in slurm(["squeue", "-h", "-u", _user(), "-o", "%F|%j|%T"]).splitlines():
        jid, name, _ = (line.split("|") + ["", ""])[:3]
        if name.startswith(prefix):
            found[jid] = name
    out = slurm(
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
        slurm(["scancel", *ids])
