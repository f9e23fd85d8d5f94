"""Which stored rows a probe trains, validates and is evaluated on.

The training store is cut once: valid rows -> stratified label fraction (``label_fraction``,
``split_seed``) -> a stratified validation carve-out (``val_fraction``) that keeps each group
(a clip and its time-reversed partner) on one side. Sweeps and early stopping
see only that carve-out; the evaluation store is read only for the final, reported number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vjepa.errors import UserError
from vjepa.eval.label_fraction import carve_validation, stratified_subset
from vjepa.eval.store import FeatureStore


def open_split(config: Mapping[str, Any], which: str) -> FeatureStore:
    """Open ``features.<which>`` and check it holds the task the probe config names."""
    path = (config.get("features") or {}).get(which)
    if not path:
        raise UserError(f"features.{which}: no feature store path given")
    store = FeatureStore(path)
    task, stored = config.get("task"), store.manifest.get("task")
    if task and stored and task != stored:
        raise UserError(f"features.{which}: store holds task {stored!r}, probe asks for {task!r}")
    return store


def training_rows(
    config: Mapping[str, Any], split: str = "train"
) -> tuple[FeatureStore, np.ndarray, np.ndarray]:
    """(train store, train rows, validation rows) after the label fraction and the carve-out."""
    store = open_split(config, "train")
    train, val = carve_rows(config, store.labels, store.valid, store.groups)
    return store, train, val


def carve_rows(
    config: Mapping[str, Any],
    labels: np.ndarray,
    valid: np.ndarray,
    groups: Sequence[str] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) of a labelled split: its usable rows, the stratified label
    fraction, then the grouped validation carve-out (the same cut for stored and streamed
    features)."""
    usable = np.nonzero(valid)[0]
    fraction = float(config.get("label_fraction", 1.0))
    split_seed = int(config.get("split_seed", 0))
    rows = usable[stratified_subset(labels[usable], fraction, split_seed)]
    val_fraction = float(config.get("val_fraction", 0.1))
    return carve_validation(
        labels, rows, val_fraction, split_seed, None if groups is None else np.asarray(groups)
    )
