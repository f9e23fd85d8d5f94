"""torch.distributed set-up from torchrun or SLURM variables, with a job-derived master port.

``torchrun`` exports RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT. Under SLURM
(``srun`` or submitit) we read SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID, take the first host
of SLURM_JOB_NODELIST as master, and derive the port from SLURM_JOB_ID so two jobs on one node
do not collide (the reference used a fixed port). Backend: nccl on GPU, gloo on CPU.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

from vjepa.errors import UserError

PORT_BASE, PORT_SPAN = 20000, 20000


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def port_for_job(job_id: str | int) -> int:
    """A deterministic port in [20000, 40000) for a SLURM job (same on every task of the job)."""
    digits = re.sub(r"\D", "", str(job_id)) or "0"
    return PORT_BASE + int(digits) % PORT_SPAN


def first_host(nodelist: str) -> str:
    """First host of a SLURM nodelist: 'gpu[03-05,07],cpu1' -> 'gpu03'."""
    head = re.match(r"([^,\[]+)(\[([^\]]+)\])?", nodelist.strip())
    if head is None:
        return "127.0.0.1"
    prefix, _, ranges = head.groups()
    if not ranges:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def read_env(environ: dict | None = None) -> DistEnv:
    """Rank layout from torchrun or SLURM variables; sets MASTER_ADDR/PORT for SLURM if unset."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" in env and "RANK" in env:
        return DistEnv(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if "SLURM_NTASKS" in env and "SLURM_PROCID" in env:
        world = int(env["SLURM_NTASKS"])
        if world > 1:
            env.setdefault("MASTER_ADDR", first_host(env.get("SLURM_JOB_NODELIST", "127.0.0.1")))
            env.setdefault("MASTER_PORT", str(port_for_job(env.get("SLURM_JOB_ID", "0"))))
        return DistEnv(int(env["SLURM_PROCID"]), world, int(env.get("SLURM_LOCALID", 0)))
    return DistEnv()


def init(device_type: str) -> DistEnv:
    """Join the process group when the world has more than one process."""
    denv = read_env()
    if denv.enabled and not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
            raise UserError(
                f"distributed run of {denv.world_size} processes: set MASTER_ADDR and MASTER_PORT "
                "(torchrun and SLURM set them)"
            )
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(denv.local_rank)
        dist.init_process_group(backend, rank=denv.rank, world_size=denv.world_size)
    return denv


def all_mean(value: torch.Tensor, denv: DistEnv) -> torch.Tensor:
    """Average a tensor over ranks (identity on one process)."""
    if not denv.enabled:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / denv.world_size


def any_flag(flag: bool, denv: DistEnv, device: torch.device) -> bool:
    """True on every rank if any rank raised the flag (so all ranks stop at the same step)."""
    if not denv.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(denv: DistEnv) -> None:
    if denv.enabled:
        dist.barrier()


def shutdown(denv: DistEnv) -> None:
    if denv.enabled and dist.is_initialized():
        dist.destroy_process_group()
