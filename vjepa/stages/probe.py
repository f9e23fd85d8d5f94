"""Stage ``probe``: (optionally sweep, then) train a probe on stored features and report it.

The features are stores written by extract stages (``features: {train, eval}``); the ``stream``
stage is the same probe on features it encodes itself. With ``probe.heads`` it trains several
probes (one per lr/weight_decay setting) on one pass over the features, chooses one on the
validation rows, and reports every head and the chosen one.

Order matters for honesty: the sweep and model selection see only the validation rows carved from
the training labels; the evaluation store is opened once, after the probe is final.

``progress.json`` follows the phases: ``sweep`` (trials finished, best validation top-1), then
``probe`` (epochs, best validation top-1 and loss) for the probe trained or refit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa.errors import UserError
from vjepa.eval.heads import (
    HeadsResult,
    Rows,
    evaluate,
    evaluate_heads,
    head_params,
    train_heads,
    train_probe,
)
from vjepa.eval.probe_train import FeatureSet, ProbeParams
from vjepa.eval.splits import open_split, training_rows
from vjepa.eval.store import FeatureStore
from vjepa.eval.sweep import SweepConfig
from vjepa.utils.io import atomic_save
from vjepa.utils.keys import reject_unknown
from vjepa.utils.progress import ProgressWriter

# the keys of a probe config besides where its features come from (shared with ``stream``)
PROBE_KEYS = (
    "task",
    "probe",
    "label_fraction",
    "split_seed",
    "val_fraction",
    "seed",
    "sweep",
    "threads",
)
KEYS = ("features", *PROBE_KEYS)


def probe_settings(
    config: dict[str, Any], keys: tuple[str, ...], kind: str
) -> tuple[ProbeParams, SweepConfig, int]:
    """(probe params, sweep, seed) of a probe-like stage config, its keys and threads applied."""
    reject_unknown(config, keys, kind)
    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))
    params = ProbeParams.from_config(config.get("probe"))
    sweep = SweepConfig.from_config(config.get("sweep"))
    if params.heads is not None and sweep.n_trials > 0:
        raise UserError(
            "probe.heads and sweep are exclusive: a multi-head probe already trains a grid of "
            "lr/weight_decay settings; drop one of them"
        )
    return params, sweep, int(config.get("seed", 0))


def run(config: dict[str, Any], out: Path) -> dict[str, Any]:
    params, sweep, seed = probe_settings(config, KEYS, "probe")
    out = Path(out)
    store, train_rows, val_rows = training_rows(config)
    params.num_heads = params.num_heads or store.num_heads
    if params.heads is not None:
        return _run_heads(config, out, params, store, train_rows, val_rows, seed)
    study = None
    epochs = ProgressWriter(out, "probe", "epoch").update
    if sweep.n_trials > 0:
        from vjepa.stages.sweep_workers import run_sweep  # optuna: only a sweep pays its import

        trials = ProgressWriter(out, "sweep", "trial").update
        study = run_sweep(config, out / "study", on_progress=trials)
        if study["best_params"] is None:
            raise RuntimeError(f"sweep {study['study_name']}: no trial completed")
        params = ProbeParams(**{**params.to_dict(), **study["best_params"]})
        # refit on every fractioned label (train + validation) with the chosen settings
        train = FeatureSet(store, np.union1d(train_rows, val_rows), store.labels)
        val = None
    else:
        train = FeatureSet(store, train_rows, store.labels)
        val = FeatureSet(store, val_rows, store.labels) if len(val_rows) else None
    result = train_probe(
        train,
        val,
        params,
        num_classes=store.num_classes,
        embed_dim=store.embed_dim,
        seed=seed,
        on_progress=epochs,
    )
    val_top1 = study["best_value"] if study is not None else result.val_top1

    evals = open_split(config, "eval")  # first and only read of the evaluation split
    if evals.manifest["encoder"]["uid"] != store.manifest["encoder"]["uid"]:
        raise UserError("features.eval: extracted with another encoder than features.train")
    scores = evaluate(result.model, FeatureSet(evals, np.nonzero(evals.valid)[0], evals.labels))

    state = {f"module.{k}": v for k, v in result.model.state_dict().items()}
    ckpt = {
        "classifier": state,
        "epoch": result.best_epoch + 1,
        "params": params.to_dict(),
        "num_classes": store.num_classes,
        "embed_dim": store.embed_dim,
    }
    atomic_save(out / "probe.pt", lambda tmp: torch.save(ckpt, tmp))
    task = store.manifest.get("task")
    return metrics_row(config, task, params, len(train), scores, study, val_top1, result.best_epoch)


def metrics_row(
    config: dict[str, Any],
    task: str | None,
    params: ProbeParams,
    n_train: int,
    scores: dict[str, Any],
    study: Any,
    val_top1: float | None,
    best_epoch: int,
) -> dict[str, Any]:
    """The probe's metrics row (the reported scores are those of the probe or head kept)."""
    return {
        "top1": scores["top1"],
        "top5": scores["top5"],
        "n_train": n_train,
        "n_eval": scores["n"],
        "label_fraction": float(config.get("label_fraction", 1.0)),
        "split_seed": int(config.get("split_seed", 0)),
        "task": config.get("task") or task,
        "kind": params.kind,
        "params": params.to_dict(),
        "study": study,
        "val_top1": val_top1,
        "best_epoch": best_epoch,
    }


def _run_heads(
    config: dict[str, Any],
    out: Path,
    params: ProbeParams,
    store: FeatureStore,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    seed: int,
) -> dict[str, Any]:
    """Multi-head probe on stored features."""
    train = FeatureSet(store, train_rows, store.labels)
    val = FeatureSet(store, val_rows, store.labels) if len(val_rows) else None
    dims = {"num_classes": store.num_classes, "embed_dim": store.embed_dim}
    epochs = ProgressWriter(out, "probe", "epoch").update
    res = train_heads(train, val, params, seed=seed, on_progress=epochs, **dims)

    def test() -> Rows:
        evals = open_split(config, "eval")  # first and only read of the evaluation split
        if evals.manifest["encoder"]["uid"] != store.manifest["encoder"]["uid"]:
            raise UserError("features.eval: extracted with another encoder than features.train")
        return FeatureSet(evals, np.nonzero(evals.valid)[0], evals.labels)

    metrics = report_heads(config, out, params, res, test, dims, len(train))
    return {**metrics, "task": config.get("task") or store.manifest.get("task")}


def report_heads(
    config: dict[str, Any],
    out: Path,
    params: ProbeParams,
    res: HeadsResult,
    test: Any,
    dims: dict[str, int],
    n_train: int,
) -> dict[str, Any]:
    """Evaluate every head's kept state on the test rows (opened by ``test()`` only now, after
    the head was chosen on validation), save the chosen head, and report it (every head too when
    there are several)."""
    chosen, result = res.chosen, res.results[res.chosen]
    scores = evaluate_heads([r.model for r in res.results], test())
    state = {f"module.{k}": v.cpu() for k, v in result.model.state_dict().items()}
    single = params.heads is None
    ckpt = {
        "classifier": state,
        "epoch": result.best_epoch + 1,
        "params": (params if single else head_params(params, chosen)).to_dict(),
        **dims,
        **({} if single else {"chosen_head": chosen}),
    }
    atomic_save(out / "probe.pt", lambda tmp: torch.save(ckpt, tmp))
    metrics = metrics_row(
        config, None, params, n_train, scores[chosen], None, result.val_top1, result.best_epoch
    )
    if single:
        return metrics
    heads = [
        {
            "lr": h["lr"],
            "weight_decay": h["weight_decay"],
            "val_top1": r.val_top1,
            "epoch": r.best_epoch,
            "top1": s["top1"],
            "top5": s["top5"],
        }
        for h, r, s in zip(res.settings, res.results, scores, strict=True)
    ]
    return {**metrics, "heads": heads, "chosen_head": chosen}
