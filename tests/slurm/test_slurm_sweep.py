"""Distributed sweeps: a job array of ``run_worker`` processes sharing one Optuna study."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from vjepa.pipeline.executors.slurm import SlurmExecutor
from vjepa.pipeline.slurm_jobs import sweep_jobs

RES = {"resources": {"default": {"cpus_per_task": 1, "mem_gb": 1, "time": 5}}}


@pytest.fixture(scope="module")
def store(slurm_tmp) -> str:
    """A tiny pooled feature store ([N, S, V, D]) with a learnable 4-class task."""
    import torch

    from vjepa.eval.store import write_array_store

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(80) % 4
    feats = torch.randn(80, 1, 1, 8, generator=g) + labels[:, None, None, None].float()
    path = slurm_tmp / "features"
    write_array_store(path, feats, labels.numpy(), num_classes=4)
    return str(path)


def probe_config(store: str, n_trials: int, epochs: int, storage: str | None = None) -> dict:
    return {
        "features": {"train": store},
        "probe": {"kind": "linear", "epochs": epochs, "batch_size": 32},
        "val_fraction": 0.25,
        "seed": 0,
        "sweep": {
            "n_trials": n_trials,
            "workers": 4,
            "sampler": "random",
            "pruner": "none",
            "storage": storage,
            "study_name": f"t-{uuid.uuid4().hex[:8]}",
            "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        },
    }


def run_array(folder: Path, config: dict, workers: int) -> tuple[SlurmExecutor, list]:
    ex = SlurmExecutor({**RES, "folder": str(folder)}, spec="sweep", root=folder)
    jobs = sweep_jobs("sweep", config, str(folder / "study"), workers)
    return ex, ex.submit_array(jobs)


def study_of(config: dict, folder: Path):
    from vjepa.eval.sweep import load_study

    return load_study(config, folder / "study")


def counts(study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


@pytest.mark.parametrize("backend", ["journal", "postgres"])
def test_array_of_four_workers_runs_exactly_n_trials(backend, slurm_folder, store, request):
    storage = request.getfixturevalue("pg_url") if backend == "postgres" else None
    config = probe_config(store, n_trials=8, epochs=5, storage=storage)
    ex, handles = run_array(slurm_folder, config, workers=4)
    states = ex.wait(handles, timeout_s=150, interval_s=1)
    assert set(states.values()) == {"done"}, ex.log_tail(handles[0], 30)
    assert counts(study_of(config, slurm_folder)) == {"COMPLETE": 8}
    summaries = [ex.result(h) for h in handles]
    assert all(s["n_complete"] == 8 and s["n_running"] == 0 for s in summaries)


def _job_of(pid: int) -> str | None:
    """``<array id>_<task>`` of a worker process on this node (a bare id would name the array)."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    found = dict(kv.decode().split("=", 1) for kv in env if b"=" in kv)
    if "SLURM_ARRAY_JOB_ID" not in found:
        return None
    return f"{found['SLURM_ARRAY_JOB_ID']}_{found['SLURM_ARRAY_TASK_ID']}"


def test_killed_worker_leaves_no_stuck_trial(slurm_folder, store):
    from optuna.trial import TrialState

    config = probe_config(store, n_trials=4, epochs=400)  # a trial lasts seconds
    ex, handles = run_array(slurm_folder, config, workers=3)
    deadline = time.monotonic() + 90
    victim = None
    while victim is None:
        assert time.monotonic() < deadline, "no trial started"
        time.sleep(0.5)
        if not (slurm_folder / "study" / "study.journal").exists():
            continue
        running = study_of(config, slurm_folder).get_trials(states=(TrialState.RUNNING,))
        for t in running:
            victim = _job_of(int(t.user_attrs["owner"]["pid"]))
            if victim:
                victim_trial = t.number
                break
    subprocess.run(["scancel", victim], check=True)
    states = ex.wait(handles, timeout_s=150, interval_s=1)
    assert sorted(states.values()).count("cancelled") == 1, states
    assert sorted(states.values()).count("done") == 2, states
    study = study_of(config, slurm_folder)
    assert counts(study).get("COMPLETE") == 4 and "RUNNING" not in counts(study)
    # The killed trial was failed at once (SIGTERM -> exception in the trial), not left RUNNING.
    assert study.trials[victim_trial].state in (TrialState.FAIL, TrialState.COMPLETE)
    assert counts(study).get("FAIL", 0) >= 1


@pytest.fixture(scope="module")
def video_index(slurm_tmp) -> str:
    """A data stage's index of real synthetic videos (for sweeps on streamed features)."""
    from vjepa.stages import run_stage

    synth = {"resolution": 32, "frames": 16, "videos": 24, "images": 0, "directions": 4}
    run_stage(
        "data",
        {"synth": {**synth, "time_reversed_pairs": False}, "workers": 1},
        slurm_tmp / "videos",
    )
    return str(slurm_tmp / "videos" / "index.parquet")


@pytest.mark.parametrize("backend", ["journal", "postgres"])
def test_array_of_stream_workers_trains_generations_of_heads(
    backend, slurm_folder, video_index, request
):
    """Two SLURM workers on streamed features, 4 trials a pass: exactly 8 trials, each with its
    head kept, the two workers' generations sharing one study."""
    storage = request.getfixturevalue("pg_url") if backend == "postgres" else None
    config = {
        "stream": {
            "encoder": {"source": "random", "seed": 0},
            "model": {
                "name": "vit_micro",
                "num_frames": 16,
                "img_size": 32,
                "patch_size": 8,
                "tubelet_size": 2,
            },
            "data": {"index": video_index, "task": "motion", "train": "train"},
            "protocol": {"frames_per_clip": 16, "frame_step": 1, "crop_size": 32},
            "dtype": "float16",
            "batch_size": 8,
        },
        "task": "motion",
        "probe": {"kind": "attentive", "epochs": 2, "batch_size": 8},
        "val_fraction": 0.25,
        "seed": 0,
        "sweep": {
            "n_trials": 8,
            "heads_per_pass": 4,
            "sampler": "random",
            "pruner": "none",
            "storage": storage,
            "study_name": f"t-{uuid.uuid4().hex[:8]}",
            "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        },
    }
    ex, handles = run_array(slurm_folder, config, workers=2)
    states = ex.wait(handles, timeout_s=300, interval_s=1)
    assert set(states.values()) == {"done"}, ex.log_tail(handles[0], 30)
    study = study_of(config, slurm_folder)
    assert counts(study) == {"COMPLETE": 8}
    kept = {p.name for p in (slurm_folder / "study" / "heads").glob("trial-*.pt")}
    assert kept == {f"trial-{t.number}.pt" for t in study.trials}
    summaries = [ex.result(h) for h in handles]
    assert all(s["n_complete"] == 8 for s in summaries)
    assert sum(s["stream"]["clips_encoded"] > 0 for s in summaries) >= 1
