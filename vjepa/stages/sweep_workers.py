"""The worker processes of a probe sweep: many workers, one Optuna study, an exact budget.

The search itself (space, objective, how a trial trains and is scored) is ``vjepa.eval.sweep``
(stored features) and ``vjepa.eval.stream_sweep`` (streamed features, a generation of trials per
encoder pass). This module runs it in as many processes as ``sweep.workers`` asks, or as a SLURM
job array, sharing one study (a journal file by default, or an RDB URL):

- Global trial cap. Under a file lock in the study folder, a worker counts finished (COMPLETE,
  PRUNED) and RUNNING trials and asks for a new one only while their sum is below ``n_trials``;
  failed trials do not count, so exactly ``n_trials`` trials finish. Workers that find the budget
  taken wait for the running trials (which may die) instead of leaving.
- Dead workers. The journal has no heartbeat, so each trial records its owner (host, pid, process
  start time) and a heartbeat time in its user attributes, refreshed every epoch (streamed: also
  within the long epochs). A RUNNING trial whose owner process is gone on this host,
  or whose heartbeat is older than ``stale_after_s``, is failed, and its parameters are enqueued
  again (``retry_of``) so the budget is still met.

``python -m vjepa.stages.sweep_workers CONFIG STUDY_DIR [--index I]`` is one worker on stored
features; the streamed worker (``vjepa.stages.stream``) runs on the same machinery, kept apart so
that a probe on stored features does not depend on the streaming code (``code_deps``).
``on_progress(done, n_trials, {"best_val": ...})`` hears the finished trials and the best
validation top-1 so far.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from optuna.trial import TrialState

from vjepa.errors import UserError
from vjepa.eval.probe_train import ProbeParams
from vjepa.eval.sweep import (
    SweepConfig,
    load_study,
    study_summary,
    suggest,
    sweep_rows,
    train_trial,
    trial_params,
    validate_space,
    without_eval,
)

POLL_S = 0.5

# ``on_progress(done, total, figures)``: trials finished of the budget (progress.json)
OnProgress = Callable[[int, int, Mapping[str, float]], None]
Worker = Callable[..., dict[str, Any]]


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


def finish_trial(study: Any, trial: Any, state: Any, value: float | None = None) -> None:
    """Finish a trial; if a reaper already failed it (we looked dead), keep its verdict."""
    try:
        study.tell(trial, value if value is not None else None, state=state)
    except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
        pass


def report_trials(study: Any, n_trials: int, on_progress: OnProgress | None) -> None:
    """Trials finished (complete or pruned) of ``n_trials`` and the best value so far."""
    if on_progress is None:
        return
    s = study_summary(study, n_trials)
    figures = {} if s["best_value"] is None else {"best_val": s["best_value"]}
    on_progress(s["n_complete"] + s["n_pruned"], n_trials, figures)


# ----------------------------------------------------------------------------- the workers
def worker_settings(
    config: Mapping[str, Any], worker_index: int | None
) -> tuple[dict[str, Any], int, SweepConfig, ProbeParams]:
    """What a worker may see (no evaluation split), its index (a SLURM array's task id by
    default: it seeds the sampler), the sweep and the base probe settings."""
    if worker_index is None:
        worker_index = int(os.environ.get("SLURM_ARRAY_TASK_ID", "0"))
    config = without_eval(config)
    sweep = SweepConfig.from_config(config.get("sweep"))
    return config, worker_index, sweep, ProbeParams.from_config(config.get("probe"))


def run_worker(
    config: Mapping[str, Any],
    study_dir: str | os.PathLike[str],
    worker_index: int | None = None,
    on_progress: OnProgress | None = None,
) -> dict[str, Any]:
    """Run trials of the probe study of ``config`` until the shared budget is met.

    Usable from any process: subprocesses of the probe stage, a SLURM job array (the array index
    seeds the sampler), or by hand. Returns the study summary as this worker last saw it.
    """
    if config.get("stream") is not None:
        raise UserError(
            "a sweep on streamed features runs vjepa.stages.stream's worker, not this one"
        )
    config, worker_index, sweep, base = worker_settings(config, worker_index)
    study_dir = Path(study_dir)
    validate_space(sweep.space, set(base.to_dict()))
    rows = sweep_rows(config)
    study = load_study(config, study_dir, worker_index)
    seed = int(config.get("seed", 0))
    report_trials(study, sweep.n_trials, on_progress)
    while (trial := claim_trial(study, study_dir, sweep.n_trials, sweep.stale_after_s)) is not None:
        params = trial_params(base, suggest(trial, sweep.space), rows)

        def report(epoch: int, val_top1: float | None, _model: Any, trial: Any = trial) -> None:
            trial.report(float(val_top1), epoch)
            trial.set_user_attr("heartbeat", time.time())
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            result = train_trial(rows, params, seed, on_epoch=report)
        except optuna.TrialPruned:
            finish_trial(study, trial, TrialState.PRUNED)
            report_trials(study, sweep.n_trials, on_progress)
            continue
        except BaseException:
            finish_trial(study, trial, TrialState.FAIL)
            raise
        trial.set_user_attr("best_epoch", result.best_epoch)
        finish_trial(study, trial, TrialState.COMPLETE, result.val_top1)
        report_trials(study, sweep.n_trials, on_progress)
    return study_summary(study, sweep.n_trials)


# ----------------------------------------------------------------------------- many workers
def run_sweep(
    config: Mapping[str, Any],
    study_dir: str | os.PathLike[str],
    worker: Worker | None = None,
    module: str = "vjepa.stages.sweep_workers",
    on_progress: OnProgress | None = None,
) -> dict[str, Any]:
    """Run the study with ``sweep.workers`` workers (1: ``worker`` in this process; more:
    ``python -m module`` subprocesses, one thread each) and return its summary. A rerun resumes
    the same study. ``worker`` defaults to ``run_worker`` (stored features)."""
    sweep = SweepConfig.from_config(config.get("sweep"))
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    cfg = without_eval(config)
    if sweep.workers == 1:
        return (worker or run_worker)(cfg, study_dir, 0, on_progress=on_progress)
    study = load_study(cfg, study_dir)  # tables and study exist before the workers race
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
    while any(p.poll() is None for p in procs):
        report_trials(study, sweep.n_trials, on_progress)
        time.sleep(1.0 if on_progress is not None else POLL_S)
    errors = []
    for i, p in enumerate(procs):
        if p.wait():
            lines = (study_dir / f"worker-{i}.log").read_text().strip().splitlines()
            errors.append(f"worker {i}: {lines[-1] if lines else f'exit {p.returncode}'}")
    if errors:
        raise RuntimeError("sweep workers failed: " + "; ".join(errors))
    summary = study_summary(load_study(cfg, study_dir), sweep.n_trials)
    if on_progress is not None:
        best = {} if summary["best_value"] is None else {"best_val": summary["best_value"]}
        on_progress(summary["n_complete"] + summary["n_pruned"], sweep.n_trials, best)
    return summary


def main(
    argv: list[str] | None = None,
    worker: Worker | None = None,
    prog: str = "python -m vjepa.stages.sweep_workers",
) -> int:
    """``python -m vjepa.stages.sweep_workers CONFIG STUDY_DIR [--index I]``: one sweep worker."""
    ap = argparse.ArgumentParser(prog=prog, description=main.__doc__)
    ap.add_argument("config", type=Path, help="probe or stream stage config (JSON or YAML)")
    ap.add_argument("study_dir", type=Path)
    ap.add_argument("--index", type=int, default=None, help="worker index (seeds the sampler)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(args.config.read_text())
    summary = (worker or run_worker)(config, args.study_dir, args.index)
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
