"""The ``executor: slurm`` group: what each stage kind asks SLURM for, validated key by key.

Checked when a spec is compiled (before anything is written), so a bad resource is one line naming
``executor.resources.<kind>.<key>``, never an sbatch error halfway through a DAG.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from vjepa.errors import SpecError
from vjepa.stages import KINDS

TOP_KEYS = ("kind", "jobs", "folder", "max_num_timeout", "signal_delay_s", "resources")


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


def check_resource(where: str, key: str, value: Any) -> Any:
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
        values = {k: check_resource(f"{where}.resources.{kind}", k, v) for k, v in section.items()}
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
