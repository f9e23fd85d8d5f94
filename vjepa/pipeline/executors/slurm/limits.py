"""What a SLURM partition can ever give one job, and the check that a request fits it.

Why before the first sbatch: sbatch accepts a job that asks more CPUs or memory than any node of
its partition has, and it then pends forever (reason ``PartitionConfig``), while sbatch refuses a
GPU request on a partition without GPUs only when it reaches that stage, after the jobs before it
were submitted. Reading ``scontrol show partition`` and ``scontrol show node`` once lets a run
check every job first and submit nothing when one can never start.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_FIELD = re.compile(r"(\w+)=(\S*)")
_UNLIMITED = ("UNLIMITED", "INFINITE", "")


@dataclass(frozen=True)
class Partition:
    """A partition's ceilings for one job: the largest node's CPUs, memory and GPUs."""

    name: str
    default: bool
    nodes: int  # nodes a job may span (TotalNodes, capped by MaxNodes)
    cpus: int  # per node
    mem_mb: int  # per node
    gpus: int  # per node (gres gpu)
    max_time: int | None  # minutes; None: unlimited


def _fields(line: str) -> dict[str, str]:
    return dict(_FIELD.findall(line))


def minutes(text: str) -> int | None:
    """SLURM's ``[D-]HH:MM:SS`` / ``MM:SS`` / minutes as minutes; None for UNLIMITED."""
    text = text.strip()
    if text.upper() in _UNLIMITED:
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if len(parts) == 1:
        total = parts[0]
    else:
        parts = [0] * (3 - len(parts)) + parts
        total = parts[0] * 60 + parts[1] + (1 if parts[2] else 0)
    return total + 1440 * int(days or 0)


def gres_gpus(gres: str) -> int:
    """GPUs in a node's ``Gres`` (``gpu:4``, ``gpu:a100:8(S:0-1)``, ``(null)``)."""
    total = 0
    for item in gres.split(","):
        item = item.split("(")[0]
        if item.startswith("gpu"):
            count = item.rsplit(":", 1)[-1]
            total += int(count) if count.isdigit() else 1
    return total


def parse_partitions(partitions: str, nodes: str) -> dict[str, Partition]:
    """``scontrol show partition -o`` and ``scontrol show node -o`` output -> partitions."""
    best: dict[str, list[int]] = {}  # partition -> [cpus, mem, gpus] of its largest nodes
    for line in nodes.splitlines():
        f = _fields(line)
        if "NodeName" not in f:
            continue
        cpus = int(f.get("CPUTot", "0") or 0)
        mem = int(f.get("RealMemory", "0") or 0)
        gpus = gres_gpus(f.get("Gres", ""))
        for part in filter(None, f.get("Partitions", "").split(",")):
            old = best.setdefault(part, [0, 0, 0])
            best[part] = [max(old[0], cpus), max(old[1], mem), max(old[2], gpus)]
    out = {}
    for line in partitions.splitlines():
        f = _fields(line)
        name = f.get("PartitionName")
        if not name:
            continue
        total = int(f.get("TotalNodes", "0") or 0)
        cap = f.get("MaxNodes", "UNLIMITED")
        nodes_ok = total if cap.upper() in _UNLIMITED else min(total, int(cap))
        cpus, mem, gpus = best.get(name, [0, 0, 0])
        out[name] = Partition(
            name,
            f.get("Default") == "YES",
            nodes_ok,
            cpus,
            mem,
            gpus,
            minutes(f.get("MaxTime", "UNLIMITED")),
        )
    return out


def read_partitions(run: Callable[[list[str]], str]) -> dict[str, Partition]:
    """The cluster's partitions, read with ``run`` (a SLURM command runner)."""
    return parse_partitions(
        run(["scontrol", "show", "partition", "-o"]), run(["scontrol", "show", "node", "-o"])
    )


def misfit(
    where: str, stage: str, request: Mapping[str, object], parts: Mapping[str, Partition]
) -> str | None:
    """Why ``request`` (resolved resources of one job) can never start, or None if it fits.

    ``where`` is the config path of the request (``executor.resources.<kind>``).
    """
    name = request.get("partition")
    if name is None:
        defaults = [p for p in parts.values() if p.default]
        if not defaults:
            return (
                f"{where}.partition: stage {stage}: the cluster has no default partition; set one"
            )
        part = defaults[0]
    elif name not in parts:
        return (
            f"{where}.partition: stage {stage}: no partition {name!r} "
            f"(the cluster has {', '.join(sorted(parts)) or 'none'})"
        )
    else:
        part = parts[str(name)]
    tasks = int(request.get("tasks") or 1)
    cpus = tasks * int(request.get("cpus_per_task") or 1)
    mem = request.get("mem_gb")
    checks = [
        ("nodes", int(request.get("nodes") or 1), part.nodes, "nodes", "nodes"),
        ("cpus_per_task", cpus, part.cpus, f"CPUs a node ({tasks} tasks)", "CPUs"),
        ("mem_gb", None if mem is None else float(mem) * 1024, part.mem_mb, "MB a node", "MB"),
        ("gpus_per_node", int(request.get("gpus_per_node") or 0), part.gpus, "GPUs a node", "GPUs"),
        ("time", int(request.get("time") or 0), part.max_time, "minutes", "minutes"),
    ]
    for key, asked, limit, what, unit in checks:
        if asked is None or limit is None or asked <= limit:
            continue
        return (
            f"{where}.{key}: stage {stage} asks {asked:g} {what}; partition {part.name} "
            f"has at most {limit:g} {unit}"
        )
    return None
