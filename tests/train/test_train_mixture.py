"""Pretraining on a weighted mixture of datasets (VideoMix2M-style ``data.mixture``).

The sampler is checked on sizes alone (weights, determinism, ranks, resume); the records and a
short pretraining run use two real indexes: a synthetic benchmark and a class-per-folder tree
with a still image, each indexed with ``build_index``.
"""

from __future__ import annotations

import copy
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest
import torch
from test_train_loop import tiny_config, weights

from vjepa.data.index import build_index, read_index
from vjepa.errors import UserError
from vjepa.train import loop, pretrain
from vjepa.train.config import resolve
from vjepa.train.sampling import (
    EpochBatchSampler,
    MixtureBatchSampler,
    derive_seed,
    mixture_order,
)

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------ indexes
@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """A 12-video, 4-image synthetic benchmark and its index (tasks motion/appearance/image)."""
    from vjepa.data.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("synth")
    generate(SynthConfig(videos=12, images=4, seed=3), out, workers=1, progress=False)
    build_index(out, out / "index.parquet", workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def tree_index(synth, tmp_path_factory) -> Path:
    """ROOT/<class>/ with 3 videos and a still image (task ``default``), and its index."""
    root = tmp_path_factory.mktemp("tree")
    videos = sorted((synth / "videos" / "val").glob("*.mp4"))
    videos += sorted((synth / "videos" / "test").glob("*.mp4"))
    for i, p in enumerate(videos[:3]):
        (root / "clips" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        shutil.copy(p, root / "clips" / f"c{i % 2}" / p.name)
    shutil.copy(next((synth / "images" / "train").glob("*.png")), root / "clips" / "c0" / "s.png")
    build_index(root / "clips", root / "index.parquet", workers=1, progress=False)
    return root / "index.parquet"


def mixture_data(synth: Path, tree_index: Path) -> dict:
    """K710 stands in as the synthetic benchmark's appearance task, HowTo100M as the tree."""
    return {
        "mixture": [
            {"index": str(tree_index), "task": "default", "weight": 3.0},
            {"index": str(synth / "index.parquet"), "task": "appearance", "weight": 1.0},
        ],
        "split": "train",
    }


# ------------------------------------------------------------------------------------ sampler
def sampler(sizes=(5, 500), weights=(3.0, 1.0), batch=50, batches=80, **kw) -> MixtureBatchSampler:
    return MixtureBatchSampler(
        list(sizes), list(weights), batch, batches, seed=kw.pop("seed", 0), **kw
    )


def epoch(s: EpochBatchSampler, e: int, start: int = 0) -> list[tuple[int, int]]:
    s.set_epoch(e, start)
    return [key for batch in s for key in batch]


def test_draws_follow_the_weights_not_the_sizes():
    keys = epoch(sampler(), 0)  # 4000 draws; dataset 0 is files 0..4, dataset 1 files 5..504
    small = [i for i, _ in keys if i < 5]
    assert len(keys) == 4000
    assert len(small) / len(keys) == pytest.approx(0.75, abs=0.03)
    per_file = Counter(small)  # uniform within the dataset: 600 each, sd ~22
    assert sorted(per_file) == [0, 1, 2, 3, 4]
    assert all(abs(n - len(small) / 5) < 0.15 * len(small) / 5 for n in per_file.values())
    assert max(i for i, _ in keys) < 505
    assert len({p for _, p in keys}) == len(keys)  # every draw its own pass: repeats get new clips


def test_same_seed_same_order_other_seed_or_epoch_differs():
    a = epoch(sampler(seed=1), 2)
    assert a == epoch(sampler(seed=1), 2)
    assert a != epoch(sampler(seed=2), 2)
    assert [i for i, _ in a] != [i for i, _ in epoch(sampler(seed=1), 3)]
    # the pass is a pure function of (epoch, position)
    assert [p for _, p in a] == list(range(2 * 4000, 3 * 4000))


def test_two_ranks_of_batch_b_see_one_rank_of_batch_2b():
    one = sampler(batch=8, batches=6)
    ranks = [sampler(batch=4, batches=6, rank=r, world_size=2) for r in (0, 1)]
    for s in (one, *ranks):
        s.set_epoch(1)
    for big, r0, r1 in zip(one, *ranks, strict=True):
        assert big == r0 + r1


def test_resume_yields_the_tail_of_the_epoch():
    s = sampler(batch=4, batches=10)
    s.set_epoch(3)
    full = list(s)
    s.set_epoch(3, 7)
    assert len(s) == 3 and list(s) == full[7:]


def test_drawn_counts_the_runs_draws_across_epochs():
    s = sampler(sizes=(3, 7), batch=4, batches=5)  # 20 clips per epoch
    keys = epoch(s, 0) + epoch(s, 1) + epoch(s, 2)[:9]
    small = sum(i < 3 for i, _ in keys)
    assert s.drawn(49) == [small, 49 - small]


def test_one_dataset_is_uniform_over_it():
    keys = mixture_order([7], [2.5], seed=0, epoch=0, length=7000)
    assert sorted(Counter(i for i, _ in keys)) == list(range(7))
    assert all(abs(n - 1000) < 150 for n in Counter(i for i, _ in keys).values())


def test_old_shape_order_is_unchanged():
    """Concatenated seeded permutations, as before mixtures existed (bit-identical batches)."""
    s = EpochBatchSampler(5, batch_size=3, batches_per_epoch=3, seed=4)
    expected = []
    for data_pass in (2, 3):  # epoch 1 of 2 passes per epoch
        g = torch.Generator().manual_seed(derive_seed(2, 4, data_pass))
        expected += [(i, data_pass) for i in torch.randperm(5, generator=g).tolist()]
    assert epoch(s, 1) == expected[:9]


# ------------------------------------------------------------------------------------ records
def test_records_sorted_by_dataset_then_path(synth, tree_index):
    data = resolve({**tiny_config(tree_index), "data": mixture_data(synth, tree_index)})["data"]
    records, sizes = loop._mixture_records(read_index, data)
    assert [e["task"] for e in data["mixture"]] == ["appearance", "default"]
    assert [e["weight"] for e in data["mixture"]] == [1.0, 3.0]
    apps = read_index(synth / "index.parquet", task="appearance", split="train")
    tree = read_index(tree_index, task="default", split="train")
    assert sizes == [len(apps), len(tree)] == [len(apps), 4]
    assert [r["path"] for r in records] == sorted(r["path"] for r in apps) + sorted(
        r["path"] for r in tree
    )
    assert sum(r["media"] == "image" for r in records) == 1  # the still of the tree


def test_records_unique_per_dataset_and_path(synth):
    index = str(synth / "index.parquet")
    data = {
        "mixture": [
            {"index": index, "task": "motion", "weight": 1},
            {"index": index, "task": "appearance", "weight": 1},
        ],
        "split": "train",
    }
    records, sizes = loop._mixture_records(
        read_index, resolve({**tiny_config(index), "data": data})["data"]
    )
    assert sizes[0] == sizes[1] and len({r["path"] for r in records}) == sizes[0]
    assert [r["task"] for r in records] == ["appearance"] * sizes[0] + ["motion"] * sizes[1]


@pytest.mark.parametrize(
    "bad",
    [
        {"mixture": []},
        {"mixture": [{"index": "a", "task": "x", "weight": 0}]},
        {"mixture": [{"index": "a", "task": "x", "weight": "1"}]},
        {"mixture": [{"index": "a", "task": "x"}]},
        {"mixture": [{"index": "a", "task": "x", "weight": 1}] * 2},
        {"mixture": [{"index": "a", "task": "x", "weight": 1}], "index": "a"},
        {"mixture": [{"index": "a", "task": "x", "weight": float("nan")}]},
        {
            "mixture": [
                {"index": "a", "task": "x", "weight": 1},
                {"index": "b", "task": "y", "weight": None},
            ]
        },
    ],
)
def test_bad_mixtures_are_refused(bad):
    with pytest.raises(UserError, match="data"):
        resolve({**tiny_config("x"), "data": bad})


# ------------------------------------------------------------------------------------ pretrain
def test_mixture_pretrains_reports_draws_and_resumes_bitwise(
    synth, tree_index, tmp_path, monkeypatch
):
    cfg = tiny_config(tree_index, epochs=2, checkpoint_every=3)  # 10 steps of batch 4
    cfg["data"] = mixture_data(synth, tree_index)
    ref = pretrain(copy.deepcopy(cfg), tmp_path / "ref")
    assert ref["steps"] == 10 and set(ref["mixture"]) == {"appearance", "default"}
    assert sum(ref["mixture"].values()) == 40 and min(ref["mixture"].values()) > 0
    records, sizes = loop._mixture_records(read_index, resolve(cfg)["data"])
    still = next(i for i, r in enumerate(records) if r["media"] == "image")
    drawn = [i for e in (0, 1) for i, _ in mixture_order(sizes, [1.0, 3.0], 0, e, 20)]
    assert still in drawn  # the run loaded the tree's still image as a clip
    assert ref["mixture"]["appearance"] == sum(i < sizes[0] for i in drawn)

    stop, train_step = threading.Event(), loop.Trainer.train_step

    def step_then_stop(self, batches):
        record = train_step(self, batches)
        if self.step == 7:  # mid-epoch 1
            stop.set()
        return record

    monkeypatch.setattr(loop.Trainer, "train_step", step_then_stop)
    first = copy.deepcopy(cfg)
    first["clip"]["num_workers"] = 2  # the order does not depend on the workers
    part = pretrain(first, tmp_path / "run", stop=stop)
    assert part["interrupted"] and part["steps"] == 7 and sum(part["mixture"].values()) == 28
    monkeypatch.setattr(loop.Trainer, "train_step", train_step)
    rest = pretrain(copy.deepcopy(cfg), tmp_path / "run")
    assert rest["steps"] == 10 and rest["steps_this_run"] == 3
    assert rest["mixture"] == ref["mixture"]
    a, b = weights(tmp_path / "ref" / "checkpoint.pt"), weights(tmp_path / "run" / "checkpoint.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
