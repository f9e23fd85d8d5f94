"""Throughput of the V-JEPA train step: clips/s and achieved FLOP/s, eager vs torch.compile.

Runs the real ``Trainer.train_step`` (masks, targets, forward, backward, AdamW, EMA) on random
clips already in memory, so data loading is excluded. FLOPs are counted analytically
(``vjepa.train.flops``) from the masks actually drawn; on a GPU, MFU is reported against the
dense bf16 peak of the card.

    python bench/train_step.py --preset vit_micro --frames 16 --size 32 --patch 8 --batch 16
    python bench/train_step.py --preset vit_large --frames 16 --size 224 --patch 16 --batch 24 \\
        --pred-depth 12 --pred-dim 384 --masking multiblock --compile both
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from vjepa.train import distributed
from vjepa.train.config import resolve
from vjepa.train.flops import train_step_flops
from vjepa.train.loop import Trainer

# Dense bf16 tensor-core peak, FLOP/s (vendor datasheets, SXM parts).
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def bench_config(args: argparse.Namespace, compile_: bool) -> dict:
    return {
        "data": {"index": "unused"},
        "clip": {"frames_per_clip": args.frames, "crop_size": args.size},
        "model": {
            "name": args.preset,
            "num_frames": args.frames,
            "img_size": args.size,
            "patch_size": args.patch,
            "tubelet_size": 2,
            "pred_depth": args.pred_depth,
            "pred_embed_dim": args.pred_dim,
        },
        "masking": {"name": args.masking},
        "pretrain": {
            "target": args.target,
            "batch_size": args.batch,
            "epochs": 1,
            "iterations_per_epoch": args.warmup + args.steps,
            "warmup_epochs": 0,
            "dtype": args.dtype,
            "compile": compile_,
            "device": args.device,
            "progress": False,
        },
    }


def run(args: argparse.Namespace, compile_: bool) -> dict:
    cfg = resolve(bench_config(args, compile_))
    device_type = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device_type = "cpu" if device_type == "auto" else device_type
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp), distributed.DistEnv(), device_type)
    shape = (args.batch, 1, 1, 3, args.frames, args.size, args.size)
    batch = {"video": torch.randn(shape)}
    batches = iter(lambda: batch, None)
    sync = torch.cuda.synchronize if device_type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        trainer.train_step(batches)
    sync()
    records, t0 = [], time.perf_counter()
    for _ in range(args.steps):
        records.append(trainer.train_step(batches))
    sync()
    seconds = time.perf_counter() - t0
    n_ctx = [sum(r["context_tokens"][i] for r in records) / len(records) for i in range(2)]
    n_tgt = [sum(r["target_tokens"][i] for r in records) / len(records) for i in range(2)]
    flops = train_step_flops(
        trainer.jepa.encoder, trainer.jepa.predictor, n_ctx, n_tgt, args.batch, args.target
    )["total"]
    achieved = flops * args.steps / seconds
    peak = peak_flops(trainer.device)
    return {
        "preset": args.preset,
        "input": f"{args.frames}x{args.size}^2/p{args.patch}",
        "device": torch.cuda.get_device_name()
        if device_type == "cuda"
        else f"cpu x{torch.get_num_threads()}",
        "dtype": args.dtype if device_type == "cuda" else "float32",
        "compiled": compile_,
        "batch": args.batch,
        "clips_per_s": round(args.batch * args.steps / seconds, 2),
        "step_ms": round(1000 * seconds / args.steps, 1),
        "gflop_per_step": round(flops / 1e9, 2),
        "achieved_tflops": round(achieved / 1e12, 4),
        "mfu": round(achieved / peak, 4) if peak else None,
        "context_tokens": [round(x, 1) for x in n_ctx],
        "target_tokens": [round(x, 1) for x in n_tgt],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="vit_micro")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--pred-depth", type=int, default=2)
    ap.add_argument("--pred-dim", type=int, default=48)
    ap.add_argument("--masking", default="multiblock_small")
    ap.add_argument("--target", default="feature", choices=("feature", "pixel"))
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--compile", default="no", choices=("no", "yes", "both"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = {"no": [False], "yes": [True], "both": [False, True]}[args.compile]
    for compile_ in modes:
        print(json.dumps(run(args, compile_)))


if __name__ == "__main__":
    main()
