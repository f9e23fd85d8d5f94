"""Stage ``stream``: a probe on streamed features (the probe stage's twin for huge datasets).

No feature store: the stage reads the clips of the task's training split with the evaluation
protocol, runs the frozen encoder on every batch (``vjepa.eval.stream``) and trains the probe,
its heads (``probe.heads``) or a sweep's generations of trials (``vjepa.eval.stream_sweep``) on
the fly; the head is chosen on the validation carve-out before the evaluation split is read, once.
Its resume state goes to ``ckpt/heads.pt`` every epoch, every 10 minutes and on SIGTERM / SIGUSR2
(then it stops without publishing metrics); running the stage again continues from there.
``progress.json``: ``sweep`` (trials finished, best validation top-1) or ``probe`` (epochs, best
validation top-1 and loss).

A streamed sweep's workers run on ``vjepa.stages.sweep_workers``' machinery (shared study, exact
budget, dead-worker retries): in this process, or as ``python -m vjepa.stages.stream CONFIG
STUDY_DIR [--index I]`` processes (the stage's own, or a SLURM job array's tasks).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from optuna.trial import TrialState

from vjepa.errors import UserError
from vjepa.eval.heads import Rows, train_heads
from vjepa.eval.probe_train import ProbeParams
from vjepa.eval.splits import carve_rows
from vjepa.eval.stream import (
    VAL_CACHE_MB,
    StreamRows,
    open_stream,
    record_columns,
    split_records,
)
from vjepa.eval.stream_sweep import (
    DEFAULT_HEADS_PER_PASS,
    best_trial_heads,
    check_space,
    generation_params,
    save_trial_head,
    stream_sweep_rows,
    train_generation,
)
from vjepa.eval.sweep import SweepConfig, load_study, study_summary, suggest
from vjepa.stages.probe import PROBE_KEYS, probe_settings, report_heads
from vjepa.stages.sweep_workers import (
    OnProgress,
    claim_trial,
    finish_trial,
    main,
    report_trials,
    run_sweep,
    worker_settings,
)
from vjepa.utils.progress import ProgressWriter
from vjepa.utils.signals import stop_on_signals

KEYS = ("stream", *PROBE_KEYS)
HEARTBEAT_S = 30.0  # streamed epochs are long: trials' heartbeats are refreshed within them too


def run(config: dict[str, Any], out: Path) -> dict[str, Any]:
    params, sweep, seed = probe_settings(config, KEYS, "stream")
    if not config.get("stream"):
        raise UserError("stream.stream: no stream section (encoder, model, data, protocol)")
    return _run(config, Path(out), params, sweep, seed)


def _run(
    config: dict[str, Any], out: Path, params: ProbeParams, sweep: SweepConfig, seed: int
) -> dict[str, Any]:
    """Probe (single, heads or a sweep) on features the frozen encoder computes batch by batch."""
    stream = config["stream"]
    source = open_stream(stream)
    params.num_heads = params.num_heads or source.num_heads
    dims = {"num_classes": source.num_classes, "embed_dim": source.embed_dim}
    records = split_records(stream, "train")
    train_rows, val_rows = carve_rows(config, *record_columns(records))
    study = None
    if sweep.n_trials > 0:
        trials = ProgressWriter(out, "sweep", "trial").update
        study = run_stream_sweep(config, out / "study", on_progress=trials)
        res, params = best_trial_heads(study, out / "study", params, dims, source.device)
    else:
        train = StreamRows(source, records, train_rows)
        val = (
            StreamRows(source, records, val_rows, cache_mb=VAL_CACHE_MB) if len(val_rows) else None
        )
        with stop_on_signals() as stop:
            res = train_heads(
                train,
                val,
                params,
                seed=seed,
                device=source.device,
                checkpoint=out / "ckpt" / "heads.pt",
                stop=stop,
                on_progress=ProgressWriter(out, "probe", "epoch").update,
                **dims,
            )

    def test() -> Rows:
        records = split_records(stream, "eval")
        return StreamRows(source, records, np.arange(len(records)))

    metrics = report_heads(config, out, params, res, test, dims, len(train_rows))
    if study is not None:
        metrics["study"] = study
    return {
        **metrics,
        "features": "stream",
        "encoder_uid": source.uid,
        "stream": source.stats.to_dict(),
    }


# ----------------------------------------------------------------------------- sweep workers
def run_stream_sweep(
    config: Mapping[str, Any],
    study_dir: str | os.PathLike[str],
    on_progress: OnProgress | None = None,
) -> dict[str, Any]:
    """``run_sweep`` with streamed workers (in this process, or ``python -m`` this module)."""
    return run_sweep(
        config,
        study_dir,
        worker=run_stream_worker,
        module="vjepa.stages.stream",
        on_progress=on_progress,
    )


def run_stream_worker(
    config: Mapping[str, Any],
    study_dir: str | os.PathLike[str],
    worker_index: int | None = None,
    on_progress: OnProgress | None = None,
) -> dict[str, Any]:
    """Run trials of a streamed sweep until the shared budget is met (a ``run_worker`` twin).

    Trials in generations of ``sweep.heads_per_pass``, asked together and trained as the heads of
    one pass (``vjepa.eval.stream_sweep``); every head's validation top-1 is reported per epoch,
    and each finished trial's best head is kept in ``heads/trial-<number>.pt``."""
    config, worker_index, sweep, base = worker_settings(config, worker_index)
    study_dir = Path(study_dir)
    check_space(sweep.space)
    rows = stream_sweep_rows(config)
    study = load_study(config, study_dir, worker_index)
    seed = int(config.get("seed", 0))
    (study_dir / "heads").mkdir(parents=True, exist_ok=True)
    per_pass = sweep.heads_per_pass or DEFAULT_HEADS_PER_PASS
    report_trials(study, sweep.n_trials, on_progress)
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
        heads, params = generation_params(base, [suggest(t, sweep.space) for t in trials], rows)
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
            res = train_generation(rows, params, seed, on_epoch=report, on_batch=heartbeat)
        except BaseException:
            for t in trials:
                finish_trial(study, t, TrialState.FAIL)
            raise
        for k, t in enumerate(trials):
            if res.stopped[k]:
                finish_trial(study, t, TrialState.PRUNED)
                continue
            r = res.results[k]
            save_trial_head(study_dir, t.number, heads[k], r)
            t.set_user_attr("best_epoch", r.best_epoch)
            value = r.val_top1 if r.val_top1 is not None else float("nan")
            finish_trial(study, t, TrialState.COMPLETE, value)
        report_trials(study, sweep.n_trials, on_progress)
    return {**study_summary(study, sweep.n_trials), "stream": rows.source.stats.to_dict()}


if __name__ == "__main__":
    sys.exit(main(worker=run_stream_worker, prog="python -m vjepa.stages.stream"))
