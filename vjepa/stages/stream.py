"""Stage ``stream``: a probe on streamed features (the probe stage's twin for huge datasets).

No feature store: the stage reads the clips of the task's training split with the evaluation
protocol, runs the frozen encoder on every batch (``vjepa.eval.stream``) and trains the probe,
its heads (``probe.heads``) or a sweep's generations of trials (``vjepa.eval.stream_sweep``) on
the fly; the head is chosen on the validation carve-out before the evaluation split is read, once.
Its resume state goes to ``ckpt/heads.pt`` every epoch, every 10 minutes and on SIGTERM / SIGUSR2
(then it stops without publishing metrics); running the stage again continues from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

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
from vjepa.eval.stream_sweep import best_trial_heads, run_stream_sweep
from vjepa.eval.sweep import SweepConfig
from vjepa.stages.probe import PROBE_KEYS, probe_settings, report_heads
from vjepa.utils.signals import stop_on_signals

KEYS = ("stream", *PROBE_KEYS)


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
        study = run_stream_sweep(config, out / "study")
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
