"""Label fractions are stratified, deterministic and nested; the validation carve-out keeps
every class in training."""

from __future__ import annotations

import numpy as np
import pytest

from vjepa.errors import UserError
from vjepa.eval.label_fraction import (
    aggregate_splits,
    carve_validation,
    label_fraction_splits,
    mean_std,
    stratified_subset,
)


def _labels(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = [3, 10, 41, 100, 7]  # unbalanced, one very small class
    return rng.permutation(np.repeat(np.arange(len(counts)), counts))


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.5, 1.0])
def test_stratified_every_class_and_proportional(fraction):
    labels = _labels()
    rows = stratified_subset(labels, fraction, seed=3)
    assert len(np.unique(rows)) == len(rows) and np.all(np.diff(rows) > 0)
    for c in np.unique(labels):
        n_c = int((labels == c).sum())
        assert int((labels[rows] == c).sum()) == max(1, round(fraction * n_c))


def test_deterministic_nested_and_seed_dependent():
    labels = _labels()
    a = stratified_subset(labels, 0.1, seed=1)
    assert np.array_equal(a, stratified_subset(labels.copy(), 0.1, seed=1))
    assert not np.array_equal(a, stratified_subset(labels, 0.1, seed=2))
    small, mid, big = (set(stratified_subset(labels, f, 1)) for f in (0.05, 0.1, 0.5))
    assert small <= mid <= big


def test_splits_k_per_fraction_and_aggregate():
    labels = _labels()
    splits = label_fraction_splits(labels, (0.05, 0.5, 1.0), num_splits=3, base_seed=0)
    assert sorted(splits) == [
        (0.05, 0),
        (0.05, 1),
        (0.05, 2),
        (0.5, 0),
        (0.5, 1),
        (0.5, 2),
        (1.0, 0),
    ]
    assert len(splits[(1.0, 0)]) == len(labels)
    results = [{"label_fraction": f, "top1": 10.0 * s, "top5": 50.0} for (f, s) in splits]
    agg = aggregate_splits(results)
    assert agg[0.05]["top1"] == {"mean": 10.0, "std": 10.0, "n": 3}
    assert agg[1.0]["top1"]["std"] == 0.0
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)


def test_carve_validation_stratified_and_disjoint():
    labels = _labels()
    rows = stratified_subset(labels, 0.5, seed=0)
    train, val = carve_validation(labels, rows, 0.2, seed=0)
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(rows)
    assert set(labels[train]) == set(labels)  # every class still trains
    again = carve_validation(labels, rows, 0.2, seed=0)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)
    with pytest.raises(UserError, match="label_fraction"):
        stratified_subset(labels, 0.0, 0)
    with pytest.raises(UserError, match="val_fraction"):
        carve_validation(labels, rows, 1.5, 0)


def test_carve_validation_keeps_time_reversed_pairs_on_one_side():
    # 8 motion classes; rows 2k and 2k+1 are a clip and its reversal, labelled c and c^1
    rng = np.random.default_rng(1)
    base = rng.integers(0, 8, 200)
    labels = np.stack([base, base ^ 1], 1).reshape(-1)
    groups = np.repeat(np.arange(200), 2).astype(str)
    rows = np.arange(400)
    train, val = carve_validation(labels, rows, 0.1, seed=3, groups=groups)
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(rows)
    assert set(groups[train]).isdisjoint(groups[val])  # no pair is split
    assert set(labels[train]) == set(labels)
    assert 0.07 * 400 <= len(val) <= 0.13 * 400  # about the asked share, whole pairs
    ungrouped = carve_validation(labels, rows, 0.1, seed=3)
    assert not set(groups[ungrouped[0]]).isdisjoint(groups[ungrouped[1]])  # what groups prevent


def test_carve_validation_groups_never_empty_a_class():
    labels = np.array([0, 1, 0, 1, 2, 2])
    groups = np.array(["a", "a", "b", "b", "c", "d"])  # classes 0 and 1 only come in pairs
    train, val = carve_validation(labels, np.arange(6), 0.5, seed=0, groups=groups)
    assert set(labels[train]) == {0, 1, 2}
    assert set(groups[train]).isdisjoint(groups[val])
