"""Identity or placement: every config key either decides what a stage computes or where and how
it runs. This module is the one list of which is which.

Identity keys go into the stage's params section and its uid: changing one makes a new stage.
Placement keys (the executor and its resources, worker counts, the Optuna storage) never change a
result, so they stay out of both: moving a sweep from a journal file to PostgreSQL, or from 1 to
8 workers, reruns nothing. A stage learns its placement at run time from ``.vjepa/placement.json``
(untracked; written by ``vjepa-exp compile`` and ``vjepa-exp run``, the last one wins), which
``vjepa-exp exec`` reads under both ``vjepa-exp run`` and plain ``dvc repro``; a stage missing
from it (a fresh clone) runs with the stage's own defaults (a journal file in its folder, one
sweep worker, ...).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vjepa.models.sizes import MODEL_KEYS

IDENTITY = "identity"
PLACEMENT = "placement"
FILE = Path(".vjepa") / "placement.json"

# Every key of every config group (vjepa/conf/<group>/*.yaml), by its dotted path. A mapping whose
# inside is free-form (synth fields, datasets, protocols, search spaces, resources) is classified
# whole; a new key of a group must be added here (tests/pipeline/test_pipeline_secrets.py).
CLASSES: dict[str, str] = {
    **dict.fromkeys(
        (
            "data.synth",
            "data.source",
            "data.root",  # resolves the dataset paths: the files it names are the data
            "data.probe",
            "data.datasets",
        ),
        IDENTITY,
    ),
    "data.workers": PLACEMENT,  # indexing / rendering processes; the index is the same
    **{f"model.{k}": IDENTITY for k in MODEL_KEYS},  # every key builds the encoder
    "masking.name": IDENTITY,
    "masking.generators": IDENTITY,
    **{
        f"pretrain.{k}": IDENTITY
        for k in (
            "target",
            "seed",
            "batch_size",
            "epochs",
            "iterations_per_epoch",
            "start_lr",
            "lr",
            "final_lr",
            "warmup_epochs",
            "ipe_scale",
            "weight_decay",
            "final_weight_decay",
            "ema",
            "clip_grad",
            "accumulation_steps",
            "dtype",
            "compile",
            "checkpoint_every",
            "log_every",
            "max_loss",
            "data",
        )
    },
    **{
        f"pretrain.clip.{k}": IDENTITY
        for k in (
            "frames_per_clip",
            "frame_step",
            "crop_size",
            "random_resize_scale",
            "random_resize_aspect_ratio",
            "hflip",
        )
    },
    # DataLoader processes: clips and their order are drawn per item (vjepa.train.sampling)
    "pretrain.clip.num_workers": PLACEMENT,
    **{
        f"eval.{k}": IDENTITY
        for k in (
            "train_split",
            "eval_split",
            "val_fraction",
            "dtype",
            "batch_size",
            "protocols",
            "default_protocol",
            "features",
            "store_budget",
        )
    },
    **{
        f"probe.{k}": IDENTITY
        for k in (
            "kind",
            "num_heads",
            "depth",
            "lr",
            "weight_decay",
            "epochs",
            "batch_size",
            "warmup_epochs",
            "clip_grad",
            "min_steps",
            "heads",
        )
    },
    **{
        f"sweep.{k}": IDENTITY for k in ("n_trials", "sampler", "pruner", "space", "heads_per_pass")
    },
    # several workers interleave trials by timing, so no parallel sweep repeats bit for bit: the
    # worker count says how fast the same search runs, not which search it is
    "sweep.workers": PLACEMENT,
    "sweep.storage": PLACEMENT,  # where the study's trials are kept (journal file or database)
    "executor": PLACEMENT,  # the runner's own settings, never part of a stage
}

# Where a placement key sits inside the stage configs the compiler builds: {kind: dotted path}.
IN_STAGE: dict[str, dict[str, str]] = {
    "data.workers": {"data": "workers"},
    "pretrain.clip.num_workers": {"pretrain": "clip.num_workers"},
    "sweep.workers": {"probe": "sweep.workers", "stream": "sweep.workers"},
    "sweep.storage": {"probe": "sweep.storage", "stream": "sweep.storage"},
    "executor": {},
}


def classify(key: str) -> str:
    """``identity`` or ``placement`` for a dotted config key (its longest classified prefix);
    KeyError for a key nobody classified."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        found = CLASSES.get(".".join(parts[:end]))
        if found:
            return found
    raise KeyError(f"{key}: not classified as identity or placement (vjepa.pipeline.placement)")


def is_placement(key: str) -> bool:
    """True for a placement key (an unclassified key counts as identity: it stays in the uid)."""
    try:
        return classify(key) == PLACEMENT
    except KeyError:
        return False


def _paths(kind: str) -> list[str]:
    return [paths[kind] for paths in IN_STAGE.values() if kind in paths]


def split(kind: str, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(identity config, placement) of one stage config: the placement keys are taken out of the
    config (which becomes the params section and the uid) into a flat ``{dotted path: value}``."""
    identity = copy.deepcopy(dict(config))
    placement: dict[str, Any] = {}
    for path in _paths(kind):
        *parents, leaf = path.split(".")
        node: Any = identity
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            placement[path] = node.pop(leaf)
    return identity, placement


def read(root: Path) -> dict[str, dict[str, Any]]:
    """The placement file ({} when absent or unreadable: the stages' defaults apply)."""
    path = Path(root) / FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def for_stage(root: Path, name: str) -> dict[str, Any]:
    """The placement of stage ``name`` ({}: the stage's own defaults)."""
    found = read(root).get(name)
    return dict(found) if isinstance(found, dict) else {}


def write(
    root: Path, placements: Mapping[str, Mapping[str, Any]], drop: Iterable[str] = ()
) -> None:
    """Merge ``placements`` (stage name -> placement) into the placement file, dropping the stages
    in ``drop``; written atomically, only when its bytes change."""
    from vjepa.utils.io import atomic_write_text

    path = Path(root) / FILE
    data = read(root)
    data.update({name: dict(p) for name, p in placements.items()})
    for name in drop:
        data.pop(name, None)
    text = json.dumps(dict(sorted(data.items())), indent=1, sort_keys=True, default=str) + "\n"
    if path.is_file() and path.read_text() == text:
        return
    atomic_write_text(path, text)
