"""The GPU benchmark suite: one script, about 10 minutes on one GPU, one JSON file of numbers.

Parts (each timed; ``--parts`` picks some):

- ``pretrain``: the V-JEPA train step (``bench/train_step.py``'s measurement: masks, targets,
  forward, backward, AdamW, EMA on clips in memory) at the paper's recipe, ViT-L/16 on
  16x224^2 clips, batch 24, predictor 12 x 384, the paper's masks, bf16 autocast; eager and
  ``torch.compile``: clips/s, achieved TFLOP/s (``vjepa.train.flops``), MFU against the card's
  dense bf16 peak, peak memory, and what the compile cost (build + warm-up minus warm steps).
- ``extract``: the frozen encoder (``vjepa.eval.extract.encode_batch``, no grad, bf16 on a GPU) on
  clips in memory, clips/s: the encoder side of extraction, without decoding.
- ``stream``: a streamed attentive probe (``vjepa.eval.stream``: decode, encode, train) on
  synthetic videos at the encoder's input size, one epoch with 1 and with 16 heads, clips/s and
  the 16/1 time ratio.
- ``quickstart``: ``vjepa-exp run experiments/quickstart.yaml`` end to end in this tree (its
  stages on the GPU), wall seconds and the result table (``--quickstart dry-run`` only compiles).

``--toy`` shrinks every size (vit_micro, 8x32^2 clips, a few steps, a few videos) so the whole
suite runs on a CPU in seconds; the tests run it that way, so the script cannot rot.

    python bench/gpu_suite.py --out gpu_suite.json            # on one GPU, ~10 min
    python bench/gpu_suite.py --toy --out toy.json            # anywhere, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_step  # noqa: E402  (bench/train_step.py, beside this file)

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("pretrain", "extract", "stream", "quickstart")

# The sizes of each part: the paper's recipe on a GPU, and toy sizes for a CPU.
FULL = {
    "step": dict(
        preset="vit_large", frames=16, size=224, patch=16, batch=24, pred_depth=12,
        pred_dim=384, masking="multiblock", steps=10, warmup=3,
    ),
    "extract": {"batch": 32, "batches": 10},
    "stream": {"videos": 96, "epochs": 1, "batch": 16, "chunk": 32},
}  # fmt: skip
TOY = {
    "step": dict(
        preset="vit_micro", frames=8, size=32, patch=8, batch=2, pred_depth=1, pred_dim=48,
        masking="multiblock_small", steps=1, warmup=1,
    ),
    "extract": {"batch": 2, "batches": 2},
    "stream": {"videos": 12, "epochs": 1, "batch": 4, "chunk": 4},
}  # fmt: skip


def step_args(sizes: dict, dtype: str, device: str) -> argparse.Namespace:
    return argparse.Namespace(**sizes, target="feature", dtype=dtype, device=device)


def part_pretrain(sizes: dict, args: argparse.Namespace) -> dict:
    """Eager and compiled train steps (compiled only with ``--compile``)."""
    out = {}
    for compile_ in (False, True) if args.compile else (False,):
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        row = train_step.run(step_args(sizes["step"], args.dtype, args.device), compile_)
        out["compiled" if compile_ else "eager"] = row
        print(f"  pretrain {'compiled' if compile_ else 'eager'}: {row['clips_per_s']} clips/s")
    if not args.compile:
        out["compiled"] = {"skipped": "--no-compile"}
    return out


def model_config(step: dict) -> dict:
    return {
        "name": step["preset"],
        "num_frames": step["frames"],
        "img_size": step["size"],
        "patch_size": step["patch"],
        "tubelet_size": 2,
    }


def part_extract(sizes: dict, args: argparse.Namespace) -> dict:
    """Frozen-encoder clips/s on clips in memory (one segment, one view)."""
    from vjepa.eval.extract import build_frozen_encoder, encode_batch

    step, ex = sizes["step"], sizes["extract"]
    device = torch.device(train_step.device_type_of(args.device))
    encoder = build_frozen_encoder({"source": "random", "seed": 0}, model_config(step))
    encoder = encoder.eval().requires_grad_(False).to(device)
    shape = (ex["batch"], 1, 1, 3, step["frames"], step["size"], step["size"])
    video = torch.randn(shape)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    encode_batch(encoder, video, "tokens", device)  # warm-up
    sync()
    t0 = time.perf_counter()
    for _ in range(ex["batches"]):
        z = encode_batch(encoder, video, "tokens", device, on_device=True)
    sync()
    seconds = time.perf_counter() - t0
    clips = ex["batch"] * ex["batches"]
    print(f"  extract: {clips / seconds:.1f} clips/s")
    return {
        "clips_per_s": round(clips / seconds, 2),
        "batch": ex["batch"],
        "tokens": list(z.shape[-2:]),
        "dtype": "bfloat16" if device.type == "cuda" else "float32",
    }


def part_stream(sizes: dict, args: argparse.Namespace, work: Path) -> dict:
    """One epoch of a streamed attentive probe with 1 and with 16 heads."""
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
    from vjepa.stages import run_stage

    step, st = sizes["step"], sizes["stream"]
    synth = {"videos": st["videos"], "images": 0, "resolution": step["size"]}
    synth |= {"frames": step["frames"], "num_distractors": 0}
    workers = max(1, min(8, (os.cpu_count() or 2) - 1))
    run_stage("data", {"synth": synth, "workers": workers}, work / "data")
    stream_cfg = {
        "encoder": {"source": "random", "seed": 0},
        "model": model_config(step),
        "data": {"index": str(work / "data" / "index.parquet"), "task": "appearance",
                 "train": "train", "eval": "test"},
        "protocol": {"frames_per_clip": step["frames"], "frame_step": 1,
                     "crop_size": step["size"], "num_segments": 1, "num_views": 1},
        "dtype": "float16",
        "batch_size": st["chunk"],
    }  # fmt: skip
    source = open_stream(stream_cfg)
    records = split_records(stream_cfg, "train")
    train_rows, val_rows = carve_rows({"val_fraction": 0.2, "seed": 0}, *record_columns(records))
    out: dict = {"train_clips": len(train_rows), "val_clips": len(val_rows)}
    for k in (1, 16):
        heads = [{"lr": 1e-4 * 300 ** (i / max(k - 1, 1)), "weight_decay": 0.01} for i in range(k)]
        params = ProbeParams(
            kind="attentive",
            epochs=st["epochs"],
            batch_size=st["batch"],
            num_heads=source.num_heads,
            heads=heads,
        )
        source.stats = EncodeStats()
        train = StreamRows(source, records, train_rows)
        val = StreamRows(source, records, val_rows, cache_mb=256)
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
        out[f"heads_{k}"] = {
            "clips_per_s": round(source.stats.clips / wall, 2),
            "wall_s": round(wall, 3),
            "clips_encoded": source.stats.clips,
            "encode_share": round(source.stats.seconds / wall, 3),
        }
        print(f"  stream, {k} heads: {out[f'heads_{k}']['clips_per_s']} clips/s")
    out["time_16_vs_1"] = round(out["heads_16"]["wall_s"] / out["heads_1"]["wall_s"], 3)
    return out


def part_quickstart(args: argparse.Namespace) -> dict:
    """The quickstart experiment end to end (or compiled only, ``--quickstart dry-run``)."""
    cmd = [str(Path(sys.executable).with_name("vjepa-exp")), "run", "experiments/quickstart.yaml"]
    if args.quickstart == "dry-run":
        cmd.append("--dry-run")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise RuntimeError(f"quickstart exited {done.returncode}: {done.stderr.strip()[-500:]}")
    rows = [ln for ln in done.stdout.splitlines() if ln.startswith("│")]
    print(f"  quickstart ({args.quickstart}): {wall:.1f} s")
    return {"mode": args.quickstart, "wall_s": round(wall, 1), "table": rows}


def machine() -> dict:
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        peak = train_step.peak_flops(torch.device("cuda"))
        info["peak_bf16_tflops"] = peak / 1e12 if peak else None
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("gpu_suite.json"), help="JSON file")
    ap.add_argument("--toy", action="store_true", help="toy sizes: a CPU in seconds")
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    ap.add_argument("--dtype", default="bfloat16", help="pretrain.dtype of the train step")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--quickstart", choices=("run", "dry-run"), default=None,
                    help="run (default) or dry-run (the default with --toy)")  # fmt: skip
    args = ap.parse_args()
    args.quickstart = args.quickstart or ("dry-run" if args.toy else "run")
    if args.toy and args.dtype == "bfloat16" and not torch.cuda.is_available():
        args.dtype = "auto"  # bf16 on a CPU without native bf16 is slow (vjepa.train.precision)
    sizes = TOY if args.toy else FULL
    result: dict = {"toy": args.toy, "machine": machine(), "sizes": sizes, "parts": {}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-suite-") as tmp:
        for part in args.parts:
            t0 = time.perf_counter()
            print(f"[{part}]", flush=True)
            if part == "pretrain":
                value = part_pretrain(sizes, args)
            elif part == "extract":
                value = part_extract(sizes, args)
            elif part == "stream":
                value = part_stream(sizes, args, Path(tmp) / "stream")
            else:
                value = part_quickstart(args)
            value["part_s"] = round(time.perf_counter() - t0, 1)
            result["parts"][part] = value
            args.out.write_text(json.dumps(result, indent=1))  # what is done survives a timeout
    result["total_s"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out} ({result['total_s']} s)")


if __name__ == "__main__":
    main()
