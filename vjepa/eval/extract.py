"""Run a frozen encoder once over a split and store its last-layer tokens.

The reference protocol re-runs the frozen encoder on every probe epoch and every sweep trial;
storing the features once turns each later probe epoch into a pass over a memory-mapped array.
Rows are clips; each row holds ``num_segments x num_views`` encoder outputs (after the final norm),
optionally mean-pooled over tokens for linear probes. ``on_progress(done, total, figures)`` hears
the clips stored so far (rows of shards kept from an interrupted call included) after every batch.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from vjepa.errors import UserError
from vjepa.eval.store import (
    DTYPES,
    FORMAT_VERSION,
    ShardPlan,
    StoreWriter,
    check_room,
    rows_per_shard_for,
    store_bytes,
    to_storage,
)
from vjepa.utils.keys import reject_unknown

POOLS = ("tokens", "mean")
SOURCES = ("checkpoint", "official", "random")

# ``on_progress(done, total, figures)``: how far a loop is (the stage writes progress.json)
OnProgress = Callable[[int, int, Mapping[str, float]], None]


@dataclass
class Protocol:
    """The evaluation protocol of a store: which clips, how many segments and views, pooling."""

    frames_per_clip: int = 16
    frame_step: int = 4
    num_segments: int = 1
    num_views: int = 1
    crop_size: int = 224
    pool: str = "tokens"

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None, where: str = "protocol") -> Protocol:
        cfg = dict(cfg or {})
        reject_unknown(cfg, (f.name for f in fields(cls)), where)
        p = cls(**cfg)
        if p.pool not in POOLS:
            raise UserError(f"{where}.pool: {p.pool!r} is not one of {', '.join(POOLS)}")
        if min(p.frames_per_clip, p.frame_step, p.num_segments, p.num_views, p.crop_size) < 1:
            raise UserError(f"{where}: every count must be >= 1")
        return p


def build_frozen_encoder(
    enc: dict[str, Any], model: dict[str, Any] | None, where: str = "extract"
) -> nn.Module:
    """The encoder ``enc`` names: ``checkpoint`` (ours; ``which`` picks target_encoder or
    encoder), ``official`` (the reference layout) or ``random`` (built from ``model``, seeded by
    ``enc.seed``); a checkpoint must agree with ``model`` where both say a size."""
    from vjepa.models.checkpoint import load_encoder
    from vjepa.models.presets import build_encoder, encoder_kwargs

    source = enc.get("source", "checkpoint")
    if source not in SOURCES:
        raise UserError(f"{where}.encoder.source: {source!r} is not one of {', '.join(SOURCES)}")
    try:
        kwargs = encoder_kwargs(dict(model or {}))
    except ValueError as exc:
        raise UserError(f"{where}.model: {exc}") from None
    if source == "random":
        if "name" not in kwargs:
            raise UserError(f"{where}.model.name: a random-init encoder needs a model name")
        torch.manual_seed(int(enc.get("seed", 0)))
        return build_encoder(**kwargs)
    path = enc.get("path")
    if not path:
        raise UserError(f"{where}.encoder.path: source {source!r} needs a checkpoint path")
    return load_encoder(path, which=enc.get("which", "target_encoder"), model_cfg=kwargs or None)


def eval_clips(records: list[dict], protocol: Protocol) -> torch.utils.data.Dataset:
    """The clips of ``records`` under ``protocol``: fixed segments, ``num_views`` fixed crops
    (items: ``video`` [S, V, C, T, H, W], ``label``, ``skipped``)."""
    from vjepa.data.clips import ClipDataset
    from vjepa.data.transforms import EvalTransform

    return ClipDataset(
        records,
        protocol.frames_per_clip,
        protocol.frame_step,
        num_clips=protocol.num_segments,
        random_clip=False,
        transform=EvalTransform(protocol.crop_size, protocol.num_views),
    )


def encoder_uid(encoder: nn.Module) -> str:
    """A hash of the encoder's weights (names, shapes, bytes): equal weights, equal uid."""
    h = hashlib.sha256()
    for name, t in sorted(encoder.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def token_count(encoder: nn.Module, protocol: Protocol) -> int:
    t, h, w = encoder.grid_for(protocol.frames_per_clip, protocol.crop_size, protocol.crop_size)
    return t * h * w


def memory_budget(device: torch.device) -> int:
    """Bytes the encoder's activations may take: half the free GPU memory, or a quarter of the
    available RAM capped at 4 GiB on a CPU (the machine is usually shared)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        avail = 8 * 2**30
    return int(min(avail * 0.25, 4 * 2**30))


def auto_batch_size(
    encoder: nn.Module,
    protocol: Protocol,
    device: torch.device,
    budget: int | None = None,
    max_batch: int = 256,
) -> int:
    """Clips per batch so the peak activation memory of one forward fits ``budget``.

    Per encoder pass (one segment x view) under ``no_grad`` the peak is about the widest layer,
    the MLP hidden (4 D per token), plus qkv (3 D), the residual stream and one attention map
    (heads x tokens^2, when the fused kernel is not available), in float32.
    """
    n, d = token_count(encoder, protocol), encoder.embed_dim
    heads = getattr(encoder, "num_heads", 1)
    per_pass = 4 * (n * d * 10 + heads * n * n)
    clip_px = 4 * 3 * protocol.frames_per_clip * protocol.crop_size**2
    per_clip = (per_pass + clip_px) * protocol.num_segments * protocol.num_views
    budget = memory_budget(device) if budget is None else budget
    return int(max(1, min(max_batch, budget // max(per_clip, 1))))


@torch.no_grad()
def encode_batch(
    encoder: nn.Module,
    video: torch.Tensor,
    pool: str,
    device: torch.device,
    on_device: bool = False,
) -> torch.Tensor:
    """[B, S, V, C, T, H, W] -> [B, S, V, N, D] (or [B, S, V, D] mean-pooled), float32 on CPU
    (``on_device``: left on ``device``)."""
    b, s, v = video.shape[:3]
    x = video.flatten(0, 2).to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        z = encoder(x)
    z = z.float()
    if pool == "mean":
        z = z.mean(dim=1)
    z = z.unflatten(0, (b, s, v))
    return z if on_device else z.cpu()


def extract_features(
    encoder: nn.Module,
    dataset: torch.utils.data.Dataset,
    out: str | os.PathLike[str],
    *,
    labels: Sequence[int],
    samples: Sequence[str],
    groups: Sequence[str | None] | None = None,
    protocol: Protocol,
    num_classes: int,
    dtype: str = "float16",
    batch_size: int | str = "auto",
    num_workers: int = 0,
    device: str | torch.device | None = None,
    shard_mb: float = 256.0,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    on_progress: OnProgress | None = None,
) -> dict[str, Any]:
    """Write the store of ``dataset`` (items: ``video`` [S, V, C, T, H, W], ``skipped``) to ``out``.

    Resumable: shards finished by an earlier, interrupted call with the same plan are kept and
    their rows are not encoded again. The manifest is written last; returns extraction stats.
    """
    if dtype not in DTYPES:
        raise UserError(f"dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    if len(labels) != len(dataset) or len(samples) != len(dataset):
        raise UserError("extract: labels and samples must have one entry per clip")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    encoder = encoder.eval().requires_grad_(False).to(device)
    n_tok, dim = token_count(encoder, protocol), encoder.embed_dim
    s, v = protocol.num_segments, protocol.num_views
    row_shape = [s, v, dim] if protocol.pool == "mean" else [s, v, n_tok, dim]
    uid = encoder_uid(encoder)
    enc_info = {
        "uid": uid,
        "embed_dim": dim,
        "num_heads": getattr(encoder, "num_heads", None),
        "num_tokens": n_tok,
        **(meta or {}).get("encoder", {}),
    }
    plan = {
        "n": len(dataset),
        "row_shape": row_shape,
        "dtype": dtype,
        "rows_per_shard": rows_per_shard_for(row_shape, dtype, shard_mb),
        "encoder_uid": uid,
        "protocol": asdict(protocol),
        "samples_sha": hashlib.sha256("\n".join(map(str, samples)).encode()).hexdigest()[:16],
    }
    check_room(out, len(dataset), row_shape, dtype)  # before the first byte is written
    writer = StoreWriter(out)
    todo = writer.begin(plan)
    sp = ShardPlan(plan["n"], plan["rows_per_shard"])
    if batch_size == "auto":
        batch_size = auto_batch_size(encoder, protocol, device)
    rows = [r for i in todo for r in sp.rows(i)]
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, rows),
        batch_size=int(batch_size),
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    started = time.perf_counter()
    done, skipped = _run(
        encoder, loader, writer, sp, todo, dtype, protocol.pool, device, progress, on_progress
    )
    wall = time.perf_counter() - started
    manifest = {
        "format": FORMAT_VERSION,
        "shape": [len(dataset), *row_shape],
        "layout": "N,S,V,D" if protocol.pool == "mean" else "N,S,V,tokens,D",
        "dtype": dtype,
        "storage_dtype": np.dtype(DTYPES[dtype][1]).name,
        "rows_per_shard": sp.rows_per_shard,
        "num_shards": sp.num_shards,
        "shards": [f"shard-{i:05d}.npy" for i in range(sp.num_shards)],
        "labels": "labels.npy",
        "samples": "samples.json",
        "valid": [f"valid-{i:05d}.npy" for i in range(sp.num_shards)],
        "num_classes": int(num_classes),
        "encoder": enc_info,
        "protocol": asdict(protocol),
        **{k: val for k, val in (meta or {}).items() if k != "encoder"},
    }
    if groups is not None:  # a row without a group is its own group
        groups = [str(g) if g is not None else str(p) for g, p in zip(groups, samples, strict=True)]
    writer.publish(manifest, np.asarray(labels), [str(p) for p in samples], groups)
    return {
        "n": len(dataset),
        "encoded": done,
        "skipped": skipped,  # clips whose file could not be read: zero features, marked invalid
        "resumed_shards": sp.num_shards - len(todo),
        "shards": sp.num_shards,
        "batch_size": int(batch_size),
        "wall_s": round(wall, 3),
        "clips_per_s": round(done / wall, 2) if done and wall > 0 else None,
        "bytes": store_bytes(len(dataset), row_shape, dtype),
        "encoder_uid": uid,
        "shape": manifest["shape"],
    }


def _run(
    encoder, loader, writer, sp, todo, dtype, pool, device, progress, on_progress
) -> tuple[int, int]:
    """Encode the rows of the shards in ``todo`` (in order) and write each shard when full."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    total = sum(len(sp.rows(i)) for i in todo)
    kept = sp.n - total  # rows of shards an interrupted call finished
    started = time.perf_counter()
    if on_progress is not None:
        on_progress(kept, sp.n, {})
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    queue = list(todo)
    buf: list[np.ndarray] = []
    valid: list[np.ndarray] = []
    filled = skipped_total = encoded = 0
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("extract", total=total)
        for batch in loader:
            z = encode_batch(encoder, batch["video"], pool, device)
            skipped = np.asarray(batch.get("skipped", torch.zeros(len(z), dtype=torch.bool)))
            z[torch.as_tensor(skipped, dtype=torch.bool)] = 0.0
            buf.append(to_storage(z, dtype))
            valid.append(~skipped.astype(bool))
            skipped_total += int(skipped.astype(bool).sum())
            filled += len(z)
            encoded += len(z)
            bar.advance(task, len(z))
            if on_progress is not None:
                rate = encoded / max(time.perf_counter() - started, 1e-9)
                on_progress(kept + encoded, sp.n, {"clips_per_s": rate})
            while queue and filled >= len(sp.rows(queue[0])):
                n = len(sp.rows(queue[0]))
                feats, flags = np.concatenate(buf), np.concatenate(valid)
                writer.write_shard(queue.pop(0), feats[:n], flags[:n])
                buf, valid, filled = [feats[n:]], [flags[n:]], filled - n
    if queue:
        raise RuntimeError(f"extract: data loader ended early; shards {queue} incomplete")
    return total, skipped_total


write_features = extract_features  # the name docs/architecture.md uses
