"""The probe heads keep the official V-JEPA layout and forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vjepa.errors import CheckpointError, UserError
from vjepa.models import build_probe
from vjepa.models.probe import load_probe_checkpoint

torch.set_num_threads(1)

# The names of a released attentive-probe checkpoint (after stripping ``module.``), written out.
OFFICIAL_ATTENTIVE_KEYS = [
    "pooler.query_tokens",
    "pooler.cross_attention_block.norm1.weight",
    "pooler.cross_attention_block.norm1.bias",
    "pooler.cross_attention_block.xattn.q.weight",
    "pooler.cross_attention_block.xattn.q.bias",
    "pooler.cross_attention_block.xattn.kv.weight",
    "pooler.cross_attention_block.xattn.kv.bias",
    "pooler.cross_attention_block.xattn.proj.weight",
    "pooler.cross_attention_block.xattn.proj.bias",
    "pooler.cross_attention_block.norm2.weight",
    "pooler.cross_attention_block.norm2.bias",
    "pooler.cross_attention_block.mlp.fc1.weight",
    "pooler.cross_attention_block.mlp.fc1.bias",
    "pooler.cross_attention_block.mlp.fc2.weight",
    "pooler.cross_attention_block.mlp.fc2.bias",
    "linear.weight",
    "linear.bias",
]


def test_attentive_state_dict_has_official_names_and_shapes():
    d, classes = 32, 5
    probe = build_probe("attentive", embed_dim=d, num_heads=4, num_classes=classes)
    state = probe.state_dict()
    assert sorted(state) == sorted(OFFICIAL_ATTENTIVE_KEYS)
    assert state["pooler.query_tokens"].shape == (1, 1, d)
    assert state["pooler.cross_attention_block.xattn.q.weight"].shape == (d, d)
    assert state["pooler.cross_attention_block.xattn.kv.weight"].shape == (2 * d, d)
    assert state["pooler.cross_attention_block.mlp.fc1.weight"].shape == (4 * d, d)
    assert state["linear.weight"].shape == (classes, d)
    assert probe.pooler.cross_attention_block.norm1.eps == 1e-5


def test_forward_matches_the_published_equations_and_skips_proj():
    torch.manual_seed(0)
    d, h, classes = 16, 2, 3
    probe = build_probe("attentive", embed_dim=d, num_heads=h, num_classes=classes).eval()
    x = torch.randn(4, 10, d)
    blk = probe.pooler.cross_attention_block
    # q = q + xattn(q, norm1(x)); q = q + mlp(norm2(q)); linear; no xattn.proj
    q = probe.pooler.query_tokens.expand(4, 1, d)
    y = blk.norm1(x)
    qh = blk.xattn.q(q).reshape(4, 1, h, d // h).transpose(1, 2)
    k, v = blk.xattn.kv(y).reshape(4, 10, 2, h, d // h).permute(2, 0, 3, 1, 4)
    att = (qh @ k.transpose(-2, -1) / (d // h) ** 0.5).softmax(-1) @ v
    q = q + att.transpose(1, 2).reshape(4, 1, d)
    q = q + blk.mlp.fc2(F.gelu(blk.mlp.fc1(blk.norm2(q))))
    expected = probe.linear(q.squeeze(1))
    torch.testing.assert_close(probe(x), expected, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        blk.xattn.proj.weight.mul_(7.0)
    torch.testing.assert_close(probe(x), expected, rtol=1e-5, atol=1e-5)


def test_official_probe_checkpoint_loads(tmp_path):
    torch.manual_seed(1)
    src = build_probe("attentive", embed_dim=24, num_heads=3, num_classes=7)
    official = {
        "classifier": {f"module.{k}": v for k, v in src.state_dict().items()},
        "opt": None,
        "scaler": None,
        "epoch": 20,
        "batch_size": 256,
        "world_size": 8,
        "lr": 1e-3,
    }
    torch.save(official, tmp_path / "probe.pth.tar")
    dst = build_probe("attentive", embed_dim=24, num_heads=3, num_classes=7)
    load_probe_checkpoint(tmp_path / "probe.pth.tar", dst)
    x = torch.randn(2, 6, 24)
    torch.testing.assert_close(dst.eval()(x), src.eval()(x))
    wrong = build_probe("attentive", embed_dim=24, num_heads=3, num_classes=7, depth=2)
    with pytest.raises(CheckpointError, match="layout mismatch"):
        load_probe_checkpoint(tmp_path / "probe.pth.tar", wrong)


def test_linear_probe_and_errors():
    probe = build_probe("linear", embed_dim=8, num_classes=3)
    assert probe(torch.randn(5, 4, 8)).shape == (5, 3)
    assert {"linear.weight", "linear.bias"} <= set(probe.state_dict())
    deep = build_probe("attentive", embed_dim=8, num_heads=2, num_classes=3, depth=2)
    assert "pooler.blocks.0.attn.qkv.weight" in deep.state_dict()
    with pytest.raises(UserError, match="probe.kind"):
        build_probe("mlp", embed_dim=8, num_classes=3)
    with pytest.raises(UserError, match="not divisible"):
        build_probe("attentive", embed_dim=10, num_heads=3, num_classes=3)
