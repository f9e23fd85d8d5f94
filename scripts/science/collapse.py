"""Collapse check of stored frozen features: is an encoder keeping information or losing it?

For each feature store given, prints over (up to) 400 clips x all tokens: the mean and minimum
per-dimension std, the effective rank (exp of the entropy of the normalised squared singular
values of the centred token matrix) and the share of token variance explained by the per-clip
mean token (high = the representation says little beyond one vector per clip).

    python scripts/science/collapse.py runs/extract/<name>-<uid> [more stores ...]
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from vjepa.eval.store import FeatureStore


def collapse_stats(store_dir: str, max_clips: int = 400) -> dict[str, float]:
    """Spread, effective rank and clip-mean variance share of one store's tokens."""
    store = FeatureStore(store_dir)
    n = min(max_clips, store.shape[0])
    feats = store.take(np.arange(n), dtype=torch.float32)
    clips = feats.reshape(n, -1, feats.shape[-1])  # clip x (segments*views*tokens) x D
    tokens = clips.reshape(-1, clips.shape[-1])
    std = tokens.std(0)
    s = torch.linalg.svdvals(tokens - tokens.mean(0))
    p = s**2 / (s**2).sum()
    return {
        "clips": n,
        "mean_std": std.mean().item(),
        "min_std": std.min().item(),
        "effective_rank": torch.exp(-(p * torch.log(p + 1e-12)).sum()).item(),
        "clip_mean_share": (clips.mean(1).var(0).sum() / tokens.var(0).sum()).item(),
    }


if __name__ == "__main__":
    for path in sys.argv[1:]:
        r = collapse_stats(path)
        print(
            f"{path}: clips={r['clips']} per-dim std mean={r['mean_std']:.3f} "
            f"min={r['min_std']:.3f} effective rank={r['effective_rank']:.1f} "
            f"clip-mean share={r['clip_mean_share']:.3f}"
        )
