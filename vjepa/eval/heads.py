"""Multi-head probes: K optimiser settings trained together on one pass over frozen features.

V-JEPA 2 trains a grid of probes (learning rate x weight decay) on the same frozen features and
reports the best one. Here every head sees the same batches in the same order: a batch is read
(from a store, or encoded from clips by the frozen encoder) once and fed to each head in turn; each
head has its own AdamW and cosine schedule with its own ``lr`` and ``weight_decay``, and starts from
the same seeded initialisation (so K heads with identical settings give K identical probes, and one
head is exactly ``train_probe``).

Selection uses the validation carve-out only: each head keeps its epoch of best validation top-1
(the single-probe rule), and the chosen head is the one with the highest of those (ties: the lowest
index). The reference instead reports the best head on its evaluation split, a max over K noisy
estimates of the reported number; the caller here evaluates every head's kept state on the test
split after the choice is made and reports the chosen head's.

Resume: with a ``checkpoint`` file the trainer saves every head, optimiser, best state, history,
the step, the epoch's shuffling state and the batch position, at the end of every epoch, every
``save_every_s`` seconds and when ``stop`` is set (then it raises ``ProbeInterrupted``); a new
call with the same settings continues from there and ends with the same heads as an
uninterrupted run.

Progress: ``on_progress(epochs done, epochs, figures)`` when training starts (at the resumed epoch)
and after every epoch, with ``best_val`` (the best validation top-1 of any head so far) and
``loss`` (the last epoch's mean training loss of that head).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from vjepa.errors import StageInterrupted, UserError
from vjepa.eval.metrics import accuracy, view_averaged_probs
from vjepa.eval.probe_train import (
    ProbeParams,
    ProbeResult,
    cosine_lr,
    flushed_denormals,
    forward_views,
    probe_optimizer,
    probe_step,
)
from vjepa.models.probe import build_probe
from vjepa.utils.io import atomic_save

CHECKPOINT_FORMAT = 1


class Rows(Protocol):
    """Labelled rows of frozen features: stored (``FeatureSet``) or encoded on the fly."""

    def __len__(self) -> int: ...

    def batches(
        self, order: torch.Tensor, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(features [b, V, N, D], labels [b]) of ``order`` cut into batches, in order."""
        ...


class ProbeInterrupted(StageInterrupted):
    """Probe training stopped on request after saving its resume state; rerun to continue."""


@dataclass
class HeadsResult:
    """One ``ProbeResult`` per head (its model at its best validation epoch) and the choice."""

    settings: list[dict[str, float]]
    results: list[ProbeResult]
    chosen: int
    stopped: list[bool]  # heads stopped early by ``on_epoch`` (a pruned sweep trial)


# ``on_epoch(epoch, val_top1 per head)`` -> indices of heads to stop training (None: keep all)
EpochHook = Callable[[int, list[float | None]], Iterable[int] | None]
# ``on_progress(done, total, figures)``: how far training is (the stage writes progress.json)
OnProgress = Callable[[int, int, Mapping[str, float]], None]


def head_params(params: ProbeParams, index: int) -> ProbeParams:
    """The single-probe settings of head ``index`` (shared settings with its lr and weight decay)."""
    return ProbeParams(**{**params.to_dict(), **params.heads[index], "heads": None})


def head_settings(params: ProbeParams) -> list[dict[str, float]]:
    """``params.heads``, or the one head of a single probe."""
    return params.heads or [{"lr": params.lr, "weight_decay": params.weight_decay}]


def choose_head(val_top1: list[float]) -> int:
    """The head with the highest best-validation top-1; ties go to the lowest index."""
    return max(range(len(val_top1)), key=lambda k: (val_top1[k], -k))


@torch.no_grad()
def evaluate_heads(
    models: list[nn.Module], data: Rows, batch_size: int = 256
) -> list[dict[str, float]]:
    """Top-1/top-5 (softmax averaged over views) of every model, reading each batch once."""
    for m in models:
        m.eval()
    probs: list[list[torch.Tensor]] = [[] for _ in models]
    labels: list[torch.Tensor] = []
    for x, y in data.batches(torch.arange(len(data)), batch_size):
        labels.append(y.cpu())
        for k, m in enumerate(models):
            probs[k].append(view_averaged_probs(forward_views(m, x)).cpu())
    if not labels or not sum(len(y) for y in labels):
        return [{"top1": float("nan"), "top5": float("nan"), "n": 0} for _ in models]
    return [accuracy(torch.cat(p), torch.cat(labels)) for p in probs]


def evaluate(model: nn.Module, data: Rows, batch_size: int = 256) -> dict[str, float]:
    """Top-1/top-5 (percent) of one probe, the softmax averaged over views."""
    return evaluate_heads([model], data, batch_size)[0]


def train_probe(
    train: Rows,
    val: Rows | None,
    params: ProbeParams,
    *,
    num_classes: int,
    embed_dim: int,
    seed: int = 0,
    on_epoch: Callable[[int, float | None, nn.Module], None] | None = None,
    flush_denormals: bool = True,
    on_progress: OnProgress | None = None,
) -> ProbeResult:
    """Train one probe; keep the epoch with the best validation top-1 (the last one without val).

    ``on_epoch(epoch, val_top1, model)`` runs after every epoch; an Optuna pruning callback
    raises there, and a study of selection rules reads the model's state there.
    """
    if params.heads is not None:
        raise UserError(
            "probe.heads: train_probe trains one probe; several heads train with "
            "train_heads (a sweep cannot use probe.heads)"
        )
    trainer = _Trainer(train, val, params, num_classes, embed_dim, seed, None)
    trainer.on_progress = on_progress
    if on_epoch is not None:
        trainer.on_epoch = lambda epoch, vals: on_epoch(epoch, vals[0], trainer.models[0])
    with flushed_denormals() if flush_denormals else contextlib.nullcontext():
        return trainer.run(None, None, math.inf).results[0]


def train_heads(
    train: Rows,
    val: Rows | None,
    params: ProbeParams,
    *,
    num_classes: int,
    embed_dim: int,
    seed: int = 0,
    device: torch.device | str | None = None,
    on_epoch: EpochHook | None = None,
    on_batch: Callable[[], None] | None = None,
    checkpoint: str | Path | None = None,
    stop: Any = None,
    save_every_s: float = 600.0,
    on_progress: OnProgress | None = None,
) -> HeadsResult:
    """Train ``params.heads`` (or the single probe of ``params``) on one pass per batch; choose a
    head on the validation rows. ``stop``: anything with ``is_set()`` (a signal flag);
    ``on_batch()`` runs after every training batch (a sweep's heartbeat)."""
    trainer = _Trainer(train, val, params, num_classes, embed_dim, seed, device)
    trainer.on_epoch, trainer.on_batch = on_epoch, on_batch
    trainer.on_progress = on_progress
    with flushed_denormals():
        return trainer.run(Path(checkpoint) if checkpoint else None, stop, save_every_s)


class _Trainer:
    """The state of K heads being trained; ``state``/``load`` are its resume checkpoint."""

    def __init__(
        self,
        train: Rows,
        val: Rows | None,
        params: ProbeParams,
        num_classes: int,
        embed_dim: int,
        seed: int,
        device: torch.device | str | None,
    ) -> None:
        self.settings = head_settings(params)
        if len(train) == 0:
            raise UserError("probe: no training rows (label fraction too small?)")
        if params.heads is not None and (val is None or len(val) == 0):
            raise UserError("probe.heads: choosing a head needs validation rows (val_fraction > 0)")
        if params.kind == "attentive" and not params.num_heads:
            raise UserError(
                "probe.num_heads: unknown (no encoder head count in the store manifest)"
            )
        self.train, self.val, self.params, self.seed = train, val, params, seed
        self.device = torch.device(device or "cpu")
        self.models: list[nn.Module] = []
        self.opts: list[torch.optim.Optimizer] = []
        for h in self.settings:
            torch.manual_seed(seed)  # every head starts from the same weights
            model = build_probe(
                params.kind,
                embed_dim=embed_dim,
                num_classes=num_classes,
                num_heads=params.num_heads,
                depth=params.depth,
            ).to(self.device)
            self.models.append(model)
            self.opts.append(probe_optimizer(model, h["lr"], h["weight_decay"]))
        k = len(self.models)
        self.steps_per_epoch = -(-len(train) // params.batch_size)
        self.epochs = params.epochs_for(len(train))
        self.total = self.steps_per_epoch * self.epochs
        self.warmup = int(round(params.warmup_epochs * self.steps_per_epoch))
        self.gen = torch.Generator().manual_seed(seed)
        self.best: list[tuple[float, int, dict | None]] = [(-1.0, -1, None)] * k
        self.histories: list[list[dict[str, Any]]] = [[] for _ in range(k)]
        self.active = [True] * k
        self.step = self.epoch = self.position = 0  # position: batches of this epoch done
        self.loss_sums = [0.0] * k
        self.epoch_gen_state = self.gen.get_state()

    # -- resume ------------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed (else it is another training)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "settings": self.settings,
            "params": {k: v for k, v in self.params.to_dict().items() if k != "heads"},
            "seed": self.seed,
            "n_train": len(self.train),
            "n_val": len(self.val) if self.val is not None else 0,
        }

    def state(self) -> dict[str, Any]:
        return {
            "identity": self.identity(),
            "models": [m.state_dict() for m in self.models],
            "opts": [o.state_dict() for o in self.opts],
            "best": self.best,
            "histories": self.histories,
            "active": self.active,
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "loss_sums": self.loss_sums,
            "epoch_gen_state": self.epoch_gen_state,
            "torch_rng": torch.get_rng_state(),
        }

    def load(self, path: Path) -> bool:
        """Continue from ``path`` when it holds this training; False (start over) otherwise."""
        if not path.is_file():
            return False
        state = torch.load(path, map_location=self.device, weights_only=False)
        if state.get("identity") != self.identity():
            return False
        for m, s in zip(self.models, state["models"], strict=True):
            m.load_state_dict(s)
        for o, s in zip(self.opts, state["opts"], strict=True):
            o.load_state_dict(s)
        self.best, self.histories, self.active = state["best"], state["histories"], state["active"]
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        self.loss_sums, self.epoch_gen_state = state["loss_sums"], state["epoch_gen_state"]
        torch.set_rng_state(state["torch_rng"])
        return True

    def save(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_save(path, lambda tmp: torch.save(self.state(), tmp))

    # -- training ----------------------------------------------------------------------------
    on_epoch: EpochHook | None = None
    on_batch: Callable[[], None] | None = None
    on_progress: OnProgress | None = None

    def run(self, ckpt: Path | None, stop: Any, save_every_s: float) -> HeadsResult:
        resumed = ckpt is not None and self.load(ckpt)
        last_save = time.monotonic()
        self._report_progress()
        bs = self.params.batch_size
        while self.epoch < self.epochs:
            for m in self.models:
                m.train()
            self.gen.set_state(self.epoch_gen_state)
            order = torch.randperm(len(self.train), generator=self.gen)
            if not resumed or self.position == 0:
                self.loss_sums = [0.0] * len(self.models)
            resumed = False
            rest = order[self.position * bs :]
            for x, y in self.train.batches(rest, bs):
                self._step(x.to(self.device), y.to(self.device))
                self.position += 1
                if self.on_batch is not None:
                    self.on_batch()
                if stop is not None and stop.is_set():
                    self.save(ckpt)
                    raise ProbeInterrupted(
                        f"probe interrupted at epoch {self.epoch}, batch {self.position}; "
                        f"resume state saved in {ckpt}"
                        if ckpt
                        else "probe interrupted (no checkpoint file: it starts over)"
                    )
                if ckpt is not None and time.monotonic() - last_save > save_every_s:
                    self.save(ckpt)
                    last_save = time.monotonic()
            self._end_epoch(self.on_epoch)
            self.epoch, self.position = self.epoch + 1, 0
            self.epoch_gen_state = self.gen.get_state()
            self.save(ckpt)
            last_save = time.monotonic()
            self._report_progress()
            if not any(self.active):
                break
        return self._result()

    def _report_progress(self) -> None:
        """Epochs done, the best validation top-1 so far and that head's last epoch loss."""
        if self.on_progress is None:
            return
        figures: dict[str, float] = {}
        best = choose_head([b[0] for b in self.best])
        if self.best[best][0] >= 0:
            figures["best_val"] = self.best[best][0]
        if self.histories[best]:
            figures["loss"] = self.histories[best][-1]["loss"]
        self.on_progress(self.epoch, self.epochs, figures)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if len(y) < 2 and self.params.kind == "linear":
            return  # BatchNorm needs two rows
        if len(y) == 0:
            return  # every clip of the batch failed to decode
        target = y.repeat_interleave(x.shape[1])
        for k, (model, opt) in enumerate(zip(self.models, self.opts, strict=True)):
            if not self.active[k]:
                continue
            lr = cosine_lr(self.step, self.total, self.warmup, self.settings[k]["lr"])
            loss = probe_step(model, opt, x, target, lr, self.params.clip_grad)
            self.loss_sums[k] += loss * len(y)
        self.step += 1

    def _end_epoch(self, on_epoch: EpochHook | None) -> None:
        if self.val is not None and len(self.val):
            live = [k for k in range(len(self.models)) if self.active[k]]
            scores = evaluate_heads([self.models[k] for k in live], self.val)
            val_top1: list[float | None] = [None] * len(self.models)
            for k, s in zip(live, scores, strict=True):
                val_top1[k] = s["top1"]
        else:
            val_top1 = [None] * len(self.models)
        for k, model in enumerate(self.models):
            if not self.active[k]:
                continue
            self.histories[k].append(
                {
                    "epoch": self.epoch,
                    "loss": self.loss_sums[k] / len(self.train),
                    "val_top1": val_top1[k],
                }
            )
            v = val_top1[k]
            if v is not None and v > self.best[k][0]:
                self.best[k] = (v, self.epoch, copy.deepcopy(model.state_dict()))
        if on_epoch is not None:
            for k in on_epoch(self.epoch, val_top1) or ():
                self.active[k] = False

    def _result(self) -> HeadsResult:
        results = []
        for k, model in enumerate(self.models):
            val_top1, best_epoch, state = self.best[k]
            last = len(self.histories[k]) - 1
            if state is None:  # no validation (or NaN every epoch): keep the last epoch
                results.append(ProbeResult(model, last, None, self.histories[k]))
                continue
            model.load_state_dict(state)
            results.append(ProbeResult(model, best_epoch, val_top1, self.histories[k]))
        chosen = choose_head([r.val_top1 if r.val_top1 is not None else -1.0 for r in results])
        stopped = [not a for a in self.active]
        return HeadsResult([dict(h) for h in self.settings], results, chosen, stopped)
