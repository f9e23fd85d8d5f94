"""Benchmark: probes on streamed features (the frozen encoder runs per batch) vs a feature store.

A streamed probe (``vjepa/eval/stream.py``) decodes the clips and runs the frozen encoder for
every training batch of every epoch, so it needs no disk but pays the encoder on every pass; K
heads (``train_heads``) share each encoded batch, so K optimiser settings should cost little
more than one when the encoder dominates. A store pays the encoder once (extraction) and then
every epoch of every trial only reads. This measures both, in one process, on the laptop encoder
(``vit_micro``, 16x32x32 clips, patch 8, tubelet 2, random init) and synthetic videos:

1. stream mode, seconds per epoch of ``train_heads`` with K = 1, 4, 16 distinct heads (the lr
   varies), the ratio to K = 1 (the issue's goal: 16 heads <= 2x one) and the fraction of the
   wall time spent reading and encoding clips (``source.stats.seconds`` / wall);
2. a 20-trial sweep (TPE, no pruner, one worker, lr and weight decay log-uniform): store mode
   (extract the training split once, timed, then ``run_sweep`` on ``features``) against stream
   mode (``run_stream_sweep``) with ``sweep.heads_per_pass`` 20
   (one generation) and 4 (five generations); wall seconds, ratio to store mode (extraction
   included), clips encoded and the best validation top-1 each study found.

The load average is printed: at these sizes two intra-op threads on a shared 2-core machine are
disturbed by any other job (``--threads 1`` is steadier there).

    python bench/probe_stream.py                # 120 videos, 2 threads: ~3-5 min on 2 cores
    python bench/probe_stream.py --threads 1    # ~100 s
    python bench/probe_stream.py --videos 240 --sweep-epochs 10 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

MODEL = {"name": "vit_micro", "num_frames": 16, "img_size": 32, "patch_size": 8, "tubelet_size": 2}
PROTOCOL = {
    "frames_per_clip": 16,
    "frame_step": 1,
    "crop_size": 32,
    "num_segments": 1,
    "num_views": 1,
}
SYNTH = {  # tests/eval/test_eval_stream.py's dataset, more videos
    "resolution": 32,
    "frames": 16,
    "directions": 4,
    "speed_range": [0.06, 0.1],
    "appearance": "colour",
    "num_distractors": 0,
    "camera_jitter": 0.0,
    "pixel_noise": 0.0,
    "brightness_jitter": 0.0,
    "colour_jitter": 0.0,
    "time_reversed_pairs": False,
    "images": 0,
}
ENCODER = {"source": "random", "seed": 0}
TASK = "appearance"
SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
    "weight_decay": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
}


def stream_section(index: Path, chunk: int) -> dict:
    return {
        "encoder": ENCODER,
        "model": MODEL,
        "data": {"index": str(index), "task": TASK, "train": "train", "eval": "test"},
        "protocol": PROTOCOL,
        "dtype": "float16",
        "batch_size": chunk,
    }


def probe_config(index: Path, args: argparse.Namespace) -> dict:
    """The probe stage config both sweep arms share (less its feature source)."""
    return {
        "task": TASK,
        "probe": {"kind": "attentive", "epochs": args.sweep_epochs, "batch_size": args.batch_size},
        "val_fraction": args.val_fraction,
        "seed": 0,
    }


def sweep_section(args: argparse.Namespace, heads_per_pass: int | None = None) -> dict:
    cfg = {"n_trials": args.trials, "sampler": "tpe", "pruner": "none", "workers": 1}
    cfg["space"] = SPACE
    if heads_per_pass is not None:
        cfg["heads_per_pass"] = heads_per_pass
    return cfg


def head_grid(k: int) -> list[dict[str, float]]:
    """K distinct heads: lr log-spaced over 1e-4..3e-2, one weight decay."""
    if k == 1:
        return [{"lr": 3e-3, "weight_decay": 0.01}]
    lo, hi = 1e-4, 3e-2
    return [{"lr": lo * (hi / lo) ** (i / (k - 1)), "weight_decay": 0.01} for i in range(k)]


def time_heads(index: Path, args: argparse.Namespace) -> tuple[list[dict], int, int, int]:
    """Part 1: seconds per epoch of ``train_heads`` on streamed features for each K."""
    from vjepa.eval.heads import train_heads
    from vjepa.eval.probe_train import ProbeParams
    from vjepa.eval.splits import carve_rows
    from vjepa.eval.stream import (
        EncodeStats,
        StreamRows,
        open_stream,
        record_columns,
        split_records,
    )

    cfg = {"val_fraction": args.val_fraction, "seed": 0}
    stream = stream_section(index, args.chunk)
    source = open_stream(stream)
    records = split_records(stream, "train")
    train_rows, val_rows = carve_rows(cfg, *record_columns(records))

    def run(k: int, epochs: int) -> dict:
        # fresh rows per run: each encodes its validation rows once, then reads them from memory
        train = StreamRows(source, records, train_rows)
        val = StreamRows(source, records, val_rows, cache_mb=64)
        source.stats = EncodeStats()
        params = ProbeParams(
            kind="attentive",
            epochs=epochs,
            batch_size=args.batch_size,
            num_heads=source.num_heads,
            heads=head_grid(k),
        )
        t0 = time.perf_counter()
        train_heads(
            train,
            val,
            params,
            num_classes=source.num_classes,
            embed_dim=source.embed_dim,
            seed=0,
            device=source.device,
        )
        wall = time.perf_counter() - t0
        return {
            "k": k,
            "wall": wall,
            "per_epoch": wall / epochs,
            "encode_s": source.stats.seconds,
            "encode_frac": source.stats.seconds / wall,
            "clips": source.stats.clips,
            "workers": train.num_workers,
        }

    run(1, 1)  # warm-up, not timed: first-call costs (allocator, thread pool, kernels)
    runs: dict[int, list[dict]] = {k: [] for k in args.ks}
    for _ in range(args.repeats):  # round-robin: every K sees the same spells of load
        for k in args.ks:
            runs[k].append(run(k, args.epochs))
            r = runs[k][-1]
            print(
                f"  K={k:<3d} {r['wall']:6.1f} s, {r['clips']} clips encoded "
                f"({r['encode_s']:.1f} s reading + encoding)",
                flush=True,
            )
    # the least disturbed run of each K: the machine may be shared
    rows = [min(runs[k], key=lambda r: r["wall"]) for k in args.ks]
    return rows, len(train_rows), len(val_rows), rows[0]["workers"]


def stream_sweeper():
    """The streamed sweep (``vjepa.stages.stream``)."""
    from vjepa.stages.stream import run_stream_sweep

    return run_stream_sweep


def time_sweeps(index: Path, work: Path, args: argparse.Namespace, workers: int) -> list[dict]:
    """Part 2: a ``--trials`` sweep on a store (extraction timed) and streamed (two pass sizes)."""
    from vjepa.stages import run_stage
    from vjepa.stages.sweep_workers import run_sweep

    out = []
    extract_cfg = {
        "encoder": ENCODER,
        "model": MODEL,
        "data": {"index": str(index), "task": TASK, "split": "train"},
        "protocol": PROTOCOL,
        "dtype": "float16",
        "batch_size": args.batch_size,
        "num_workers": workers,  # as many decoding processes as the stream's loader
        "progress": False,
    }
    t0 = time.perf_counter()
    run_stage("extract", extract_cfg, work / "extract")
    extract_s = time.perf_counter() - t0
    print(f"  extract: {extract_s:.1f} s", flush=True)
    cfg = {
        **probe_config(index, args),
        "features": {"train": str(work / "extract" / "features")},
        "sweep": sweep_section(args),
    }
    t0 = time.perf_counter()
    summary = run_sweep(cfg, work / "study-store")
    sweep_s = time.perf_counter() - t0
    print(f"  store sweep: {sweep_s:.1f} s", flush=True)
    out.append(
        {
            "mode": "store",
            "extract": extract_s,
            "sweep": sweep_s,
            "wall": extract_s + sweep_s,
            "clips": None,  # filled in from the store: each train clip encoded once
            "best": summary["best_value"],
            "done": summary["n_complete"],
        }
    )
    for hpp in args.heads_per_pass:
        cfg = {
            **probe_config(index, args),
            "stream": stream_section(index, args.chunk),
            "sweep": sweep_section(args, hpp),
        }
        t0 = time.perf_counter()
        summary = stream_sweeper()(cfg, work / f"study-stream-{hpp}")
        wall = time.perf_counter() - t0
        print(f"  stream sweep, {hpp} heads per pass: {wall:.1f} s", flush=True)
        out.append(
            {
                "mode": f"stream, {hpp}/pass",
                "extract": None,
                "sweep": wall,
                "wall": wall,
                "clips": summary["stream"]["clips_encoded"],
                "encode": summary["stream"]["encode_s"],
                "best": summary["best_value"],
                "done": summary["n_complete"],
            }
        )
    return out


def store_rows(work: Path) -> int:
    from vjepa.eval.store import FeatureStore

    return len(FeatureStore(work / "extract" / "features").labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=120, help="synthetic videos (70 %% train)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16], help="heads per pass")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of the K-heads runs")
    ap.add_argument("--repeats", type=int, default=2, help="K-heads runs each; fastest kept")
    ap.add_argument("--batch-size", type=int, default=16, help="probe batch (clips)")
    ap.add_argument("--chunk", type=int, default=16, help="clips per encoder forward")
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--trials", type=int, default=20, help="sweep trials")
    ap.add_argument("--sweep-epochs", type=int, default=5, help="probe epochs per trial")
    ap.add_argument("--heads-per-pass", type=int, nargs="+", default=[20, 4])
    ap.add_argument("--skip-heads", action="store_true", help="only the sweeps")
    ap.add_argument("--skip-sweeps", action="store_true", help="only the K-heads runs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from vjepa.stages import run_stage

    load = lambda: "/".join(f"{x:.1f}" for x in os.getloadavg())  # noqa: E731
    load0, started = load(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="probe-stream-") as tmp:
        work = Path(tmp)
        run_stage("data", {"synth": {**SYNTH, "videos": args.videos}, "workers": 1}, work / "data")
        index = work / "data" / "index.parquet"
        print(
            f"vit_micro 16x32x32 / p8 t2 (128 tokens x 96), random init; {args.videos} videos, "
            f"task {TASK}; {args.threads} threads, {'CUDA' if torch.cuda.is_available() else 'CPU'}"
        )
        from vjepa.eval.stream import loader_workers

        workers = loader_workers(torch.device("cpu"))
        if not args.skip_heads:
            print(
                f"[1] stream mode, train_heads, {args.epochs} epochs, batch {args.batch_size}, "
                f"best of {args.repeats}"
            )
            heads, n_train, n_val, workers = time_heads(index, args)
            base = heads[0]["per_epoch"]
            print(
                f"\n{n_train} train rows (encoded every epoch), {n_val} val rows (encoded once, "
                f"cached), {workers} loader worker(s); wall includes the val passes"
            )
            print(f"{'K':>3s} {'s/epoch':>8s} {'vs K=1':>7s} {'encoding':>9s} {'clips':>6s}")
            for r in heads:
                print(
                    f"{r['k']:3d} {r['per_epoch']:8.2f} {r['per_epoch'] / base:7.2f} "
                    f"{100 * r['encode_frac']:8.0f}% {r['clips']:6d}"
                )
        if not args.skip_sweeps:
            print(
                f"\n[2] {args.trials}-trial sweep (tpe, no pruner, 1 worker), "
                f"{args.sweep_epochs} probe epochs per trial"
            )
            sweeps = time_sweeps(index, work, args, workers)
            sweeps[0]["clips"] = store_rows(work)  # extraction encodes each train clip once
            base = sweeps[0]["wall"]
            print(
                f"\n{'mode':16s} {'extract s':>9s} {'sweep s':>8s} {'total s':>8s} "
                f"{'vs store':>8s} {'clips':>6s} {'best val':>8s} {'done':>4s}"
            )
            for r in sweeps:
                ext = f"{r['extract']:9.1f}" if r["extract"] is not None else f"{'-':>9s}"
                best = f"{r['best']:8.3f}" if r["best"] is not None else f"{'-':>8s}"
                print(
                    f"{r['mode']:16s} {ext} {r['sweep']:8.1f} {r['wall']:8.1f} "
                    f"{r['wall'] / base:8.2f} {r['clips']:6d} {best} {r['done']:4d}"
                )
    print(
        f"\ntotal {time.perf_counter() - started:.0f} s; load average at start {load0}, "
        f"at end {load()} (1/5/15 min; the machine may be shared)"
    )


if __name__ == "__main__":
    main()
