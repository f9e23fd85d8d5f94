"""Multi-block, causal and random-tube masks follow their definitions; paper-scale ratios."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vjepa.errors import SpecError
from vjepa.masks import MultiBlock, RandomTube, build_mask_generators, measure, stats

torch.set_num_threads(1)

PAPER_GRID = (8, 14, 14)  # 16 frames x 224^2, patch 16, tubelet 2


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_paper_masks_match_the_reference_measurements() -> None:
    short, long = measure(
        build_mask_generators("multiblock", PAPER_GRID), batch_size=24, batches=30
    )
    # reference at 16x224^2, B=24: ~63% / ~81% of each sample masked; after truncation the
    # context keeps ~373 and ~107 of 1568 tokens
    assert short["masked"] == pytest.approx(0.63, abs=0.03)
    assert long["masked"] == pytest.approx(0.81, abs=0.03)
    assert short["context"] == pytest.approx(373 / 1568, abs=0.04)
    assert long["context"] == pytest.approx(107 / 1568, abs=0.03)


def test_block_size_by_hand() -> None:
    # keep = int(196 * 0.15) = 29; ar 1.5: h = round(sqrt(43.5)) = 7, w = round(sqrt(19.33)) = 4
    mb = MultiBlock(PAPER_GRID, spatial_scale=(0.15, 0.15), aspect_ratio=(1.5, 1.5))
    assert mb.block_size(gen()) == (8, 7, 4)
    half = MultiBlock(PAPER_GRID, temporal_scale=(0.5, 0.5), aspect_ratio=(1.0, 1.0))
    assert half.block_size(gen()) == (4, 5, 5)


def test_one_block_is_one_box() -> None:
    mb = MultiBlock(
        (8, 6, 6),
        num_blocks=1,
        spatial_scale=(0.25, 0.25),
        temporal_scale=(0.5, 0.5),
        aspect_ratio=(1.0, 1.0),
    )
    target = mb.sample(16, gen())  # block (4, 3, 3)
    for sample in target:
        t, h, w = sample.nonzero().unbind(1)
        assert sample.sum() == 4 * 3 * 3
        assert (t.max() - t.min(), h.max() - h.min(), w.max() - w.min()) == (3, 2, 2)


def test_indices_are_truncated_sorted_and_disjoint() -> None:
    for mb in build_mask_generators("multiblock", PAPER_GRID):
        ctx, tgt = mb(24, gen(1))
        assert ctx.dtype == tgt.dtype == torch.long and ctx.shape[0] == tgt.shape[0] == 24
        assert (ctx.diff(dim=1) > 0).all() and (tgt.diff(dim=1) > 0).all()
        for c, t in zip(ctx, tgt, strict=True):
            assert not set(c.tolist()) & set(t.tolist())
        # truncated to the smallest sample: some row keeps all of its context
        full = (~mb.sample(24, gen(1)).flatten(1)).sum(1)
        assert ctx.shape[1] == full.min()


@pytest.mark.parametrize(("name", "slices"), [("causal_6", 3), ("causal_12", 6)])
def test_causal_context_is_the_start_of_the_clip(name: str, slices: int) -> None:
    # p of 16 frames with tubelet 2 -> the first int(8 * p / 16) time slices
    tokens_per_slice = 14 * 14
    for mb in build_mask_generators(name, PAPER_GRID):
        assert mb.context_duration == slices
        target = mb.sample(8, gen(2))
        assert target[:, slices:].all()  # the future is always a target
        ctx, tgt = mb(8, gen(2))
        assert (ctx < slices * tokens_per_slice).all()


def test_random_tube_by_definition() -> None:
    rt = RandomTube(PAPER_GRID, ratio=0.9)
    ctx, tgt = rt(4, gen(3))
    keep = int(196 * 0.1)  # 19 spatial positions, repeated over the 8 slices
    assert ctx.shape == (4, keep * 8) and tgt.shape == (4, (196 - keep) * 8)
    for c, t in zip(ctx, tgt, strict=True):
        assert sorted(c.tolist() + t.tolist()) == list(range(1568))
        spatial = (c % 196).view(8, keep)
        assert (spatial == spatial[0]).all()  # the same positions at every time slice


def test_empty_context_is_resampled() -> None:
    # two 1x1 blocks on a 1x1x2 grid cover everything half the time; those samples are redrawn
    mb = MultiBlock((1, 1, 2), num_blocks=2, spatial_scale=(0.5, 0.5), aspect_ratio=(1.0, 1.0))
    ctx, tgt = mb(64, gen(4))
    assert ctx.shape == (64, 1) and tgt.shape == (64, 1)
    never = MultiBlock((1, 2, 2), num_blocks=1, spatial_scale=(1.0, 1.0), aspect_ratio=(1.0, 1.0))
    with pytest.raises(ValueError, match="no context"):
        never(2, gen())


def test_small_grid_preset_keeps_context() -> None:
    for grid in [(8, 4, 4), (8, 8, 8)]:
        for row in measure(
            build_mask_generators("multiblock_small", grid), batch_size=32, batches=10
        ):
            assert row["context"] >= 0.55 and row["masked"] >= 0.25  # a task, yet context kept


def test_config_format_and_errors() -> None:
    cfg = {
        "name": "custom",
        "generators": [
            {"kind": "multiblock", "num_blocks": 4, "spatial_scale": 0.2, "max_temporal_keep": 0.5},
            {"kind": "random_tube", "ratio": 0.75},
        ],
    }
    mb, rt = build_mask_generators(cfg, (4, 8, 8))
    assert mb.spatial_scale == (0.2, 0.2) and mb.context_duration == 2 and rt.ratio == 0.75
    assert len(build_mask_generators({"name": "causal_12"}, (4, 8, 8))) == 2
    with pytest.raises(SpecError, match="unknown keys"):
        build_mask_generators({"generators": [{"kind": "multiblock", "blocks": 3}]}, (4, 8, 8))
    with pytest.raises(SpecError, match="unknown mask kind"):
        build_mask_generators({"generators": [{"kind": "tube"}]}, (4, 8, 8))
    with pytest.raises(SpecError, match="unknown preset"):
        build_mask_generators("nope", (4, 8, 8))


def test_stats_per_generator() -> None:
    ctx, tgt = [torch.zeros(2, 10, dtype=torch.long)], [torch.zeros(2, 30, dtype=torch.long)]
    assert stats(ctx, tgt, 100) == [{"context": 0.1, "target": 0.3}]


def test_named_presets_and_shipped_config_files_agree() -> None:
    import yaml

    from vjepa.masks.config import preset

    folder = Path(__file__).resolve().parents[2] / "vjepa" / "conf" / "masking"
    for path in sorted(folder.glob("*.yaml")):
        shipped = yaml.safe_load(path.read_text())
        assert shipped["generators"] == preset(shipped["name"])["generators"], path.name
