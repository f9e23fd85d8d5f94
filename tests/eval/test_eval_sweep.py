"""Optuna sweeps on stored features: real journal/SQLite storages, real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch
import yaml
from optuna.trial import TrialState

from vjepa.eval.store import write_array_store
from vjepa.eval.sweep import load_study
from vjepa.stages import run_stage
from vjepa.stages.sweep_workers import run_sweep, run_worker

SWEEP_CODE = ("vjepa/eval/sweep.py", "vjepa/stages/sweep_workers.py")

torch.set_num_threads(1)


def make_store(root: Path, n: int = 160, classes: int = 4, seed: int = 0) -> Path:
    """Tokens [n, 1 segment, 1 view, 4 tokens, 16 dims]; one token carries a class prototype."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    x = torch.randn(n, 1, 1, 4, 16, generator=g)
    x[:, 0, 0, 1] += (
        2.0 * torch.randn(classes, 16, generator=torch.Generator().manual_seed(9))[labels]
    )
    write_array_store(
        root, x, labels.numpy(), num_heads=2, rows_per_shard=64, task="motion", encoder_uid="enc"
    )
    return root


def make_config(train: Path, eval_path: Path, n_trials: int, epochs: int = 3, **sweep) -> dict:
    return {
        "features": {"train": str(train), "eval": str(eval_path)},
        "task": "motion",
        "probe": {"kind": "attentive", "lr": 5e-3, "epochs": epochs, "batch_size": 32},
        "val_fraction": 0.25,
        "seed": 0,
        "sweep": {
            "n_trials": n_trials,
            "pruner": "none",
            "space": {"lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True}},
            **sweep,
        },
    }


def start_worker(cfg_path: Path, study_dir: Path, index: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vjepa.stages.sweep_workers",
            str(cfg_path),
            str(study_dir),
            "--index",
            str(index),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_workers_share_one_journal_with_an_exact_budget(tmp_path):
    train = make_store(tmp_path / "train")
    cfg = make_config(train, tmp_path / "eval-does-not-exist", n_trials=8)
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    study_dir = tmp_path / "study"
    procs = [start_worker(cfg_path, study_dir, i) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert (study_dir / "study.journal").is_file()
    trials = load_study(cfg, study_dir).get_trials(deepcopy=False)
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 8
    assert len(trials) == 8  # no surplus, failed or waiting trials
    assert len({t.number for t in trials}) == 8
    assert len({t.params["lr"] for t in trials}) == 8  # per-worker sampler seeds: no duplicates
    assert {t.user_attrs["owner"]["pid"] for t in trials} <= {p.pid for p in procs}


def test_killed_worker_trial_is_failed_and_retried(tmp_path):
    train = make_store(tmp_path / "train", n=200)
    cfg = make_config(train, tmp_path / "no-eval", n_trials=3, epochs=60)
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    study_dir = tmp_path / "study"
    victim = start_worker(cfg_path, study_dir, 0)
    deadline = time.time() + 90
    running = None
    while time.time() < deadline and running is None:
        time.sleep(0.2)
        if (study_dir / "study.journal").is_file():
            for t in load_study(cfg, study_dir).get_trials(states=(TrialState.RUNNING,)):
                if t.intermediate_values:  # mid-trial: at least one epoch reported
                    running = t
    assert running is not None, "the first worker never reached a trial"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    cfg["probe"]["epochs"] = 60
    summary = run_worker(cfg, study_dir, worker_index=1)  # the next worker, in this process
    trials = load_study(cfg, study_dir).get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    dead = next(t for t in trials if t.number == running.number)
    assert dead.state == TrialState.FAIL and dead.user_attrs["fail_reason"] == "worker process died"
    retry = [t for t in trials if t.user_attrs.get("retry_of") == running.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == running.params
    assert summary["n_complete"] == 3 and summary["n_failed"] == 1


def test_sqlite_storage_and_pruning(tmp_path):
    train = make_store(tmp_path / "train")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    cfg = make_config(
        train, tmp_path / "no-eval", n_trials=10, epochs=6, storage=url, pruner="median"
    )
    cfg["sweep"]["space"]["lr"]["low"] = 1e-6  # many hopeless trials to prune
    summary = run_worker(cfg, tmp_path / "study")
    assert summary["n_complete"] + summary["n_pruned"] == 10
    assert summary["n_pruned"] >= 1 and summary["best_value"] > 40.0
    assert (tmp_path / "study.db").is_file()


def test_probe_stage_with_sweep_never_reads_the_eval_split(tmp_path):
    """Every open of an eval-store file is recorded with its call stack: none comes from the
    sweep, and all happen after it (the stage reads the eval split once, at the end)."""
    train = make_store(tmp_path / "train")
    evals = make_store(tmp_path / "eval", n=40, seed=1)
    cfg = make_config(train, evals, n_trials=4)
    opens: list[tuple[str, bool]] = []
    eval_root = str(evals)

    def hook(event, args):
        if event == "open" and isinstance(args[0], str | os.PathLike):
            path = os.fspath(args[0])
            if isinstance(path, str) and path.startswith(eval_root):
                stack = "".join(traceback.format_stack())
                opens.append((path, any(code in stack for code in SWEEP_CODE)))

    sys.addaudithook(hook)
    try:
        metrics = run_stage("probe", cfg, tmp_path / "probe")
    finally:
        eval_root = "\0"  # audit hooks cannot be removed: disarm it
    assert opens, "the stage must read the eval split for the final number"
    assert not [p for p, in_sweep in opens if in_sweep]
    study = metrics["study"]
    assert study["n_complete"] == 4 and study["n_failed"] == 0
    assert metrics["params"]["lr"] == study["best_params"]["lr"]
    assert metrics["val_top1"] == study["best_value"]
    assert metrics["n_eval"] == 40 and metrics["top1"] > 50.0
    state = torch.load(tmp_path / "probe" / "probe.pt", weights_only=True)["classifier"]
    assert "module.pooler.cross_attention_block.xattn.proj.weight" in state
    for key in (
        "top1",
        "top5",
        "n_train",
        "n_eval",
        "label_fraction",
        "split_seed",
        "params",
        "study",
        "val_top1",
    ):
        assert key in metrics


def test_sweep_worker_config_has_no_eval_path(tmp_path):
    train = make_store(tmp_path / "train")
    cfg = make_config(train, tmp_path / "secret-eval", n_trials=2, workers=2)
    summary = run_sweep(cfg, tmp_path / "study")
    assert summary["n_complete"] == 2
    written = (tmp_path / "study" / "sweep-config.yaml").read_text()
    assert "secret-eval" not in written and np.isfinite(summary["best_value"])
