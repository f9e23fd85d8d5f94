"""Executors: where stage jobs run (local subprocesses, SLURM)."""

from vjepa.pipeline.executors.base import (
    Executor,
    JobHandle,
    JobState,
    JobStatus,
    StageJob,
    make_executor,
)

__all__ = ["Executor", "JobHandle", "JobState", "JobStatus", "StageJob", "make_executor"]
