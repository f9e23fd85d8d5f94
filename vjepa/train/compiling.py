"""torch.compile with a persistent cache, so a second run does not pay the compile again.

Inductor keeps its compiled kernels and graphs (FX graph and AOTAutograd caches) in
``TORCHINDUCTOR_CACHE_DIR``; by default that is a folder under the system's temporary directory,
which a SLURM node or a reboot may wipe. Unless the variable is set, runs use
``.vjepa/cache/inductor`` under the working directory (the project root for pipeline stages), so
every later run of the same model shapes, on any node sharing that folder, loads instead of
compiling. What still runs each time is Dynamo's tracing of the Python code, once per new input
shape (the masks' token counts vary by step): docs/benchmarks.md has the first and second run.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch._inductor.config as inductor_config
from torch import nn
from torch._inductor.runtime.cache_dir_utils import default_cache_dir

CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
DEFAULT_CACHE = Path(".vjepa") / "cache" / "inductor"


def compile_cache_dir() -> Path:
    """The inductor cache folder: ``TORCHINDUCTOR_CACHE_DIR`` if the user set it, else ours.

    Inductor writes its own default into the variable once it has looked it up (importing the
    optimizer already does), so that value counts as unset.
    """
    given = os.environ.get(CACHE_ENV)
    if not given or Path(given) == Path(default_cache_dir()):
        os.environ[CACHE_ENV] = str(DEFAULT_CACHE.resolve())
    return Path(os.environ[CACHE_ENV])


def compiled(module: nn.Module) -> nn.Module:
    """``torch.compile(module)`` with the persistent cache switched on."""
    compile_cache_dir()
    inductor_config.fx_graph_cache = True
    if hasattr(inductor_config, "autograd_cache"):  # torch >= 2.5; older versions have none
        inductor_config.autograd_cache = True
    return torch.compile(module)
