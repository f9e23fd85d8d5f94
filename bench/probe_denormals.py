"""Benchmark: probe training with and without denormal floats flushed to zero.

A probe that fits a small label fraction drives its loss towards zero; its gradients and Adam
moments then fall into the float32 denormal range (below ~1.2e-38), where CPU arithmetic is many
times slower. ``train_probe`` flushes denormals while it trains. Both arms here train the same
attentive probe, from the same seed, on the same random tokens (the geometry of the small
specs: 128 tokens of width 192, 8 classes, ~190 labelled clips), for the same optimizer steps;
only the flush differs. Printed: seconds per 100 steps over the first and the last tenth of the
run (the slowdown appears as the probe fits), totals, their ratio, and whether both arms kept the
same epoch and validation accuracy.

    python bench/probe_denormals.py                  # 1600 steps, as the 10 % probes of the specs
    python bench/probe_denormals.py --steps 400 --threads 2
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
import torch

from vjepa.eval.heads import train_probe
from vjepa.eval.probe_train import FeatureSet, ProbeParams


def features(n: int, tokens: int, dim: int, classes: int, seed: int) -> FeatureSet:
    """Random tokens with a weak class signal: learnable, and easy to overfit with few rows."""
    g = torch.Generator().manual_seed(seed)
    labels = np.arange(n) % classes
    x = torch.randn(n, 1, 1, tokens, dim, generator=g)
    x[..., :classes] += 0.3 * torch.eye(classes)[labels].view(n, 1, 1, 1, classes)
    return FeatureSet(x.half(), np.arange(n), labels)


def timed(trainer, train: FeatureSet, val: FeatureSet, params: ProbeParams, classes: int, dim: int):
    stamps: list[float] = []
    start = time.perf_counter()
    result = trainer(
        train,
        val,
        params,
        num_classes=classes,
        embed_dim=dim,
        seed=0,
        on_epoch=lambda epoch, top1, model: stamps.append(time.perf_counter() - start),
    )
    return result, stamps


def per_100_steps(stamps: list[float], steps_per_epoch: int) -> tuple[float, float]:
    tenth = max(1, len(stamps) // 10)
    first = stamps[tenth - 1]
    last = stamps[-1] - stamps[-tenth - 1]
    return 100 * first / (tenth * steps_per_epoch), 100 * last / (tenth * steps_per_epoch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1600)
    ap.add_argument("--train", type=int, default=190, help="labelled training clips")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tokens, dim, classes, heads = 128, 192, 8, 3
    train = features(args.train, tokens, dim, classes, seed=0)
    val = features(24, tokens, dim, classes, seed=1)
    params = ProbeParams(
        kind="attentive", num_heads=heads, lr=5e-3, epochs=1, batch_size=64, min_steps=args.steps
    )
    steps_per_epoch = -(-len(train) // params.batch_size)

    rows = {}
    kept = functools.partial(train_probe, flush_denormals=False)
    for name, trainer in (("denormals kept", kept), ("denormals flushed", train_probe)):
        result, stamps = timed(trainer, train, val, params, classes, dim)
        first, last = per_100_steps(stamps, steps_per_epoch)
        rows[name] = (result, stamps[-1])
        print(
            f"{name:18s} {stamps[-1]:7.1f} s for {len(stamps) * steps_per_epoch} steps; "
            f"s/100 steps: first tenth {first:.2f}, last tenth {last:.2f}; "
            f"kept epoch {result.best_epoch}, val top-1 {result.val_top1:.1f}"
        )
    (kept, t_kept), (flushed, t_flushed) = rows.values()
    print(f"ratio kept / flushed: {t_kept / t_flushed:.2f}x")
    same = kept.best_epoch == flushed.best_epoch and kept.val_top1 == flushed.val_top1
    print(f"same kept epoch and validation accuracy: {same}")


if __name__ == "__main__":
    main()
