"""Optuna sweeps on streamed features: each generation of trials trains as heads of one pass.

On a store a trial re-reads stored features, so trials run one by one (``vjepa.eval.sweep``). On
streamed features every epoch of every trial would re-run the frozen encoder; here a generation of
``sweep.heads_per_pass`` trials (asked together; TPE's constant liar keeps them apart) trains as
the heads of one multi-head probe (one encoder pass per batch for all of them). Each head's
validation top-1 is reported every epoch (a pruned trial stops its head, not the pass), each
finished trial's best head is kept in ``heads/trial-<number>.pt``, and the probe stage reports the
best trial's head as trained (no refit pass). The trials differ only in the head settings
(``lr``, ``weight_decay``). The worker processes that ask for and tell the generations are
``vjepa.stages.sweep_workers``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vjepa.errors import UserError
from vjepa.eval.heads import EpochHook, HeadsResult, train_heads
from vjepa.eval.modes import HEAD_KEYS
from vjepa.eval.probe_train import ProbeParams, ProbeResult
from vjepa.eval.splits import carve_rows
from vjepa.eval.stream import (
    VAL_CACHE_MB,
    StreamRows,
    StreamSource,
    open_stream,
    record_columns,
    split_records,
)
from vjepa.eval.sweep import validate_space
from vjepa.models.probe import build_probe
from vjepa.utils.io import atomic_save

DEFAULT_HEADS_PER_PASS = 16  # V-JEPA 2 trains 20 heads at once (its SSv2 grid)


def check_space(space: Mapping[str, Mapping[str, Any]]) -> None:
    """A streamed sweep searches head settings only: its trials share one pass."""
    for name in space:
        if name not in HEAD_KEYS:
            raise UserError(
                f"sweep.space.{name}: a sweep on streamed features trains its trials as heads of "
                f"one pass, which differ only in {' and '.join(HEAD_KEYS)}"
            )
    validate_space(space, set(HEAD_KEYS))


@dataclass
class StreamSweepRows:
    """The frozen encoder and the rows every generation trains on and is scored on."""

    source: StreamSource
    train: StreamRows
    val: StreamRows


def stream_sweep_rows(config: Mapping[str, Any]) -> StreamSweepRows:
    """The training and validation rows of a streamed sweep config (no evaluation split)."""
    stream = config["stream"]
    source = open_stream(stream)
    records = split_records(stream, "train")
    train_rows, val_rows = carve_rows(config, *record_columns(records))
    if len(val_rows) == 0:
        raise UserError(
            "val_fraction: a sweep needs validation rows carved from the training labels"
        )
    train = StreamRows(source, records, train_rows)
    val = StreamRows(source, records, val_rows, cache_mb=VAL_CACHE_MB)
    return StreamSweepRows(source, train, val)


def generation_params(
    base: ProbeParams, drawn: Sequence[Mapping[str, Any]], rows: StreamSweepRows
) -> tuple[list[dict[str, float]], ProbeParams]:
    """(head settings, probe settings) of one generation: a head per trial's drawn values."""
    heads = [{k: float(d.get(k, getattr(base, k))) for k in HEAD_KEYS} for d in drawn]
    params = ProbeParams(**{**base.to_dict(), "heads": heads})
    params.num_heads = params.num_heads or rows.source.num_heads
    return heads, params


def train_generation(
    rows: StreamSweepRows,
    params: ProbeParams,
    seed: int,
    on_epoch: EpochHook | None = None,
    on_batch: Callable[[], None] | None = None,
) -> HeadsResult:
    """Train a generation's heads on one encoder pass per batch; each head's score is its best
    validation top-1. ``on_epoch`` returns the heads a pruner stops."""
    return train_heads(
        rows.train,
        rows.val,
        params,
        seed=seed,
        device=rows.source.device,
        on_epoch=on_epoch,
        on_batch=on_batch,
        num_classes=rows.source.num_classes,
        embed_dim=rows.source.embed_dim,
    )


def save_trial_head(
    study_dir: Path, number: int, setting: dict[str, float], r: ProbeResult
) -> None:
    """Keep trial ``number``'s head at its best validation epoch, for the probe stage to report."""
    head = {
        "state": {n: v.cpu() for n, v in r.model.state_dict().items()},
        "setting": setting,
        "epoch": r.best_epoch,
        "val_top1": r.val_top1,
        "history": r.history,
    }
    atomic_save(Path(study_dir) / "heads" / f"trial-{number}.pt", lambda p: torch.save(head, p))


def best_trial_heads(
    study: Mapping[str, Any],
    study_dir: Path,
    params: ProbeParams,
    dims: Mapping[str, int],
    device: torch.device,
) -> tuple[HeadsResult, ProbeParams]:
    """The best trial of a streamed sweep as a one-head result, and its probe settings: the head
    it trained (on the training rows, at its best validation epoch) is the one reported."""
    if study["best_trial"] is None:
        raise RuntimeError(f"sweep {study['study_name']}: no trial completed")
    path = Path(study_dir) / "heads" / f"trial-{study['best_trial']}.pt"
    if not path.is_file():
        raise RuntimeError(f"sweep {study['study_name']}: best trial's head {path} is missing")
    head = torch.load(path, map_location="cpu", weights_only=False)
    chosen = ProbeParams(**{**params.to_dict(), **head["setting"]})
    model = build_probe(
        chosen.kind,
        embed_dim=dims["embed_dim"],
        num_classes=dims["num_classes"],
        num_heads=chosen.num_heads,
        depth=chosen.depth,
    )
    model.load_state_dict(head["state"])
    result = ProbeResult(model.to(device), head["epoch"], head["val_top1"], head["history"])
    return HeadsResult([dict(head["setting"])], [result], 0, [False]), chosen
