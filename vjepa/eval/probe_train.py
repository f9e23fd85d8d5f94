"""Probe settings, stored-feature batches and the steps of probe training (``vjepa.eval.heads``
trains one probe or several heads with them).

Protocol (the reference's, minus re-running the encoder): the tokens of all segments of one view
are concatenated, so the probe attends across segments; during training every view is a separate
example (the loss is the mean over views); at evaluation the softmax is averaged over views.
AdamW, per-step cosine schedule to 0 with optional linear warmup, gradient clipping. Model
selection (the epoch kept) looks at the validation rows only.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vjepa.errors import UserError
from vjepa.eval.modes import HEAD_KEYS
from vjepa.eval.store import DTYPES, FeatureStore
from vjepa.utils.keys import reject_unknown


@dataclass
class ProbeParams:
    """Probe hyper-parameters; the paper's values are the defaults."""

    kind: str = "attentive"
    num_heads: int | None = None  # None: the encoder's head count (from the store manifest)
    depth: int = 1
    lr: float = 1.0e-3
    weight_decay: float = 0.01
    epochs: int = 20
    batch_size: int = 256
    warmup_epochs: float = 0
    clip_grad: float | None = 1.0
    # Fewest optimizer steps, whatever the training-set size: with a fixed epoch count a 5 %
    # label fraction gets 1/20 of the steps and its probe is under-trained, not label-starved.
    min_steps: int = 0
    # Several optimiser settings trained together on one pass over the features (None: one probe
    # with ``lr`` and ``weight_decay``); ``from_config`` expands a grid to [{lr, weight_decay}].
    heads: list[dict[str, float]] | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None, where: str = "probe") -> ProbeParams:
        cfg = dict(cfg or {})
        reject_unknown(cfg, (f.name for f in fields(cls)), where)
        heads = cfg.pop("heads", None)
        p = cls(**cfg)
        if p.epochs < 1 or p.batch_size < 1 or p.lr <= 0:
            raise UserError(f"{where}: epochs, batch_size and lr must be positive")
        if p.min_steps < 0:
            raise UserError(f"{where}.min_steps: must be >= 0, got {p.min_steps}")
        if heads is not None:
            p.heads = parse_heads(heads, p.lr, p.weight_decay, f"{where}.heads")
        return p

    def epochs_for(self, n_train: int) -> int:
        """Epochs to run on ``n_train`` rows: ``epochs``, raised until ``min_steps`` are taken."""
        steps_per_epoch = -(-n_train // self.batch_size)
        return max(self.epochs, -(-self.min_steps // steps_per_epoch))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["heads"] is None:
            del d["heads"]  # a single probe: the same dict (and metrics) as before heads existed
        return d


def _head_value(value: Any, key: str, where: str) -> float:
    if isinstance(value, str):  # YAML 1.1 reads ``1e-3`` (no dot) as a string
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UserError(f"{where}: must be a number, got {value!r}")
    if key == "lr" and value <= 0:
        raise UserError(f"{where}: must be positive, got {value}")
    if key == "weight_decay" and value < 0:
        raise UserError(f"{where}: must be >= 0, got {value}")
    return float(value)


def parse_heads(
    heads: Any, lr: float, weight_decay: float, where: str = "probe.heads"
) -> list[dict[str, float]]:
    """``probe.heads`` -> [{lr, weight_decay}, ...]: a list of mappings, or a grid (lr-major).

    A key a head leaves out takes the shared ``probe`` value. Duplicate heads are refused: they
    would only repeat the same training.
    """
    if isinstance(heads, Mapping):
        grid = {}
        for key, values in heads.items():
            if key not in HEAD_KEYS:
                raise UserError(f"{where}.{key}: unknown key (allowed: {', '.join(HEAD_KEYS)})")
            if not isinstance(values, list | tuple):
                raise UserError(f"{where}.{key}: a grid takes a list of values, got {values!r}")
            if not values:
                raise UserError(f"{where}.{key}: empty list")
            grid[key] = [_head_value(v, key, f"{where}.{key}[{i}]") for i, v in enumerate(values)]
            for i, v in enumerate(grid[key]):
                if v in grid[key][:i]:
                    first = grid[key].index(v)
                    raise UserError(f"{where}.{key}[{i}]: duplicates {where}.{key}[{first}] ({v})")
        if not grid:
            raise UserError(f"{where}: empty grid (give lr and/or weight_decay lists)")
        lrs, wds = grid.get("lr", [lr]), grid.get("weight_decay", [weight_decay])
        return [{"lr": a, "weight_decay": b} for a in lrs for b in wds]
    if not isinstance(heads, list | tuple):
        raise UserError(
            f"{where}: a list of {{lr, weight_decay}} mappings or a grid of lists, got {heads!r}"
        )
    if not heads:
        raise UserError(f"{where}: empty list")
    out: list[dict[str, float]] = []
    for i, head in enumerate(heads):
        if not isinstance(head, Mapping):
            raise UserError(f"{where}[{i}]: a mapping with lr and/or weight_decay, got {head!r}")
        for key in head:
            if key not in HEAD_KEYS:
                raise UserError(
                    f"{where}[{i}].{key}: unknown key (allowed: {', '.join(HEAD_KEYS)})"
                )
        h = {
            "lr": _head_value(head.get("lr", lr), "lr", f"{where}[{i}].lr"),
            "weight_decay": _head_value(
                head.get("weight_decay", weight_decay), "weight_decay", f"{where}[{i}].weight_decay"
            ),
        }
        if h in out:
            raise UserError(
                f"{where}[{i}]: duplicates {where}[{out.index(h)}] "
                f"(lr={h['lr']}, weight_decay={h['weight_decay']})"
            )
        out.append(h)
    return out


class FeatureSet:
    """Some rows of a store with their labels, held in memory (16-bit) when they fit."""

    def __init__(
        self,
        source: FeatureStore | torch.Tensor,
        rows: np.ndarray,
        labels: np.ndarray,
        preload_mb: float = 4096,
    ) -> None:
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = torch.as_tensor(np.asarray(labels)[self.rows], dtype=torch.long)
        self.store: FeatureStore | None = None
        self.data: torch.Tensor | None = None
        if isinstance(source, torch.Tensor):
            self.data = source[torch.as_tensor(self.rows)]
        else:
            row_bytes = int(np.prod(source.shape[1:])) * np.dtype(DTYPES[source.dtype][1]).itemsize
            if row_bytes * len(self.rows) <= preload_mb * 2**20:
                self.data = source.take(self.rows)
            else:
                self.store = source  # gathered from the memory-mapped shards batch by batch

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features [b, V, N, D] (float32; N = segments x tokens) and labels [b]."""
        if self.data is not None:
            x = self.data[idx]
        else:
            x = self.store.take(self.rows[idx.numpy()])
        return to_view_tokens(x.float()), self.labels[idx]

    def batches(
        self, order: torch.Tensor, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``batch`` of each ``batch_size`` slice of ``order``, in order."""
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start : start + batch_size])


def to_view_tokens(x: torch.Tensor) -> torch.Tensor:
    """[B, S, V, T, D] or pooled [B, S, V, D] -> [B, V, S*T, D]: segments concatenated per view."""
    if x.dim() == 4:
        x = x.unsqueeze(3)
    b, s, v, t, d = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b, v, s * t, d)


def forward_views(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """[B, V, N, D] -> logits [B, V, C], every view through the probe."""
    b, v = x.shape[:2]
    return model(x.flatten(0, 1)).unflatten(0, (b, v))


def cosine_lr(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@contextlib.contextmanager
def flushed_denormals() -> Iterator[None]:
    """Flush denormal floats to zero while a probe trains (then back to torch's default, off).

    A probe that fits its few labels drives its gradients and Adam moments into the denormal
    range, where CPU float arithmetic is many times slower (a 10 % label-fraction probe of the
    science specs: 2.1x the time over the same steps; ``bench/probe_denormals.py``). Flushing
    changes rounding only below ~1e-38: the spec probes compared kept the same epoch and test
    accuracy; an overfit probe on random tokens can drift to another epoch, as any rounding can.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@dataclass
class ProbeResult:
    model: nn.Module
    best_epoch: int
    val_top1: float | None
    history: list[dict[str, float]] = field(default_factory=list)


def probe_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW; biases, norms and the query tokens get no weight decay (the reference's groups)."""
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "query_tokens" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 or "query_tokens" in n]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
    )


def probe_step(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    target: torch.Tensor,
    lr: float,
    clip_grad: float | None,
) -> float:
    """One optimizer step on a batch of view tokens (``target``: a label per view); the loss."""
    for g in opt.param_groups:
        g["lr"] = lr
    loss = F.cross_entropy(forward_views(model, x).flatten(0, 1), target)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip_grad:
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    opt.step()
    return float(loss.detach())
