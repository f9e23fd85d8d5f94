"""Sin-cos position embeddings: hand-computed values and resizing to other clip sizes."""

from __future__ import annotations

import math

import pytest
import torch

from vjepa.models import build_encoder, pos_embed

torch.set_num_threads(1)


def test_uniform_power_values_by_hand() -> None:
    # D = 12, uniform power: each axis gets 2 * ceil(12 / 6) = 4 channels, omega = [1, 1/100]
    table = pos_embed.sincos_3d(12, (2, 3, 4), uniform_power=True)
    assert table.shape == (24, 12)
    t, h, w = 1, 2, 3
    row = table[t * 12 + h * 4 + w]
    expected = []
    for p in (t, h, w):
        expected += [math.sin(p), math.sin(p / 100), math.cos(p), math.cos(p / 100)]
    assert row.tolist() == pytest.approx(expected, abs=1e-6)


def test_non_uniform_power_values_by_hand() -> None:
    # D = 16: time 8 channels (omega 1, 0.1, 0.01, 0.001), height and width 4 each (omega 1, 0.01)
    table = pos_embed.sincos_3d(16, (3, 2, 2), uniform_power=False)
    t, h, w = 2, 1, 0
    row = table[t * 4 + h * 2 + w]
    omega_t = [1, 0.1, 0.01, 0.001]
    expected = [math.sin(t * o) for o in omega_t] + [math.cos(t * o) for o in omega_t]
    expected += [math.sin(h), math.sin(h / 100), math.cos(h), math.cos(h / 100)]
    expected += [math.sin(w), math.sin(w / 100), math.cos(w), math.cos(w / 100)]
    assert row.tolist() == pytest.approx(expected, abs=1e-6)


def test_uniform_power_is_cut_to_width() -> None:
    # D = 8: three 4-channel codes are 12 wide and cut to 8, so width gets no channels at all
    table = pos_embed.sincos_3d(8, (2, 2, 2), uniform_power=True)
    assert table.shape == (8, 8)
    assert torch.equal(table[0b010], table[0b011])  # same (t, h), different w
    assert table[0b100, 0].item() == pytest.approx(math.sin(1.0))


def test_encoder_stores_the_table() -> None:
    encoder = build_encoder("vit_micro", num_frames=8, img_size=32, patch_size=8)
    expected = pos_embed.sincos_3d(96, (4, 4, 4), uniform_power=True)
    assert torch.equal(encoder.pos_embed[0], expected)


def test_resize_is_trilinear_by_hand() -> None:
    # a table that is linear in t: 2 -> 4 slices samples t at (-0.25, 0.25, 0.75, 1.25), clamped
    table = torch.tensor([0.0, 10.0]).view(1, 2, 1, 1, 1).expand(1, 2, 2, 2, 1).reshape(1, 8, 1)
    resized = pos_embed.resize(table, (2, 2, 2), (4, 2, 2)).view(4, 2, 2)
    assert resized[:, 0, 0].tolist() == pytest.approx([0.0, 2.5, 7.5, 10.0])
    assert torch.equal(pos_embed.resize(table, (2, 2, 2), (2, 2, 2)), table)


def test_encoder_accepts_other_clip_sizes() -> None:
    encoder = build_encoder("vit_micro", num_frames=8, img_size=32, patch_size=8).eval()
    with torch.no_grad():
        out = encoder(torch.randn(1, 3, 4, 48, 48))
    assert out.shape == (1, 2 * 6 * 6, 96)
    resized = encoder.positions((2, 6, 6))
    assert resized.shape == (1, 72, 96)
    # the first slice / corner of the resized table stays close to the stored one's corner
    assert torch.allclose(resized[0, 0], encoder.pos_embed[0, 0], atol=0.5)


def test_image_encoder_2d_table_and_inputs() -> None:
    encoder = build_encoder("vit_micro", num_frames=1, img_size=32, patch_size=8).eval()
    table = pos_embed.sincos_2d(96, (4, 4))
    # MAE convention: first half codes the column (w), second half the row (h)
    assert table[1 * 4 + 2, 0].item() == pytest.approx(math.sin(2.0))
    assert table[1 * 4 + 2, 48].item() == pytest.approx(math.sin(1.0))
    assert torch.equal(encoder.pos_embed[0], table)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(encoder(x), encoder(x.unsqueeze(2)))
        assert encoder(torch.randn(1, 3, 48, 48)).shape == (1, 36, 96)
