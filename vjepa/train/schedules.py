"""Learning-rate, weight-decay and EMA-momentum schedules as pure functions of the optimizer step.

Every schedule is a function of the step only, so a resumed run needs nothing but the step to
continue exactly. As in the V-JEPA reference, the cosine horizon is stretched by ``ipe_scale``
(1.25 in the paper): with 90k planned steps the cosine is laid over 112.5k, so training stops
before the learning rate reaches ``final_lr`` and the EMA momentum reaches 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedules:
    """The three schedules of a pretraining run (step = number of optimizer steps done)."""

    warmup_steps: int
    horizon: int  # stretched schedule length: int(ipe_scale * epochs * iterations_per_epoch)
    start_lr: float
    lr: float
    final_lr: float
    weight_decay: float
    final_weight_decay: float
    ema_start: float
    ema_end: float

    @classmethod
    def from_config(cls, cfg: dict) -> Schedules:
        """Build from the ``pretrain`` config section (epochs are in optimizer steps)."""
        ipe = int(cfg["iterations_per_epoch"])
        ema = cfg.get("ema", [0.998, 1.0])
        return cls(
            warmup_steps=int(cfg.get("warmup_epochs", 0) * ipe),
            horizon=int(cfg.get("ipe_scale", 1.0) * cfg["epochs"] * ipe),
            start_lr=float(cfg.get("start_lr", cfg["lr"])),
            lr=float(cfg["lr"]),
            final_lr=float(cfg.get("final_lr", 0.0)),
            weight_decay=float(cfg.get("weight_decay", 0.0)),
            final_weight_decay=float(cfg.get("final_weight_decay", cfg.get("weight_decay", 0.0))),
            ema_start=float(ema[0]),
            ema_end=float(ema[1]),
        )

    def lr_at(self, step: int) -> float:
        return warmup_cosine(
            step, self.warmup_steps, self.horizon, self.start_lr, self.lr, self.final_lr
        )

    def wd_at(self, step: int) -> float:
        return cosine_weight_decay(step, self.horizon, self.weight_decay, self.final_weight_decay)

    def momentum_at(self, step: int) -> float:
        return linear_momentum(step, self.horizon, self.ema_start, self.ema_end)


def warmup_cosine(
    step: int, warmup_steps: int, horizon: int, start_lr: float, lr: float, final_lr: float
) -> float:
    """Linear warmup ``start_lr -> lr`` over ``warmup_steps``, then cosine ``lr -> final_lr``."""
    if step < warmup_steps:
        return start_lr + (step / warmup_steps) * (lr - start_lr)
    progress = (step - warmup_steps) / max(1, horizon - warmup_steps)
    progress = min(progress, 1.0)
    return final_lr + (lr - final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_weight_decay(step: int, horizon: int, weight_decay: float, final: float) -> float:
    """Cosine ``weight_decay -> final`` over the stretched horizon (V-JEPA raises it 0.04 -> 0.4)."""
    progress = min(step / max(1, horizon), 1.0)
    return final + (weight_decay - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def linear_momentum(step: int, horizon: int, start: float, end: float) -> float:
    """EMA momentum, linear ``start -> end`` over the stretched horizon."""
    return start + min(step / max(1, horizon), 1.0) * (end - start)
