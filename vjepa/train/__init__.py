"""V-JEPA pretraining: objectives, schedules, EMA, resumable and distributed training loop.

``pretrain(config, out, stop=None) -> metrics`` is the pretrain stage body (see ``loop``).
"""

from __future__ import annotations

from typing import Any


def pretrain(config: dict[str, Any], out: Any, **kwargs: Any) -> dict[str, Any]:
    """Pretrain into ``out``; see :func:`vjepa.train.loop.pretrain`."""
    # loaded on call: the pipeline reads vjepa.train.config at compile time, without torch
    from vjepa.train.loop import pretrain as _pretrain

    return _pretrain(config, out, **kwargs)


__all__ = ["pretrain"]
