"""Optuna sweeps on streamed features: each generation of trials trains as heads of one pass.

On a store a trial re-reads stored features, so trials run one by one (``vjepa.eval.sweep``). On
streamed features every epoch of every trial would re-run the frozen encoder; here a worker asks
the study for ``sweep.heads_per_pass`` trials at once (TPE's constant liar keeps them apart),
trains them as the heads of one multi-head probe (one encoder pass per batch for all of them),
reports each head's validation top-1 every epoch (a pruned trial stops its head, not the pass),
keeps each finished trial's best head in ``heads/trial-<number>.pt`` and tells the results, one
generation after another. The study's storage, trial budget, worker liveness and the way workers
share a study are those of ``vjepa.eval.sweep``: journal or RDB storages, many workers, SLURM
arrays. The probe stage then reports the best trial's head as trained (no refit pass).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vjepa.errors import UserError
from vjepa.eval.heads import HeadsResult, train_heads
from vjepa.eval.modes import HEAD_KEYS
from vjepa.eval.probe_train import ProbeParams, ProbeResult
from vjepa.eval.splits import carve_rows
from vjepa.eval.stream import VAL_CACHE_MB, StreamRows, open_stream, record_columns, split_records
from vjepa.eval.sweep import (
    claim_trial,
    finish_trial,
    load_study,
    main,
    run_sweep,
    study_summary,
    suggest,
    validate_space,
    worker_settings,
)
from vjepa.models.probe import build_probe
from vjepa.utils.io import atomic_save

DEFAULT_HEADS_PER_PASS = 16  # V-JEPA 2 trains 20 heads at once (its SSv2 grid)
HEARTBEAT_S = 30.0


def run_stream_sweep(
    config: Mapping[str, Any], study_dir: str | os.PathLike[str]
) -> dict[str, Any]:
    """``run_sweep`` with streamed workers (in this process, or ``python -m`` this module)."""
    return run_sweep(config, study_dir, worker=run_stream_worker, module=__name__)


def run_stream_worker(
    config: Mapping[str, Any], study_dir: str | os.PathLike[str], worker_index: int | None = None
) -> dict[str, Any]:
    """Run trials of a streamed sweep until the shared budget is met (a ``run_worker`` twin).

    Trials in generations of ``per_pass``: each generation trains its trials as heads on
    one encoder pass per epoch, reports every head's validation top-1 per epoch (a pruned trial
    stops its head, not the pass) and tells each trial's result; its best head is kept in
    ``heads/trial-<number>.pt`` for the probe stage to evaluate."""
    from optuna.trial import TrialState

    config, worker_index, sweep, base = worker_settings(config, worker_index)
    study_dir = Path(study_dir)
    for name in sweep.space:
        if name not in HEAD_KEYS:
            raise UserError(
                f"sweep.space.{name}: a sweep on streamed features trains its trials as heads of "
                f"one pass, which differ only in {' and '.join(HEAD_KEYS)}"
            )
    validate_space(sweep.space, set(HEAD_KEYS))
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
    study = load_study(config, study_dir, worker_index)
    seed = int(config.get("seed", 0))
    (study_dir / "heads").mkdir(parents=True, exist_ok=True)
    dims = {"num_classes": source.num_classes, "embed_dim": source.embed_dim}
    per_pass = sweep.heads_per_pass or DEFAULT_HEADS_PER_PASS
    while True:
        trials = []
        while len(trials) < per_pass:
            trial = claim_trial(
                study, study_dir, sweep.n_trials, sweep.stale_after_s, wait=not trials
            )
            if trial is None:
                break
            trials.append(trial)
        if not trials:
            break
        heads = []
        for t in trials:
            drawn = suggest(t, sweep.space)
            heads.append({k: float(drawn.get(k, getattr(base, k))) for k in HEAD_KEYS})
        params = ProbeParams(**{**base.to_dict(), "heads": heads})
        params.num_heads = params.num_heads or source.num_heads
        beat = [time.monotonic()]

        def report(epoch: int, val_top1: list[float | None], trials: list = trials) -> list[int]:
            stop = []
            for k, (t, v) in enumerate(zip(trials, val_top1, strict=True)):
                if v is None:
                    continue  # stopped already
                t.report(float(v), epoch)
                t.set_user_attr("heartbeat", time.time())
                if t.should_prune():
                    stop.append(k)
            return stop

        def heartbeat(trials: list = trials, beat: list = beat) -> None:
            if time.monotonic() - beat[0] > HEARTBEAT_S:
                for t in trials:
                    t.set_user_attr("heartbeat", time.time())
                beat[0] = time.monotonic()

        try:
            res = train_heads(
                train,
                val,
                params,
                seed=seed,
                device=source.device,
                on_epoch=report,
                on_batch=heartbeat,
                **dims,
            )
        except BaseException:
            for t in trials:
                finish_trial(study, t, TrialState.FAIL)
            raise
        for k, t in enumerate(trials):
            if res.stopped[k]:
                finish_trial(study, t, TrialState.PRUNED)
                continue
            r = res.results[k]
            head = {
                "state": {n: v.cpu() for n, v in r.model.state_dict().items()},
                "setting": heads[k],
                "epoch": r.best_epoch,
                "val_top1": r.val_top1,
                "history": r.history,
            }
            atomic_save(study_dir / "heads" / f"trial-{t.number}.pt", lambda p, h=head: _save(h, p))
            t.set_user_attr("best_epoch", r.best_epoch)
            value = r.val_top1 if r.val_top1 is not None else float("nan")
            finish_trial(study, t, TrialState.COMPLETE, value)
    return {**study_summary(study, sweep.n_trials), "stream": source.stats.to_dict()}


def _save(obj: Any, path: Path) -> None:
    torch.save(obj, path)


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


if __name__ == "__main__":
    sys.exit(main(worker=run_stream_worker, prog="python -m vjepa.eval.stream_sweep"))
