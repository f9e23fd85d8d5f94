"""Optuna sweeps of probe hyper-parameters on stored features: the search and one trial.

The objective is the validation top-1 of a probe trained on the training rows (the carve-out of
``vjepa.eval.splits``; maximised). A trial draws its settings from the search space
(``sweep.space``, Optuna's typed ``suggest`` API) over the base ``probe`` settings, trains one probe
and is scored by the best validation top-1 over its epochs; the pruner (median or hyperband)
reads that score after every epoch. The sampler is seeded per worker (TPE with constant liar, so
workers that ask together are kept apart).

What a sweep may see: the training store only. ``without_eval`` drops ``features.eval`` from the
config before anything else; the evaluation split is opened by the probe stage after the study
ends. The worker processes that share one study (file locks, heartbeats, dead workers, the
trial budget) are ``vjepa.stages.sweep_workers``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vjepa.errors import UserError
from vjepa.eval.modes import PARAM_TYPES, PRUNERS, SAMPLERS
from vjepa.utils.keys import reject_unknown
from vjepa.utils.secrets import mask, resolve

# torch, optuna and the probe code load inside the functions that use them: the pipeline reads
# this module's config checks (``range_problem``, ``SweepConfig``) at compile time, without them
if TYPE_CHECKING:
    from torch import nn

    from vjepa.eval.probe_train import FeatureSet, ProbeParams, ProbeResult
    from vjepa.eval.store import FeatureStore


@dataclass
class SweepConfig:
    """The ``sweep`` section of a probe stage config."""

    n_trials: int = 0
    sampler: str = "tpe"
    pruner: str = "median"
    workers: int = 1
    storage: str | None = None
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    stale_after_s: float = 600.0
    study_name: str | None = None
    # streamed features: trials trained together as heads on one encoder pass (None: 16)
    heads_per_pass: int | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> SweepConfig:
        cfg = dict(cfg or {})
        reject_unknown(cfg, cls.__dataclass_fields__, "sweep")
        sc = cls(**cfg)
        if sc.sampler not in SAMPLERS:
            raise UserError(f"sweep.sampler: {sc.sampler!r} is not one of {', '.join(SAMPLERS)}")
        if sc.pruner not in PRUNERS:
            raise UserError(f"sweep.pruner: {sc.pruner!r} is not one of {', '.join(PRUNERS)}")
        if sc.n_trials < 0 or sc.workers < 1:
            raise UserError("sweep: n_trials must be >= 0 and workers >= 1")
        if sc.heads_per_pass is not None and sc.heads_per_pass < 1:
            raise UserError(f"sweep.heads_per_pass: must be >= 1, got {sc.heads_per_pass}")
        return sc


# ----------------------------------------------------------------------------- search space
def validate_space(space: Mapping[str, Mapping[str, Any]], param_names: set[str]) -> None:
    """Every entry names a probe setting and has a known type with the fields that type needs."""
    for name, spec in space.items():
        where = f"sweep.space.{name}"
        if name not in param_names:
            raise UserError(
                f"{where}: not a probe setting (known: {', '.join(sorted(param_names))})"
            )
        kind = spec.get("type")
        if kind not in PARAM_TYPES:
            raise UserError(f"{where}.type: {kind!r} is not one of {', '.join(PARAM_TYPES)}")
        problem = range_problem(spec)
        if problem:
            raise UserError(f"{where}: {problem}")


def range_problem(spec: Mapping[str, Any]) -> str | None:
    """What is wrong with one search-space entry's range (the one rule the compiler and the
    worker both apply), or None."""
    if spec.get("type") == "categorical":
        return None if spec.get("choices") else "a categorical parameter needs choices"
    low, high = spec.get("low"), spec.get("high")
    if low is None or high is None:
        return f"a {spec.get('type')} range needs low and high"
    if low >= high:
        return f"low {low} must be below high {high}"
    if spec.get("log") and low <= 0:
        return "a log range needs low > 0"
    return None


def suggest(trial: Any, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Draw one value per space entry through Optuna's typed suggest API."""
    out = {}
    for name, spec in space.items():
        kind = spec["type"]
        if kind == "float":
            out[name] = trial.suggest_float(
                name,
                float(spec["low"]),
                float(spec["high"]),
                log=bool(spec.get("log", False)),
                step=spec.get("step"),
            )
        elif kind == "int":
            out[name] = trial.suggest_int(
                name,
                int(spec["low"]),
                int(spec["high"]),
                log=bool(spec.get("log", False)),
                step=int(spec.get("step", 1)),
            )
        else:
            out[name] = trial.suggest_categorical(name, list(spec["choices"]))
    return out


# ----------------------------------------------------------------------------- storage, study
def open_storage(spec: str | None, study_dir: Path) -> Any:
    """A journal file in ``study_dir`` (default), a journal file path, or an RDB URL; or
    ``env:NAME``: either of those read from the environment variable NAME now, in the process
    that opens the study (so a database password is never written to a config, a log or a
    job file; PostgreSQL also takes it from PGPASSWORD or ~/.pgpass)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    spec = resolve(spec, "sweep.storage")
    if spec and "://" in spec:
        kwargs = {"connect_args": {"timeout": 60}} if spec.startswith("sqlite") else {}
        # Workers that start together on a fresh database all create Optuna's tables at once;
        # all but one may fail on the catalogue's unique constraints: try again, then give up.
        for attempt in range(3):
            try:
                return optuna.storages.RDBStorage(spec, engine_kwargs=kwargs)
            except Exception as exc:  # noqa: BLE001 - driver errors: one line, password masked
                if attempt < 2:
                    time.sleep(0.5 + random.random())
                    continue
                text = str(exc).strip()
                first = text.splitlines()[0] if text else type(exc).__name__
                raise UserError(f"sweep.storage: cannot open {mask(spec)}: {mask(first)}") from None
    path = Path(spec) if spec else study_dir / "study.journal"
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def study_name_for(config: Mapping[str, Any], sweep: SweepConfig) -> str:
    """A name that differs between probe configs, so one database can hold many studies."""
    if sweep.study_name:
        return sweep.study_name
    keyed = {k: v for k, v in config.items() if k not in ("features", "sweep")}
    keyed["train"] = str((config.get("features") or {}).get("train"))
    keyed["space"] = sweep.space
    digest = hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()
    return f"probe-{digest[:12]}"


def make_sampler(sweep: SweepConfig, seed: int, worker_index: int) -> Any:
    """Seeded per worker: equal seeds would make workers propose the same start-up points."""
    import optuna

    s = seed * 1000 + worker_index
    if sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=s)
    return optuna.samplers.TPESampler(seed=s, constant_liar=True)


def make_pruner(sweep: SweepConfig, max_epochs: int) -> Any:
    import optuna

    if sweep.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    if sweep.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, max_epochs))
    return optuna.pruners.NopPruner()


def load_study(config: Mapping[str, Any], study_dir: str | os.PathLike[str], worker_index: int = 0):
    """Create or join the study of ``config`` (direction: maximise validation top-1)."""
    import optuna

    sweep = SweepConfig.from_config(config.get("sweep"))
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    max_epochs = max(
        [int(config.get("probe", {}).get("epochs", 20))]
        + [int(s.get("high", 0)) for n, s in sweep.space.items() if n == "epochs"]
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        storage=open_storage(sweep.storage, study_dir),
        study_name=study_name_for(config, sweep),
        direction="maximize",
        sampler=make_sampler(sweep, int(config.get("seed", 0)), worker_index),
        pruner=make_pruner(sweep, max_epochs),
        load_if_exists=True,
    )


def study_summary(study: Any, n_trials: int | None = None) -> dict[str, Any]:
    """Counts and the best trial, built from ``study.trials`` (no pandas needed)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    count = lambda s: sum(t.state == s for t in trials)  # noqa: E731
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    return {
        "study_name": study.study_name,
        "n_trials": n_trials,
        "n_complete": count(TrialState.COMPLETE),
        "n_pruned": count(TrialState.PRUNED),
        "n_failed": count(TrialState.FAIL),
        "n_running": count(TrialState.RUNNING),
        "best_value": best.value if best else None,
        "best_params": dict(best.params) if best else None,
        "best_trial": best.number if best else None,
        "best_epoch": best.user_attrs.get("best_epoch") if best else None,
    }


# ----------------------------------------------------------------------------- what a sweep sees
def without_eval(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config a sweep is allowed to see: the evaluation store path (or split) removed."""
    cfg = json.loads(json.dumps(config, default=str))
    if cfg.get("stream") is not None:
        data = cfg["stream"].get("data") or {}
        cfg["stream"]["data"] = {k: v for k, v in data.items() if k != "eval"}
    else:
        cfg["features"] = {"train": (cfg.get("features") or {}).get("train")}
    return cfg


# ----------------------------------------------------------------------------- one trial
@dataclass
class SweepRows:
    """The rows every trial of a sweep on stored features trains on and is scored on."""

    store: FeatureStore
    train: FeatureSet
    val: FeatureSet


def sweep_rows(config: Mapping[str, Any]) -> SweepRows:
    """The training and validation rows of a sweep config (whose evaluation split is removed)."""
    from vjepa.eval.probe_train import FeatureSet
    from vjepa.eval.splits import training_rows

    store, train_rows, val_rows = training_rows(config, split="sweep")
    if len(val_rows) == 0:
        raise UserError(
            "val_fraction: a sweep needs validation rows carved from the training labels"
        )
    return SweepRows(
        store,
        FeatureSet(store, train_rows, store.labels),
        FeatureSet(store, val_rows, store.labels),
    )


def trial_params(base: ProbeParams, drawn: Mapping[str, Any], rows: SweepRows) -> ProbeParams:
    """The probe settings of one trial: ``base`` with the ``drawn`` values."""
    from vjepa.eval.probe_train import ProbeParams

    params = ProbeParams(**{**base.to_dict(), **drawn})
    if params.kind == "attentive":
        params.num_heads = params.num_heads or rows.store.num_heads
        if rows.store.embed_dim % int(params.num_heads):
            raise UserError(
                f"sweep.space.num_heads: {params.num_heads} does not divide "
                f"embed_dim {rows.store.embed_dim}"
            )
    return params


def train_trial(
    rows: SweepRows,
    params: ProbeParams,
    seed: int,
    on_epoch: Callable[[int, float | None, nn.Module], None] | None = None,
) -> ProbeResult:
    """Train one trial's probe; its score is ``val_top1``, the best validation top-1 over its
    epochs. ``on_epoch(epoch, val_top1, model)`` is where a pruner reads (and may stop) it."""
    import torch

    from vjepa.eval.heads import train_probe

    torch.manual_seed(seed)
    return train_probe(
        rows.train,
        rows.val,
        params,
        num_classes=rows.store.num_classes,
        embed_dim=rows.store.embed_dim,
        seed=seed,
        on_epoch=on_epoch,
    )


__all__ = [
    "SweepConfig",
    "SweepRows",
    "load_study",
    "study_summary",
    "suggest",
    "sweep_rows",
    "train_trial",
    "trial_params",
    "validate_space",
    "without_eval",
]
