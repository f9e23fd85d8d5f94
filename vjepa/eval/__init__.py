"""Frozen evaluation: feature store, probe training, label fractions, Optuna sweeps.

Names are resolved on first use so that ``import vjepa.eval`` does not import torch or optuna.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FeatureStore": "vjepa.eval.store",
    "write_array_store": "vjepa.eval.store",
    "extract_features": "vjepa.eval.extract",
    "write_features": "vjepa.eval.extract",
    "Protocol": "vjepa.eval.extract",
    "ProbeParams": "vjepa.eval.probe_train",
    "FeatureSet": "vjepa.eval.probe_train",
    "train_probe": "vjepa.eval.heads",
    "evaluate": "vjepa.eval.heads",
    "stratified_subset": "vjepa.eval.label_fraction",
    "carve_validation": "vjepa.eval.label_fraction",
    "label_fraction_splits": "vjepa.eval.label_fraction",
    "aggregate_splits": "vjepa.eval.label_fraction",
    "load_study": "vjepa.eval.sweep",
    "study_summary": "vjepa.eval.sweep",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vjepa.eval' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
