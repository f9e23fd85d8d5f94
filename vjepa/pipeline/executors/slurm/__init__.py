"""The SLURM executor: configuration, SLURM's commands, the job journal, partition limits, the job
body, and the executor that puts them together (the runner sees only ``executors.base``)."""

from __future__ import annotations

from vjepa.pipeline.executors.slurm.commands import SlurmError
from vjepa.pipeline.executors.slurm.config import (
    RESOURCE_KEYS,
    SlurmConfig,
    SlurmResources,
    parse_slurm_config,
)
from vjepa.pipeline.executors.slurm.executor import SlurmExecutor

__all__ = [
    "RESOURCE_KEYS",
    "SlurmConfig",
    "SlurmError",
    "SlurmExecutor",
    "SlurmResources",
    "parse_slurm_config",
]
