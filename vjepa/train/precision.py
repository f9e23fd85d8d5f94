"""Which autocast dtype a pretraining run uses: ``pretrain.dtype`` on the device it runs on.

``bfloat16`` and ``float16`` mean autocast to that dtype (matmuls and convolutions in it, weights,
optimizer state, norms and the loss in float32); ``float32`` means no autocast. ``auto`` picks
bfloat16 on a GPU, and on a CPU only where the CPU computes bfloat16 matmuls natively
(AVX512-BF16 or AMX-BF16): there a one-thread 4096x192 @ 192x768 matmul ran 2.4x faster in
bfloat16 than in float32 (147 vs 61 GFLOP/s), while on an AVX2-only CPU bfloat16 ran 50x slower
(1.3 vs 69 GFLOP/s; docs/benchmarks.md), so there ``auto`` is float32. float16 needs a GPU
(gradient scaling on a CPU is not supported here).
"""

from __future__ import annotations

from pathlib import Path

import torch

from vjepa.errors import UserError
from vjepa.train.config import DTYPES

AUTOCAST = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": None}

# /proc/cpuinfo flags of native bfloat16 arithmetic on x86 CPUs
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (empty where ``/proc/cpuinfo`` is not readable, e.g. macOS)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_has_bf16(flags: set[str] | None = None) -> bool:
    """True where the CPU multiplies bfloat16 natively (and PyTorch dispatches AVX-512 kernels)."""
    flags = cpu_flags() if flags is None else flags
    capability = torch.backends.cpu.get_cpu_capability()
    return capability.startswith("AVX512") and any(f in flags for f in BF16_FLAGS)


def autocast_dtype(name: str, device_type: str) -> torch.dtype | None:
    """The autocast dtype of ``pretrain.dtype`` ``name`` on ``device_type``; None = float32."""
    if name == "auto":
        if device_type == "cuda" or cpu_has_bf16():
            return torch.bfloat16
        return None
    if name not in DTYPES:
        raise UserError(f"pretrain config: pretrain.dtype must be one of {', '.join(DTYPES)}")
    if name == "float16" and device_type != "cuda":
        raise UserError(
            f"pretrain config: pretrain.dtype float16 needs a GPU (device {device_type}); "
            "use bfloat16, float32 or auto"
        )
    return AUTOCAST[name]
