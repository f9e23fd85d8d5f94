"""Stage ``extract``: frozen features of one split, written once to a feature store.

Encoders: ``checkpoint`` (ours; ``which`` picks target_encoder or encoder), ``official`` (the
reference layout, ``module.backbone.`` prefixes) or ``random`` (the random-init baseline built
from ``model`` and ``encoder.seed``). The store goes to ``<out>/features``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vjepa.errors import UserError
from vjepa.eval.extract import Protocol, extract_features
from vjepa.utils.keys import reject_unknown

KEYS = (
    "encoder",
    "model",
    "data",
    "protocol",
    "dtype",
    "batch_size",
    "num_workers",
    "device",
    "shard_mb",
    "threads",
    "progress",
)
SOURCES = ("checkpoint", "official", "random")


def build_frozen_encoder(enc: dict[str, Any], model: dict[str, Any] | None) -> torch.nn.Module:
    """The encoder ``enc`` names; a checkpoint must agree with ``model`` where both say a size."""
    from vjepa.models import build_encoder, load_encoder
    from vjepa.models.presets import encoder_kwargs

    source = enc.get("source", "checkpoint")
    if source not in SOURCES:
        raise UserError(f"extract.encoder.source: {source!r} is not one of {', '.join(SOURCES)}")
    try:
        kwargs = encoder_kwargs(dict(model or {}))
    except ValueError as exc:
        raise UserError(f"extract.model: {exc}") from None
    if source == "random":
        if "name" not in kwargs:
            raise UserError("extract.model.name: a random-init encoder needs a model name")
        torch.manual_seed(int(enc.get("seed", 0)))
        return build_encoder(**kwargs)
    path = enc.get("path")
    if not path:
        raise UserError(f"extract.encoder.path: source {source!r} needs a checkpoint path")
    return load_encoder(path, which=enc.get("which", "target_encoder"), model_cfg=kwargs or None)


def run(config: dict[str, Any], out: Path) -> dict[str, Any]:
    from vjepa.data.clips import ClipDataset
    from vjepa.data.index import read_index, task_classes
    from vjepa.data.transforms import EvalTransform

    reject_unknown(config, KEYS, "extract")
    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))
    enc_cfg = dict(config.get("encoder") or {})
    protocol = Protocol.from_config(config.get("protocol"), "extract.protocol")
    data = dict(config.get("data") or {})
    if not data.get("index"):
        raise UserError("extract.data.index: no data index given")
    task, split = data.get("task"), data.get("split", "train")
    records = read_index(data["index"], task=task, split=split)
    if not records:
        raise UserError(f"extract.data: no usable {task}/{split} rows in {data['index']}")
    num_classes = int(data.get("num_classes") or task_classes(data["index"], task))
    encoder = build_frozen_encoder(enc_cfg, config.get("model"))
    dataset = ClipDataset(
        records,
        protocol.frames_per_clip,
        protocol.frame_step,
        num_clips=protocol.num_segments,
        random_clip=False,
        transform=EvalTransform(protocol.crop_size, protocol.num_views),
    )
    meta = {
        "task": task,
        "split": split,
        "index": str(data["index"]),
        "encoder": {
            "source": enc_cfg.get("source", "checkpoint"),
            "path": enc_cfg.get("path"),
            "which": enc_cfg.get("which", "target_encoder"),
            "seed": enc_cfg.get("seed", 0),
            "preset": getattr(encoder, "preset", None),
        },
    }
    stats = extract_features(
        encoder,
        dataset,
        out / "features",
        labels=[int(r["label"]) for r in records],
        samples=[r["path"] for r in records],
        groups=[r.get("group") for r in records],
        protocol=protocol,
        num_classes=num_classes,
        dtype=config.get("dtype", "float16"),
        batch_size=config.get("batch_size", "auto"),
        num_workers=int(config.get("num_workers", 0)),
        device=config.get("device"),
        shard_mb=float(config.get("shard_mb", 256)),
        meta=meta,
        progress=bool(config.get("progress", True)),
    )
    return {**stats, "task": task, "split": split}
