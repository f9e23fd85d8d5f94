"""Resume state: everything a killed run needs to continue bit-for-bit.

``ckpt/latest.pt`` holds the online and target weights, the optimizer and grad-scaler states, the
step (every schedule is a function of it), the data position (epoch and micro-batch within it)
and the RNG states. It is replaced atomically (write beside, fsync, rename), so a SIGKILL at any
moment leaves either the previous or the new state, never a torn file.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa.errors import CheckpointError
from vjepa.utils.io import atomic_save

FORMAT = "vjepa-exp-train/1"


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Publish ``state`` (tensors on any device) atomically at ``path``."""
    payload = {"format": FORMAT, **state, "rng": rng_states()}
    atomic_save(path, lambda tmp: torch.save(payload, tmp))


def load_state(path: Path) -> dict[str, Any] | None:
    """The saved resume state, or None if there is none yet."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a resume file we cannot read must not be silently ignored
        raise CheckpointError(f"{path}: cannot read resume state ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} resume state")
    return state
