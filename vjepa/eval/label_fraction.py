"""Label-efficiency splits: stratified label fractions and the validation carve-out.

Determinism: the subset depends only on (labels, fraction, seed). Each class gets its own
permutation drawn from ``seed`` and the class id, and a fraction keeps its first
``max(1, round(fraction * n_class))`` members, so for one seed the 5 % subset is inside the 10 %
subset, which is inside the 50 % one: label-efficiency curves then compare nested training sets.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from vjepa.errors import UserError

PAPER_FRACTIONS = (0.05, 0.10, 0.50, 1.0)


def _class_perm(members: np.ndarray, label: int, seed: int, stream: int) -> np.ndarray:
    rng = np.random.default_rng([int(seed), int(label), stream])
    return members[rng.permutation(len(members))]


def _check_fraction(name: str, value: float, allow_zero: bool = False) -> None:
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value <= 1):
        raise UserError(f"{name}: {value} is not in {'[0, 1]' if allow_zero else '(0, 1]'}")


def stratified_subset(labels: Sequence[int] | np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted row indices holding ``fraction`` of each class (at least one per class)."""
    _check_fraction("label_fraction", fraction)
    labels = np.asarray(labels)
    keep = []
    for c in np.unique(labels):
        members = np.nonzero(labels == c)[0]
        n = max(1, int(round(fraction * len(members))))
        keep.append(_class_perm(members, c, seed, 0)[:n])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def carve_validation(
    labels: Sequence[int] | np.ndarray,
    rows: np.ndarray,
    val_fraction: float,
    seed: int,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``rows`` into (train, val), stratified; every class keeps one training example.

    The validation rows are the only labels a sweep or early stopping may look at. With
    ``groups`` (one id per store row) a group goes to one side whole: a synthetic clip's
    time-reversed partner holds the same frames, so splitting a pair would let the probe see a
    validation clip during training. Each class takes groups in its own seeded order until it
    has its share of validation rows; a group that would leave some class without a training
    row is skipped.
    """
    _check_fraction("val_fraction", val_fraction, allow_zero=True)
    labels = np.asarray(labels)
    rows = np.asarray(rows, dtype=np.int64)
    sub = labels[rows]
    group_of = rows if groups is None else np.asarray(groups)[rows]
    members: dict[Any, list[int]] = {}
    for r, g in zip(rows.tolist(), group_of.tolist(), strict=True):
        members.setdefault(g, []).append(r)
    group_by_row = dict(zip(rows.tolist(), group_of.tolist(), strict=True))
    classes, counts = np.unique(sub, return_counts=True)
    train_left = dict(zip(classes.tolist(), counts.tolist(), strict=True))
    val_rows: list[int] = []
    taken: set[Any] = set()
    for c, n in zip(classes.tolist(), counts.tolist(), strict=True):
        n_val = max(0, min(n - 1, int(math.floor(val_fraction * n + 0.5))))
        have = n - train_left[c]  # rows of c already in validation through other classes' groups
        for r in _class_perm(rows[sub == c], c, seed, 1).tolist():
            if have >= n_val:
                break
            g = group_by_row[r]
            if g in taken:
                continue
            need = Counter(int(labels[m]) for m in members[g])
            if any(train_left[k] - v < 1 for k, v in need.items()):
                continue
            taken.add(g)
            val_rows += members[g]
            for k, v in need.items():
                train_left[k] -= v
            have += need.get(c, 0)
    val = np.sort(np.asarray(val_rows, dtype=np.int64))
    return np.setdiff1d(rows, val), val


def label_fraction_splits(
    labels: Sequence[int] | np.ndarray,
    fractions: Iterable[float] = PAPER_FRACTIONS,
    num_splits: int = 3,
    base_seed: int = 0,
) -> dict[tuple[float, int], np.ndarray]:
    """{(fraction, seed): rows} for K splits per fraction (seeds base_seed .. base_seed+K-1).

    A full fraction (1.0) has one split only: all its seeds would give the same rows.
    """
    out = {}
    for f in fractions:
        seeds = [base_seed] if f >= 1.0 else range(base_seed, base_seed + num_splits)
        for s in seeds:
            out[(float(f), int(s))] = stratified_subset(labels, f, s)
    return out


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value), as the paper reports."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise UserError("aggregate: no values to aggregate")
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else 0.0)


def aggregate_splits(
    results: Iterable[Mapping],
    by: str = "label_fraction",
    metrics: Sequence[str] = ("top1", "top5"),
) -> dict[float, dict[str, dict[str, float]]]:
    """Group per-split metric dicts by ``by``; {group: {metric: {mean, std, n}}}."""
    groups: dict[float, list[Mapping]] = {}
    for r in results:
        groups.setdefault(r[by], []).append(r)
    out = {}
    for key, rows in sorted(groups.items()):
        out[key] = {}
        for m in metrics:
            mu, sd = mean_std(r[m] for r in rows)
            out[key][m] = {"mean": mu, "std": sd, "n": len(rows)}
    return out
