"""3-D RoPE: the channel layout, the tiled quirk by hand, rotation properties, masks, pretraining."""

from __future__ import annotations

import math

import pytest
import torch

from vjepa.models import build_encoder, build_from_config
from vjepa.models.rope import Rotary, grid_coords, rope_dims
from vjepa.train.objectives import JEPA, feature_targets

torch.set_num_threads(1)

MICRO = {"name": "vit_micro", "num_frames": 4, "img_size": 32, "patch_size": 8, "pred_depth": 1}


def rotate(x: torch.Tensor, coords: list[float], layout: str) -> torch.Tensor:
    """Rotate one head vector x [head_dim] at (t, h, w)."""
    rope = Rotary(torch.tensor([[coords]]), x.shape[-1], layout)
    return rope.apply(x.reshape(1, 1, 1, -1)).flatten()


@pytest.mark.parametrize(("head_dim", "per_axis"), [(64, 20), (80, 26), (14, 4), (32, 10)])
def test_channels_per_axis(head_dim: int, per_axis: int) -> None:
    assert rope_dims(head_dim) == per_axis  # 2 * floor(floor(d / 3) / 2); the rest unrotated


def test_token_coordinates_are_tubelet_row_column() -> None:
    grid = (3, 4, 5)  # idx = t * 20 + h * 5 + w
    idx = torch.tensor([0, 7, 20 + 2 * 5 + 3, 59])
    assert grid_coords(idx, grid).tolist() == [[0, 0, 0], [0, 1, 2], [1, 2, 3], [2, 3, 4]]


def test_tiled_layout_matches_the_worked_example() -> None:
    """head_dim 14: A = 4 channels per axis (2 frequencies: 1 and 10000^-1/2 = 0.01), 2 unrotated.
    Tiled: channel m turns by angle (m mod 2), so the two channels of a pair differ."""
    x = torch.arange(1.0, 15.0)  # 1 .. 14
    out = rotate(x, [1.0, 2.0, 3.0], "tiled")
    expected = []
    for axis, pos in enumerate((1.0, 2.0, 3.0)):
        a0, a1 = pos * 1.0, pos * 0.01  # angle_j = pos * omega_j
        x0, x1, x2, x3 = (float(v) for v in x[4 * axis : 4 * axis + 4])
        expected += [
            x0 * math.cos(a0) - x1 * math.sin(a0),  # channel 0: angle 0, partner -x1
            x1 * math.cos(a1) + x0 * math.sin(a1),  # channel 1: angle 1, partner x0
            x2 * math.cos(a0) - x3 * math.sin(a0),  # channel 2: angle 0 again (tiled)
            x3 * math.cos(a1) + x2 * math.sin(a1),  # channel 3: angle 1
        ]
    expected += [13.0, 14.0]  # not rotated
    assert torch.allclose(out, torch.tensor(expected), atol=1e-5)


def test_interleaved_layout_matches_the_worked_example() -> None:
    x = torch.arange(1.0, 15.0)
    out = rotate(x, [1.0, 2.0, 3.0], "interleaved")
    expected = []
    for axis, pos in enumerate((1.0, 2.0, 3.0)):
        a0, a1 = pos * 1.0, pos * 0.01
        x0, x1, x2, x3 = (float(v) for v in x[4 * axis : 4 * axis + 4])
        expected += [
            x0 * math.cos(a0) - x1 * math.sin(a0),
            x1 * math.cos(a0) + x0 * math.sin(a0),  # the pair shares angle 0
            x2 * math.cos(a1) - x3 * math.sin(a1),
            x3 * math.cos(a1) + x2 * math.sin(a1),
        ]
    assert torch.allclose(out, torch.tensor([*expected, 13.0, 14.0]), atol=1e-5)


def test_interleaved_is_a_rotation_and_tiled_is_not() -> None:
    torch.manual_seed(0)
    x = torch.randn(64)
    for pos in ([3.0, 5.0, 7.0], [1.0, 0.0, 11.0]):
        assert torch.allclose(rotate(x, pos, "interleaved").norm(), x.norm(), atol=1e-5)
    assert not torch.allclose(rotate(x, [3.0, 5.0, 7.0], "tiled").norm(), x.norm(), atol=1e-3)


def test_interleaved_scores_depend_on_relative_position_only() -> None:
    torch.manual_seed(1)
    q, k = torch.randn(64), torch.randn(64)
    p, r = [2.0, 3.0, 1.0], [5.0, 0.0, 4.0]
    base = rotate(q, p, "interleaved") @ rotate(k, r, "interleaved")
    for shift in ([1.0, 0.0, 0.0], [0.0, 4.0, 2.0], [6.0, 1.0, 9.0]):
        moved_p = [a + s for a, s in zip(p, shift, strict=True)]
        moved_r = [a + s for a, s in zip(r, shift, strict=True)]
        score = rotate(q, moved_p, "interleaved") @ rotate(k, moved_r, "interleaved")
        assert torch.allclose(score, base, atol=1e-4)
    far = rotate(q, p, "interleaved") @ rotate(k, [9.0, 0.0, 4.0], "interleaved")
    assert not torch.allclose(far, base, atol=1e-3)  # positions do matter


@pytest.mark.parametrize("layout", ["tiled", "interleaved"])
def test_rope_encoder_has_no_position_table(layout: str) -> None:
    enc = build_encoder("vit_micro", num_frames=4, img_size=32, patch_size=8, pos="rope")
    assert "pos_embed" not in enc.state_dict()
    assert (
        "pos_embed"
        in build_encoder("vit_micro", num_frames=4, img_size=32, patch_size=8).state_dict()
    )
    enc, pred = build_from_config({**MICRO, "pos": "rope", "rope_layout": layout})
    assert "predictor_pos_embed" not in pred.state_dict() and pred.rope_layout == layout


@pytest.mark.parametrize(
    ("arch", "layout"), [("vjepa", "tiled"), ("vjepa", "interleaved"), ("vjepa2_1", "interleaved")]
)
def test_a_full_mask_equals_the_unmasked_forward(layout: str, arch: str) -> None:
    """Kept tokens rotate by their own grid indices: a shuffled full mask only reorders outputs."""
    torch.manual_seed(0)
    enc = build_encoder(
        "vit_micro",
        num_frames=4,
        img_size=32,
        patch_size=8,
        pos="rope",
        rope_layout=layout,
        arch=arch,
    ).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    perm = torch.stack([torch.randperm(32), torch.randperm(32)])
    with torch.no_grad():
        full = enc(x)
        masked = enc(x, [perm])
    picked = torch.gather(full, 1, perm.unsqueeze(-1).expand(-1, -1, full.shape[-1]))
    assert torch.allclose(masked, picked, atol=1e-5)


def test_positions_come_from_the_input_grid() -> None:
    """A bigger clip than the encoder was built for runs (larger indices, nothing to resize), and
    moving content within the grid changes the output (positions are seen)."""
    torch.manual_seed(0)
    enc = build_encoder("vit_micro", num_frames=4, img_size=32, patch_size=8, pos="rope").eval()
    with torch.no_grad():
        assert enc(torch.randn(1, 3, 8, 48, 40)).shape == (1, 4 * 6 * 5, 96)
        x = torch.randn(1, 3, 4, 32, 32)
        shifted = torch.roll(x, shifts=8, dims=-1)  # one patch to the right
        a, b = enc(x), enc(shifted)
    tokens_a = a.reshape(1, 2, 4, 4, 96)[..., :3, :]
    tokens_b = b.reshape(1, 2, 4, 4, 96)[..., 1:, :]
    assert not torch.allclose(tokens_a, tokens_b, atol=1e-4)


def test_predictor_ignores_the_order_of_its_context() -> None:
    torch.manual_seed(0)
    enc, pred = build_from_config({**MICRO, "pos": "rope", "rope_layout": "interleaved"})
    pred.eval()
    with torch.no_grad():  # zero-initialised mask tokens would make every target query zero
        pred.mask_tokens[0].normal_()
    ctx = torch.tensor([[0, 3, 5, 9, 12, 20]])
    tgt = torch.tensor([[1, 2, 30]])
    z = torch.randn(1, 6, 96)
    order = torch.tensor([4, 0, 5, 2, 1, 3])
    with torch.no_grad():
        a = pred(z, ctx, tgt)
        b = pred(z[:, order], ctx[:, order], tgt)
        c = pred(z, ctx + 1, tgt)  # the same context at other positions predicts differently
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, c, atol=1e-4)


@pytest.mark.parametrize("layout", ["tiled", "interleaved"])
def test_rope_pretrains_with_the_v1_objective(layout: str) -> None:
    torch.manual_seed(0)
    enc, pred = build_from_config({**MICRO, "pos": "rope", "rope_layout": layout})
    target, _ = build_from_config({**MICRO, "pos": "rope", "rope_layout": layout})
    jepa = JEPA(enc, pred)
    video = torch.randn(2, 3, 4, 32, 32)
    ctx = [torch.stack([torch.randperm(32)[:20] for _ in range(2)])]
    tgt = [torch.stack([torch.randperm(32)[:8] for _ in range(2)])]
    loss = jepa(video, ctx, tgt, feature_targets(target, video))
    loss.backward()
    assert torch.isfinite(loss)
    assert enc.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert pred.predictor_blocks[0].attn.qkv.weight.grad.abs().sum() > 0
