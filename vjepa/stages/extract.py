"""Stage ``extract``: frozen features of one split, written once to a feature store.

Encoders: ``checkpoint`` (ours; ``which`` picks target_encoder or encoder), ``official`` (the
reference layout, ``module.backbone.`` prefixes) or ``random`` (the random-init baseline built
from ``model`` and ``encoder.seed``). The store goes to ``<out>/features``; ``progress.json``
counts the clips stored (phase ``extract <split>``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vjepa.errors import UserError
from vjepa.eval.extract import Protocol, build_frozen_encoder, eval_clips, extract_features
from vjepa.utils.keys import reject_unknown
from vjepa.utils.progress import ProgressWriter

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


def run(config: dict[str, Any], out: Path) -> dict[str, Any]:
    from vjepa.data.index import read_index, task_classes

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
    dataset = eval_clips(records, protocol)
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
        on_progress=ProgressWriter(out, f"extract {split}", "clip").update,
    )
    return {**stats, "task": task, "split": split}
