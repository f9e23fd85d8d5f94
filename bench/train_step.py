"""Throughput of the V-JEPA train step: clips/s and achieved FLOP/s, eager vs torch.compile.

Runs the real ``Trainer.train_step`` (masks, targets, forward, backward, AdamW, EMA) on random
clips already in memory, so data loading is excluded. FLOPs are counted analytically
(``vjepa.train.flops``) from the masks actually drawn; on a GPU, MFU is reported against the
dense bf16 peak of the card.

    python bench/train_step.py --preset vit_micro --frames 16 --size 32 --patch 8 --batch 16
    python bench/train_step.py --preset vit_large --frames 16 --size 224 --patch 16 --batch 24 \\
        --pred-depth 12 --pred-dim 384 --masking multiblock --compile both

``--against REV`` times this tree against git revision REV (checked out into a temporary
worktree, removed at the end): one worker process per tree, each importing its own tree's
``vjepa``, run alternately for ``--rounds`` rounds of ``--steps`` steps, so load changes on the
machine hit both alike; it prints each tree's clips/s per round and the ratio.

    python bench/train_step.py --against HEAD --preset vit_mini4 --batch 32 --pred-dim 96 \\
        --threads 1 --rounds 5 --steps 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

# Dense bf16 tensor-core peak, FLOP/s (vendor datasheets, SXM parts).
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def bench_config(args: argparse.Namespace, compile_: bool, dtype: str | None = None) -> dict:
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
            "iterations_per_epoch": 10**6,
            "warmup_epochs": 0,
            "dtype": dtype or args.dtype,
            "compile": compile_,
            "device": args.device,
            "progress": False,
        },
    }


def device_type_of(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def make_trainer(args: argparse.Namespace, compile_: bool, dtype: str | None = None):
    """A Trainer of the bench config, the batch iterator it steps on and a device sync."""
    from vjepa.train import distributed
    from vjepa.train.config import resolve
    from vjepa.train.loop import Trainer

    cfg = resolve(bench_config(args, compile_, dtype))
    device_type = device_type_of(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp), distributed.DistEnv(), device_type)
    shape = (args.batch, 1, 1, 3, args.frames, args.size, args.size)
    batch = {"video": torch.randn(shape, generator=torch.Generator().manual_seed(0))}
    sync = torch.cuda.synchronize if device_type == "cuda" else (lambda: None)
    return trainer, iter(lambda: batch, None), sync


def run(args: argparse.Namespace, compile_: bool) -> dict:
    from vjepa.train.flops import train_step_flops

    t_build = time.perf_counter()
    trainer, batches, sync = make_trainer(args, compile_)
    for _ in range(args.warmup):
        trainer.train_step(batches)
    sync()
    warmup_s = time.perf_counter() - t_build
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
    step_s = seconds / args.steps
    return {
        "preset": args.preset,
        "input": f"{args.frames}x{args.size}^2/p{args.patch}",
        "device": torch.cuda.get_device_name()
        if trainer.device.type == "cuda"
        else f"cpu x{torch.get_num_threads()}",
        "dtype": str(trainer.autocast_dtype or torch.float32).removeprefix("torch."),
        "compiled": compile_,
        "batch": args.batch,
        "clips_per_s": round(args.batch / step_s, 2),
        "step_ms": round(1000 * step_s, 1),
        # build + warm-up steps minus what those steps would cost warm: the compile's price
        "warmup_overhead_s": round(warmup_s - args.warmup * step_s, 1),
        "gflop_per_step": round(flops / 1e9, 2),
        "achieved_tflops": round(achieved / 1e12, 4),
        "mfu": round(achieved / peak, 4) if peak else None,
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if trainer.device.type == "cuda"
        else None,
        "context_tokens": [round(x, 1) for x in n_ctx],
        "target_tokens": [round(x, 1) for x in n_tgt],
    }


# ------------------------------------------------------------------ --against REV
def worker(args: argparse.Namespace) -> None:
    """One tree's side of ``--against``: warm up, then time ``n`` steps per line read."""
    import vjepa

    trainer, batches, sync = make_trainer(args, args.compile == "yes")
    for _ in range(args.warmup):
        trainer.train_step(batches)
    sync()
    print(json.dumps({"ready": str(Path(vjepa.__file__).parents[1])}), flush=True)
    for line in sys.stdin:
        n = int(line)
        t0 = time.perf_counter()
        for _ in range(n):
            trainer.train_step(batches)
        sync()
        print(json.dumps({"clips_per_s": args.batch * n / (time.perf_counter() - t0)}), flush=True)


def _worker_argv(args: argparse.Namespace, dtype: str, compile_: str) -> list[str]:
    keys = ("preset", "frames", "size", "patch", "batch", "pred_depth", "pred_dim", "masking")
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    for k in (*keys, "target", "device", "warmup", "threads"):
        argv += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
    return [*argv, "--dtype", dtype, "--compile", compile_]


def _start(tree: Path, argv: list[str], threads: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(threads)}
    env["MKL_NUM_THREADS"] = str(threads)
    return subprocess.Popen(
        argv, cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def _read(proc: subprocess.Popen) -> dict:
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"a bench worker exited (code {proc.wait()}); see its error above")
    return json.loads(line)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def against(args: argparse.Namespace) -> dict:
    """Time this tree and ``args.against`` alternately; return both series and the ratio."""
    rev = subprocess.run(
        ["git", "rev-parse", "--verify", f"{args.against}^{{commit}}"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if rev.returncode:
        raise SystemExit(f"--against {args.against}: not a git revision of {ROOT}")
    sha = rev.stdout.strip()
    threads = args.threads or torch.get_num_threads()
    args.threads = threads
    with tempfile.TemporaryDirectory(prefix="vjepa-against-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--quiet", str(tree), sha],
            cwd=ROOT, check=True,
        )  # fmt: skip
        procs = {}
        try:
            procs = {
                "this": _start(ROOT, _worker_argv(args, args.dtype, args.compile), threads),
                "base": _start(
                    tree, _worker_argv(args, args.against_dtype, args.against_compile), threads
                ),
            }
            for name, proc in procs.items():
                where = _read(proc)["ready"]
                want = ROOT if name == "this" else tree
                if Path(where).resolve() != want.resolve():
                    raise SystemExit(f"the {name} worker imported vjepa from {where}, not {want}")
            rates: dict[str, list[float]] = {"this": [], "base": []}
            for r in range(args.rounds):
                order = ("this", "base") if r % 2 == 0 else ("base", "this")
                for name in order:
                    procs[name].stdin.write(f"{args.steps}\n")
                    procs[name].stdin.flush()
                    rates[name].append(_read(procs[name])["clips_per_s"])
                print(
                    f"round {r + 1}: this {rates['this'][-1]:.2f}  {args.against} "
                    f"{rates['base'][-1]:.2f} clips/s",
                    flush=True,
                )
        finally:
            for proc in procs.values():
                if proc.stdin:
                    proc.stdin.close()
                proc.wait()
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
    ratios = [a / b for a, b in zip(rates["this"], rates["base"], strict=True)]
    return {
        "against": args.against,
        "commit": sha[:12],
        "threads": threads,
        "this": {"dtype": args.dtype, "compile": args.compile, "clips_per_s": rates["this"]},
        "base": {
            "dtype": args.against_dtype,
            "compile": args.against_compile,
            "clips_per_s": rates["base"],
        },
        "this_clips_per_s": spread(rates["this"]),
        "base_clips_per_s": spread(rates["base"]),
        "ratio_of_medians": round(
            statistics.median(rates["this"]) / statistics.median(rates["base"]), 3
        ),
        "ratio_per_round": spread(ratios),
    }


def main() -> None:
    from vjepa.train.config import DTYPES

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
    ap.add_argument("--dtype", default="auto", choices=DTYPES)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--compile", default="no", choices=("no", "yes", "both"))
    ap.add_argument("--against", metavar="REV", help="also time git revision REV, alternately")
    ap.add_argument("--rounds", type=int, default=5, help="--against: rounds per tree")
    ap.add_argument("--against-dtype", default="float32", help="--against: REV's pretrain.dtype")
    ap.add_argument("--against-compile", default="no", choices=("no", "yes"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        worker(args)
    elif args.against:
        if args.compile == "both":
            raise SystemExit("--against times one setting per tree: --compile no or yes")
        print(json.dumps(against(args)))
    else:
        modes = {"no": [False], "yes": [True], "both": [False, True]}[args.compile]
        for compile_ in modes:
            print(json.dumps(run(args, compile_)))


if __name__ == "__main__":
    main()
