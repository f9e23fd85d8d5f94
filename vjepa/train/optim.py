"""AdamW with V-JEPA's parameter groups: no weight decay on biases and 1-D parameters.

Biases and norm gains are excluded from decay (the reference's ``WD_exclude`` groups); the
weight-decay schedule only touches the decayed groups. As in the reference, the predictor's mask
tokens ([1, 1, d], not 1-D) are decayed.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def param_groups(modules: Iterable[nn.Module]) -> list[dict]:
    """Two groups per module (decay, no-decay), trainable parameters only."""
    groups: list[dict] = []
    for module in modules:
        decay, no_decay = [], []
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
        if decay:
            groups.append({"params": decay, "wd_exclude": False})
        if no_decay:
            groups.append({"params": no_decay, "wd_exclude": True, "weight_decay": 0.0})
    return groups


def build_optimizer(modules: Iterable[nn.Module], lr: float, weight_decay: float):
    """AdamW(betas 0.9/0.999, eps 1e-8) over :func:`param_groups`.

    ``foreach``: one multi-tensor kernel per operation instead of a Python loop over parameters
    (PyTorch only picks it by itself on GPUs); bit for bit the same update as the loop. The fused
    kernel would be faster still but rounds differently.
    """
    return torch.optim.AdamW(
        param_groups(modules),
        lr=lr,
        weight_decay=weight_decay,
        betas=(0.9, 0.999),
        eps=1e-8,
        foreach=True,
    )


def set_hyperparams(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    """Apply this step's scheduled learning rate and weight decay."""
    for group in optimizer.param_groups:
        group["lr"] = lr
        if not group.get("wd_exclude", False):
            group["weight_decay"] = weight_decay
