"""Facts of frozen evaluation that the pipeline reads at compile time (so: no torch here)."""

from __future__ import annotations

# where a probe's features come from: extracted once to a store, or encoded batch by batch
FEATURE_MODES = ("auto", "store", "stream")
# the settings in which the heads of one multi-head probe (or one streamed sweep pass) may differ
HEAD_KEYS = ("lr", "weight_decay")
# Optuna samplers and pruners the probe sweep builds (vjepa.eval.sweep), and its parameter types
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")
PARAM_TYPES = ("float", "int", "categorical")
