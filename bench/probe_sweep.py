"""Benchmark: an attentive-probe sweep on stored features vs re-running the frozen encoder.

The reference evaluation decodes every clip and runs the frozen encoder on every probe epoch of
every trial. Here the encoder runs once (extraction) and each trial reads a memory-mapped store.
Both arms run in this process on the same clips, encoder, probe, Optuna sampler and trial
settings; only the feature source differs. The re-encoding arm is slow, so by default it measures
a few trials and the per-trial times are compared (printed as a ratio).

    python bench/probe_sweep.py                      # 20 stored trials, 3 re-encoding trials
    python bench/probe_sweep.py --trials 20 --baseline-trials 20 --threads 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vjepa.eval.heads import train_probe
from vjepa.eval.probe_train import FeatureSet, ProbeParams, to_view_tokens

MODEL = {"name": "vit_micro", "num_frames": 16, "img_size": 32, "patch_size": 8, "tubelet_size": 2}
PROTOCOL = {
    "frames_per_clip": 16,
    "frame_step": 1,
    "crop_size": 32,
    "num_segments": 1,
    "num_views": 1,
}


class ReencodedSet(FeatureSet):
    """The reference protocol: every batch decodes its clips and runs the frozen encoder."""

    def __init__(self, dataset, encoder, rows: np.ndarray, labels: np.ndarray) -> None:
        self.dataset, self.encoder = dataset, encoder
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = torch.as_tensor(np.asarray(labels)[self.rows], dtype=torch.long)
        self.store = self.data = None

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from vjepa.eval.extract import encode_batch

        video = torch.stack([self.dataset[int(self.rows[i])]["video"] for i in idx])
        z = encode_batch(self.encoder, video, "tokens", torch.device("cpu"))
        return to_view_tokens(z), self.labels[idx]


def run_study(
    n_trials: int,
    train: FeatureSet,
    val: FeatureSet,
    base: ProbeParams,
    num_classes: int,
    embed_dim: int,
    seed: int = 0,
) -> list[float]:
    """Seconds per trial of a TPE study over lr (journal storage, as the stage uses)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = Path(tempfile.mkdtemp()) / "study.journal"
    study = optuna.create_study(
        storage=JournalStorage(JournalFileBackend(str(path))),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    times = []
    for _ in range(n_trials):
        trial = study.ask()
        params = ProbeParams(
            **{**base.to_dict(), "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True)}
        )
        t0 = time.perf_counter()
        res = train_probe(
            train, val, params, num_classes=num_classes, embed_dim=embed_dim, seed=seed
        )
        times.append(time.perf_counter() - t0)
        study.tell(trial, res.val_top1)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--baseline-trials", type=int, default=3)
    ap.add_argument("--videos", type=int, default=160)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from vjepa.data.clips import ClipDataset
    from vjepa.data.index import read_index
    from vjepa.data.transforms import EvalTransform
    from vjepa.eval.extract import Protocol, extract_features
    from vjepa.eval.label_fraction import carve_validation
    from vjepa.eval.store import FeatureStore
    from vjepa.models import build_encoder
    from vjepa.stages import run_stage

    work = Path(tempfile.mkdtemp(prefix="probe-sweep-"))
    synth = {"videos": args.videos, "images": 0, "resolution": 32, "frames": 16, "directions": 4}
    run_stage("data", {"synth": synth, "workers": 1}, work / "data")
    records = read_index(work / "data" / "index.parquet", task="motion", split="train")
    labels = np.array([r["label"] for r in records])
    protocol = Protocol.from_config(PROTOCOL)
    dataset = ClipDataset(
        records,
        protocol.frames_per_clip,
        protocol.frame_step,
        transform=EvalTransform(protocol.crop_size, protocol.num_views),
    )
    torch.manual_seed(0)
    encoder = build_encoder(**MODEL).eval().requires_grad_(False)

    t0 = time.perf_counter()
    stats = extract_features(
        encoder,
        dataset,
        work / "features",
        labels=labels,
        samples=[r["path"] for r in records],
        protocol=protocol,
        num_classes=int(labels.max()) + 1,
        batch_size=16,
        progress=False,
    )
    extract_s = time.perf_counter() - t0
    store = FeatureStore(work / "features")
    tr, va = carve_validation(labels, np.arange(len(labels)), 0.2, seed=0)
    base = ProbeParams(
        kind="attentive", num_heads=encoder.num_heads, epochs=args.epochs, batch_size=32
    )
    k, d = store.num_classes, store.embed_dim

    stored = run_study(
        args.trials, FeatureSet(store, tr, labels), FeatureSet(store, va, labels), base, k, d
    )
    reenc = run_study(
        args.baseline_trials,
        ReencodedSet(dataset, encoder, tr, labels),
        ReencodedSet(dataset, encoder, va, labels),
        base,
        k,
        d,
    )
    per_stored, per_reenc = float(np.mean(stored)), float(np.mean(reenc))
    result = {
        "clips": len(labels),
        "epochs": args.epochs,
        "threads": args.threads,
        "extract_s": round(extract_s, 2),
        "extract_clips_per_s": round(len(labels) / extract_s, 1),
        "stored_trials": args.trials,
        "stored_s_per_trial": round(per_stored, 3),
        "stored_sweep_s": round(sum(stored), 2),
        "stored_sweep_plus_extract_s": round(sum(stored) + extract_s, 2),
        "reencode_trials": args.baseline_trials,
        "reencode_s_per_trial": round(per_reenc, 3),
        "reencode_sweep_s_for_all_trials": round(per_reenc * args.trials, 1),
        "speedup_per_trial": round(per_reenc / per_stored, 1),
        "speedup_whole_sweep": round(per_reenc * args.trials / (sum(stored) + extract_s), 1),
        "store_bytes": stats["bytes"],
    }
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
