"""Multi-head probes: K optimiser settings trained together on one pass over stored features.

V-JEPA 2 trains a grid of probes (learning rate x weight decay) on the same frozen features and
reports the best one. Here every head sees the same batches in the same order: a batch is read
from the store once and fed to each head in turn; each head has its own AdamW and cosine schedule
with its own ``lr`` and ``weight_decay``, and starts from the same seeded initialisation (so K heads
with identical settings give K identical probes, and one head is exactly ``train_probe``).

Selection uses the validation carve-out only: each head keeps its epoch of best validation top-1
(the single-probe rule), and the chosen head is the one with the highest of those (ties: the lowest
index). The reference instead reports the best head on its evaluation split, a max over K noisy
estimates of the reported number; the caller here evaluates every head's kept state on the test
split after the choice is made and reports the chosen head's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from vjepa.errors import UserError
from vjepa.eval.metrics import accuracy, view_averaged_probs
from vjepa.eval.probe_train import (
    FeatureSet,
    ProbeParams,
    ProbeResult,
    cosine_lr,
    flushed_denormals,
    forward_views,
    probe_optimizer,
    probe_step,
)
from vjepa.models.probe import build_probe


@dataclass
class HeadsResult:
    """One ``ProbeResult`` per head (its model at its best validation epoch) and the choice."""

    settings: list[dict[str, float]]
    results: list[ProbeResult]
    chosen: int


def head_params(params: ProbeParams, index: int) -> ProbeParams:
    """The single-probe settings of head ``index`` (shared settings with its lr and weight decay)."""
    return ProbeParams(**{**params.to_dict(), **params.heads[index], "heads": None})


def choose_head(val_top1: list[float]) -> int:
    """The head with the highest best-validation top-1; ties go to the lowest index."""
    return max(range(len(val_top1)), key=lambda k: (val_top1[k], -k))


@torch.no_grad()
def evaluate_heads(
    models: list[nn.Module], data: FeatureSet, batch_size: int = 256
) -> list[dict[str, float]]:
    """``evaluate`` for every model, reading each batch of ``data`` once."""
    for m in models:
        m.eval()
    probs: list[list[torch.Tensor]] = [[] for _ in models]
    for start in range(0, len(data), batch_size):
        x, _ = data.batch(torch.arange(start, min(len(data), start + batch_size)))
        for k, m in enumerate(models):
            probs[k].append(view_averaged_probs(forward_views(m, x)))
    if not len(data):
        return [{"top1": float("nan"), "top5": float("nan"), "n": 0} for _ in models]
    return [accuracy(torch.cat(p), data.labels) for p in probs]


def train_heads(
    train: FeatureSet,
    val: FeatureSet | None,
    params: ProbeParams,
    *,
    num_classes: int,
    embed_dim: int,
    seed: int = 0,
) -> HeadsResult:
    """Train ``params.heads`` on one pass per batch; choose a head on the validation rows."""
    with flushed_denormals():
        return _train_heads(train, val, params, num_classes, embed_dim, seed)


def _train_heads(
    train: FeatureSet,
    val: FeatureSet | None,
    params: ProbeParams,
    num_classes: int,
    embed_dim: int,
    seed: int,
) -> HeadsResult:
    settings = params.heads
    if not settings:
        raise UserError("probe.heads: no heads given")
    if len(train) == 0:
        raise UserError("probe: no training rows (label fraction too small?)")
    if val is None or len(val) == 0:
        raise UserError("probe.heads: choosing a head needs validation rows (val_fraction > 0)")
    if params.kind == "attentive" and not params.num_heads:
        raise UserError("probe.num_heads: unknown (no encoder head count in the store manifest)")
    models, opts = [], []
    for h in settings:
        torch.manual_seed(seed)  # every head starts from the same weights
        model = build_probe(
            params.kind,
            embed_dim=embed_dim,
            num_classes=num_classes,
            num_heads=params.num_heads,
            depth=params.depth,
        )
        models.append(model)
        opts.append(probe_optimizer(model, h["lr"], h["weight_decay"]))
    k_heads = len(models)
    steps_per_epoch = -(-len(train) // params.batch_size)
    epochs = params.epochs_for(len(train))
    total = steps_per_epoch * epochs
    warmup = int(round(params.warmup_epochs * steps_per_epoch))
    gen = torch.Generator().manual_seed(seed)
    best: list[tuple[float, int, dict | None]] = [(-1.0, -1, None)] * k_heads
    histories: list[list[dict[str, float]]] = [[] for _ in models]
    step = 0
    for epoch in range(epochs):
        for m in models:
            m.train()
        order = torch.randperm(len(train), generator=gen)
        loss_sums = [0.0] * k_heads
        for start in range(0, len(train), params.batch_size):
            x, y = train.batch(order[start : start + params.batch_size])  # read once, K heads
            if len(y) < 2 and params.kind == "linear":
                continue  # BatchNorm needs two rows
            target = y.repeat_interleave(x.shape[1])
            for k, (model, opt) in enumerate(zip(models, opts, strict=True)):
                lr = cosine_lr(step, total, warmup, settings[k]["lr"])
                loss_sums[k] += probe_step(model, opt, x, target, lr, params.clip_grad) * len(y)
            step += 1
        scores = evaluate_heads(models, val)
        for k, model in enumerate(models):
            val_top1 = scores[k]["top1"]
            histories[k].append(
                {"epoch": epoch, "loss": loss_sums[k] / len(train), "val_top1": val_top1}
            )
            if val_top1 > best[k][0]:
                best[k] = (val_top1, epoch, copy.deepcopy(model.state_dict()))
    results = []
    for k, model in enumerate(models):
        val_top1, best_epoch, state = best[k]
        if state is None:  # validation accuracy NaN every epoch: keep the last epoch
            results.append(ProbeResult(model, epochs - 1, None, histories[k]))
            continue
        model.load_state_dict(state)
        results.append(ProbeResult(model, best_epoch, val_top1, histories[k]))
    chosen = choose_head([r.val_top1 if r.val_top1 is not None else -1.0 for r in results])
    return HeadsResult([dict(h) for h in settings], results, chosen)
