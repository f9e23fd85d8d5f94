"""Probe training length: ``min_steps`` keeps small label fractions from being under-trained."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vjepa.errors import UserError
from vjepa.eval.heads import train_probe
from vjepa.eval.probe_train import FeatureSet, ProbeParams


def _features(n: int, seed: int = 0) -> FeatureSet:
    g = torch.Generator().manual_seed(seed)
    labels = np.arange(n) % 2
    x = torch.randn(n, 1, 1, 4, 8, generator=g)
    x[:, ..., 0] += torch.as_tensor(labels, dtype=torch.float32).view(n, 1, 1, 1) * 3
    return FeatureSet(x, np.arange(n), labels)


@pytest.mark.parametrize(("n_train", "expected_epochs"), [(64, 3), (16, 12), (8, 24)])
def test_min_steps_raises_the_epoch_count_of_small_training_sets(n_train, expected_epochs):
    params = ProbeParams(kind="linear", epochs=3, batch_size=8, lr=1e-2, min_steps=24)
    res = train_probe(_features(n_train), _features(16, 1), params, num_classes=2, embed_dim=8)
    assert len(res.history) == expected_epochs == params.epochs_for(n_train)


def test_min_steps_must_not_be_negative():
    with pytest.raises(UserError, match="min_steps"):
        ProbeParams.from_config({"min_steps": -1})


def test_probe_trains_with_denormals_flushed_and_restores_them():
    """Denormal gradients of an overfitting probe are slow on CPU; flushing is scoped to training."""
    tiny = torch.tensor(1e-40)  # a float32 denormal
    seen: list[float] = []
    params = ProbeParams(kind="linear", epochs=2, batch_size=8, lr=1e-2)
    train_probe(
        _features(16),
        _features(16, 1),
        params,
        num_classes=2,
        embed_dim=8,
        on_epoch=lambda epoch, val, model: seen.append(float(tiny * 1.0)),
    )
    assert seen == [0.0, 0.0]
    assert float(tiny * 1.0) > 0.0
