"""Collapse check of frozen features: is an encoder keeping information or losing it?

Over (up to) 400 clips x all tokens it prints: the mean and minimum per-dimension std, the
effective rank (exp of the entropy of the normalised squared singular values of the centred token
matrix) and three shares of the token variance:

- clip mean: explained by one vector per clip (high = little beyond a clip summary);
- position: explained by the token's index alone, the same for every clip (high = the features
  mostly encode where a token is, which a predictor knows without looking at the video);
- time-invariant: explained by the per-clip mean over time at each spatial position (high = the
  tokens of one place barely change over the clip, so they cannot carry motion).

    python scripts/science/collapse.py runs/extract/<name>-<uid> [more stores ...]
    python scripts/science/collapse.py --encoder runs/science/encoders/<tag>.pt --design default
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def token_stats(clips: torch.Tensor, time_steps: int | None = None) -> dict[str, float]:
    """Spread, rank and variance shares of tokens ``[clips, tokens, D]`` (tokens in t-major order)."""
    n, k, d = clips.shape
    tokens = clips.reshape(-1, d)
    total = tokens.var(0).sum()
    std = tokens.std(0)
    s = torch.linalg.svdvals(tokens - tokens.mean(0))
    p = s**2 / (s**2).sum()
    out = {
        "clips": n,
        "mean_std": std.mean().item(),
        "min_std": std.min().item(),
        "effective_rank": torch.exp(-(p * torch.log(p + 1e-12)).sum()).item(),
        "clip_mean_share": (clips.mean(1).var(0).sum() / total).item(),
        "position_share": (clips.mean(0).var(0).sum() / total).item(),
    }
    if time_steps:
        per_place = clips.reshape(n, time_steps, k // time_steps, d).mean(1)  # n, places, d
        out["time_invariant_share"] = (per_place.reshape(-1, d).var(0).sum() / total).item()
    return out


def store_tokens(store_dir: str, max_clips: int = 400) -> torch.Tensor:
    from vjepa.eval.store import FeatureStore

    store = FeatureStore(store_dir)
    n = min(max_clips, store.shape[0])
    feats = store.take(np.arange(n), dtype=torch.float32)
    return feats.reshape(n, -1, feats.shape[-1])


def encoder_tokens(path: str | None, design: str, model: str) -> tuple[torch.Tensor, int]:
    """Tokens of 400 validation clips of ``design``; ``path`` None = the random-init encoder."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import calib

    enc, _ = calib.build(calib.MODELS[model], 0)
    if path is not None:
        enc.load_state_dict(torch.load(path, map_location="cpu"))
    frames, _, _ = calib.clips(design, *calib.PROBE_VAL)
    grid = calib._grid(calib.MODELS[model])
    return calib.encode(enc, frames[:400]), grid[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("stores", nargs="*")
    ap.add_argument("--encoder", nargs="*", default=[])
    ap.add_argument("--design", default="default")
    ap.add_argument("--model", default="micro_p8")
    ap.add_argument("--random", action="store_true", help="also the random-init encoder")
    a = ap.parse_args()
    items = [(p, lambda p=p: (store_tokens(p), None)) for p in a.stores]
    paths = [None] * a.random + a.encoder
    items += [(p or "random", lambda p=p: encoder_tokens(p, a.design, a.model)) for p in paths]
    for name, load in items:
        clips, t = load()
        r = token_stats(clips, t)
        print(name + ": " + " ".join(f"{k}={v:.3f}" for k, v in r.items()))


if __name__ == "__main__":
    main()
