"""Optuna sweeps of probe hyper-parameters on stored features, shared by many worker processes.

What a sweep may see: the training store only. ``run_worker`` drops ``features.eval`` from its
config before anything else, carves the validation rows from the (fractioned) training labels and
maximises validation top-1; the evaluation split is opened by the probe stage after the study ends.

Many workers, one study (a journal file by default, or an RDB URL):
- Global trial cap. Under a file lock in the study folder, a worker counts finished (COMPLETE,
  PRUNED) and RUNNING trials and asks for a new one only while their sum is below ``n_trials``;
  failed trials do not count, so exactly ``n_trials`` trials finish. Workers that find the budget
  taken wait for the running trials (which may die) instead of leaving.
- Dead workers. The journal has no heartbeat, so each trial records its owner (host, pid, process
  start time) and a heartbeat time in its user attributes, refreshed every epoch. A RUNNING trial
  whose owner process is gone on this host, or whose heartbeat is older than ``stale_after_s``, is
  failed, and its parameters are enqueued again (``retry_of``) so the budget is still met.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import random
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vjepa.errors import UserError
from vjepa.eval.modes import PARAM_TYPES, PRUNERS, SAMPLERS
from vjepa.utils.keys import reject_unknown
from vjepa.utils.secrets import mask, resolve

POLL_S = 0.5


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


# ----------------------------------------------------------------------------- worker liveness
def _proc_start_ticks(pid: int) -> str | None:
    """Start time of ``pid`` from /proc (None if gone or a zombie); guards against pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat.rsplit(")", 1)[1].split()
    return None if rest[0] in ("Z", "X") else rest[19]


def owner_record() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _proc_start_ticks(pid)}


def owner_alive(owner: Mapping[str, Any]) -> bool | None:
    """True/False for an owner on this host; None when it runs elsewhere (cannot tell)."""
    if owner.get("host") != socket.gethostname():
        return None
    if Path("/proc").is_dir():
        ticks = _proc_start_ticks(int(owner["pid"]))
        return ticks is not None and (owner.get("start") in (None, ticks))
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale(study: Any, stale_after_s: float) -> list[int]:
    """Fail RUNNING trials of dead or silent workers and enqueue their parameters again."""
    import optuna
    from optuna.trial import TrialState

    reaped = []
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get("owner")
        beat = t.user_attrs.get("heartbeat") or (
            t.datetime_start.timestamp() if t.datetime_start else now
        )
        alive = owner_alive(owner) if owner else None
        if alive is False:
            reason = "worker process died"
        elif now - beat > stale_after_s:
            reason = f"no heartbeat for {now - beat:.0f} s"
        else:
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, "fail_reason", reason)
            study.tell(t.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # finished meanwhile by its owner or another reaper
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        reaped.append(t.number)
    return reaped


@contextlib.contextmanager
def study_lock(study_dir: Path) -> Iterator[None]:
    """Serialise count-then-ask between workers sharing ``study_dir``."""
    with open(study_dir / ".ask.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def claim_trial(
    study: Any, study_dir: Path, n_trials: int, stale_after_s: float, wait: bool = True
) -> Any | None:
    """A new trial owned by this process, or None when the budget is done. Waits while every
    remaining trial is running elsewhere (``wait=False``: returns None then)."""
    from optuna.trial import TrialState

    while True:
        with study_lock(study_dir):
            reap_stale(study, stale_after_s)
            states = [t.state for t in study.get_trials(deepcopy=False)]
            done = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
            running = sum(s == TrialState.RUNNING for s in states)
            if done >= n_trials:
                return None
            if done + running < n_trials:
                trial = study.ask()
                trial.set_user_attr("owner", owner_record())
                trial.set_user_attr("heartbeat", time.time())
                return trial
        if not wait:
            return None
        time.sleep(POLL_S)


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


# ----------------------------------------------------------------------------- the worker
def without_eval(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config a sweep is allowed to see: the evaluation store path (or split) removed."""
    cfg = json.loads(json.dumps(config, default=str))
    if cfg.get("stream") is not None:
        data = cfg["stream"].get("data") or {}
        cfg["stream"]["data"] = {k: v for k, v in data.items() if k != "eval"}
    else:
        cfg["features"] = {"train": (cfg.get("features") or {}).get("train")}
    return cfg


def worker_settings(
    config: Mapping[str, Any], worker_index: int | None
) -> tuple[dict[str, Any], int, SweepConfig, Any]:
    """What a worker may see (no evaluation split), its index (a SLURM array's task id by
    default: it seeds the sampler), the sweep and the base probe settings."""
    from vjepa.eval.probe_train import ProbeParams

    if worker_index is None:
        worker_index = int(os.environ.get("SLURM_ARRAY_TASK_ID", "0"))
    config = without_eval(config)
    sweep = SweepConfig.from_config(config.get("sweep"))
    return config, worker_index, sweep, ProbeParams.from_config(config.get("probe"))


def run_worker(
    config: Mapping[str, Any], study_dir: str | os.PathLike[str], worker_index: int | None = None
) -> dict[str, Any]:
    """Run trials of the probe study of ``config`` until the shared budget is met.

    Usable from any process: subprocesses of the probe stage, a SLURM job array (the array index
    seeds the sampler), or by hand. Returns the study summary as this worker last saw it.
    """
    import optuna
    import torch

    from vjepa.eval.heads import train_probe
    from vjepa.eval.probe_train import FeatureSet, ProbeParams
    from vjepa.eval.splits import training_rows

    if config.get("stream") is not None:
        raise UserError(
            "a sweep on streamed features runs vjepa.eval.stream_sweep, not this worker"
        )
    config, worker_index, sweep, base = worker_settings(config, worker_index)
    study_dir = Path(study_dir)
    validate_space(sweep.space, set(base.to_dict()))
    store, train_rows, val_rows = training_rows(config, split="sweep")
    if len(val_rows) == 0:
        raise UserError(
            "val_fraction: a sweep needs validation rows carved from the training labels"
        )
    train = FeatureSet(store, train_rows, store.labels)
    val = FeatureSet(store, val_rows, store.labels)
    study = load_study(config, study_dir, worker_index)
    seed = int(config.get("seed", 0))
    while (trial := claim_trial(study, study_dir, sweep.n_trials, sweep.stale_after_s)) is not None:
        params = ProbeParams(**{**base.to_dict(), **suggest(trial, sweep.space)})
        if params.kind == "attentive":
            params.num_heads = params.num_heads or store.num_heads
            if store.embed_dim % int(params.num_heads):
                raise UserError(
                    f"sweep.space.num_heads: {params.num_heads} does not divide "
                    f"embed_dim {store.embed_dim}"
                )

        def report(epoch: int, val_top1: float | None, _model: Any, trial: Any = trial) -> None:
            trial.report(float(val_top1), epoch)
            trial.set_user_attr("heartbeat", time.time())
            if trial.should_prune():
                raise optuna.TrialPruned()

        torch.manual_seed(seed)
        try:
            result = train_probe(
                train,
                val,
                params,
                num_classes=store.num_classes,
                embed_dim=store.embed_dim,
                seed=seed,
                on_epoch=report,
            )
        except optuna.TrialPruned:
            finish_trial(study, trial, optuna.trial.TrialState.PRUNED)
            continue
        except BaseException:
            finish_trial(study, trial, optuna.trial.TrialState.FAIL)
            raise
        trial.set_user_attr("best_epoch", result.best_epoch)
        finish_trial(study, trial, optuna.trial.TrialState.COMPLETE, result.val_top1)
    return study_summary(study, sweep.n_trials)


def finish_trial(study: Any, trial: Any, state: Any, value: float | None = None) -> None:
    """Finish a trial; if a reaper already failed it (we looked dead), keep its verdict."""
    import optuna

    try:
        study.tell(trial, value if value is not None else None, state=state)
    except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
        pass


def main(
    argv: list[str] | None = None,
    worker: Callable[..., dict[str, Any]] | None = None,
    prog: str = "python -m vjepa.eval.sweep",
) -> int:
    """``python -m vjepa.eval.sweep CONFIG.json STUDY_DIR [--index I]``: one sweep worker."""
    ap = argparse.ArgumentParser(prog=prog, description=main.__doc__)
    ap.add_argument("config", type=Path, help="probe stage config (JSON or YAML)")
    ap.add_argument("study_dir", type=Path)
    ap.add_argument("--index", type=int, default=None, help="worker index (seeds the sampler)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch
    import yaml

    torch.set_num_threads(args.threads)
    config = yaml.safe_load(args.config.read_text())
    summary = (worker or run_worker)(config, args.study_dir, args.index)
    print(json.dumps(summary, default=str))
    return 0


def run_sweep(
    config: Mapping[str, Any],
    study_dir: str | os.PathLike[str],
    worker: Callable[..., dict[str, Any]] | None = None,
    module: str = "vjepa.eval.sweep",
) -> dict[str, Any]:
    """Run the study with ``sweep.workers`` workers (1: ``worker`` in this process; more:
    ``python -m module`` subprocesses, one thread each) and return its summary. A rerun resumes
    the same study. ``worker`` defaults to ``run_worker`` (stored features)."""
    import subprocess

    import yaml

    sweep = SweepConfig.from_config(config.get("sweep"))
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    cfg = without_eval(config)
    if sweep.workers == 1:
        return (worker or run_worker)(cfg, study_dir, 0)
    load_study(cfg, study_dir)  # tables and study exist before the workers race to create them
    cfg_path = study_dir / "sweep-config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=True))
    procs = []
    for i in range(sweep.workers):
        with open(study_dir / f"worker-{i}.log", "w") as log:  # files: pipes could fill and block
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        module,
                        str(cfg_path),
                        str(study_dir),
                        "--index",
                        str(i),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    errors = []
    for i, p in enumerate(procs):
        if p.wait():
            lines = (study_dir / f"worker-{i}.log").read_text().strip().splitlines()
            errors.append(f"worker {i}: {lines[-1] if lines else f'exit {p.returncode}'}")
    if errors:
        raise RuntimeError("sweep workers failed: " + "; ".join(errors))
    return study_summary(load_study(cfg, study_dir), sweep.n_trials)


__all__ = ["SweepConfig", "load_study", "reap_stale", "run_sweep", "run_worker", "study_summary"]


if __name__ == "__main__":
    sys.exit(main())
