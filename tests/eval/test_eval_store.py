"""The feature store: 16-bit shards that np.load can memory-map, gathered in any order."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vjepa.errors import DataError
from vjepa.eval.store import FeatureStore, write_array_store


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_roundtrip_across_shards(tmp_path, dtype):
    x = torch.randn(23, 2, 3, 4, 8)
    labels = np.arange(23) % 4
    store = write_array_store(tmp_path / "s", x, labels, dtype=dtype, rows_per_shard=5, num_heads=2)
    assert store.shape == (23, 2, 3, 4, 8) and store.plan.num_shards == 5
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["dtype"] == dtype and manifest["shape"] == [23, 2, 3, 4, 8]
    raw = np.load(tmp_path / "s" / "shard-00001.npy", mmap_mode="r")
    assert isinstance(raw, np.memmap) and raw.shape == (5, 2, 3, 4, 8)
    assert raw.dtype == (np.uint16 if dtype == "bfloat16" else np.float16)
    rows = np.array([22, 0, 7, 7, 13, 4])
    got = store.take(rows, torch.float32)
    want = x[rows].to(torch.bfloat16 if dtype == "bfloat16" else torch.float16).float()
    assert torch.equal(got, want)
    assert np.array_equal(store.labels, labels) and store.valid.all()


def test_pooled_store_and_unfinished_folder(tmp_path):
    store = write_array_store(tmp_path / "p", torch.randn(6, 1, 2, 8), np.zeros(6), num_classes=3)
    assert store.shape == (6, 1, 2, 8) and store.num_classes == 3
    (tmp_path / "p" / "manifest.json").unlink()
    with pytest.raises(DataError, match="did not finish"):
        FeatureStore(tmp_path / "p")
    with pytest.raises(DataError, match="not a feature store"):
        FeatureStore(tmp_path / "nothing")
