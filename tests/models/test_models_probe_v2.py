"""V-JEPA 2's attentive probe: published key names, its `classifiers` files, a reference forward."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vjepa.errors import CheckpointError
from vjepa.eval.heads import train_heads
from vjepa.eval.probe_train import FeatureSet, ProbeParams
from vjepa.models.probe import build_probe, load_probe_checkpoint

torch.set_num_threads(1)


def probe_keys(d: int, classes: int) -> dict:
    """Key -> shape of a released V-JEPA 2 probe head (``module.`` stripped), from the facts."""
    keys = {"pooler.query_tokens": (1, 1, d)}
    mlp = {"mlp.fc1.weight": (4 * d, d), "mlp.fc1.bias": (4 * d,)}
    mlp |= {"mlp.fc2.weight": (d, 4 * d), "mlp.fc2.bias": (d,)}
    norms = {f"norm{n}.{p}": (d,) for n in (1, 2) for p in ("weight", "bias")}
    for i in range(3):
        b = f"pooler.blocks.{i}."
        attn = {"attn.qkv.weight": (3 * d, d), "attn.qkv.bias": (3 * d,)}
        attn |= {"attn.proj.weight": (d, d), "attn.proj.bias": (d,)}
        keys |= {b + k: s for k, s in {**norms, **attn, **mlp}.items()}
    b = "pooler.cross_attention_block."
    xattn = {"xattn.q.weight": (d, d), "xattn.q.bias": (d,)}
    xattn |= {"xattn.kv.weight": (2 * d, d), "xattn.kv.bias": (2 * d,)}
    keys |= {b + k: s for k, s in {**norms, **xattn, **mlp}.items()}
    return keys | {"linear.weight": (classes, d), "linear.bias": (classes,)}


def test_vitl_ssv2_probe_has_the_published_names() -> None:
    with torch.device("meta"):
        probe = build_probe("attentive_v2", embed_dim=1024, num_classes=174)
    assert {k: tuple(v.shape) for k, v in probe.state_dict().items()} == probe_keys(1024, 174)
    assert probe.pooler.cross_attention_block.xattn.num_heads == 16  # at every encoder size


def reference_probe(state: dict, x: torch.Tensor, heads: int) -> torch.Tensor:
    """3 self-attention blocks, then the query cross-attends (no output projection); LN eps 1e-5."""

    def attend(q, k, v):
        b, n, d = q.shape
        q, k, v = (t.reshape(b, -1, heads, d // heads).transpose(1, 2) for t in (q, k, v))
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1)
        return (w @ v).transpose(1, 2).reshape(b, n, d)

    def ln(z, p):
        return F.layer_norm(z, (z.shape[-1],), state[p + ".weight"], state[p + ".bias"], 1e-5)

    def lin(z, p):
        return F.linear(z, state[p + ".weight"], state[p + ".bias"])

    def mlp(z, p):
        return lin(F.gelu(lin(z, p + ".mlp.fc1")), p + ".mlp.fc2")

    for i in range(3):
        p = f"pooler.blocks.{i}"
        q, k, v = lin(ln(x, p + ".norm1"), p + ".attn.qkv").chunk(3, dim=-1)
        x = x + lin(attend(q, k, v), p + ".attn.proj")
        x = x + mlp(ln(x, p + ".norm2"), p)
    p = "pooler.cross_attention_block"
    query = state["pooler.query_tokens"].expand(x.shape[0], -1, -1)
    k, v = lin(ln(x, p + ".norm1"), p + ".xattn.kv").chunk(2, dim=-1)
    query = query + attend(lin(query, p + ".xattn.q"), k, v)
    query = query + mlp(ln(query, p + ".norm2"), p)
    return lin(query.squeeze(1), "linear")


def probe_file(path: Path, d: int, classes: int, heads: int = 2) -> list[dict]:
    """A V-JEPA 2 probe file: ``classifiers`` (one state dict per head, ``module.``) + training state."""
    states = []
    for h in range(heads):
        g = torch.Generator().manual_seed(h)
        states.append(
            {k: 0.2 * torch.randn(s, generator=g) for k, s in probe_keys(d, classes).items()}
        )
    wrapped = [{"module." + k: v for k, v in s.items()} for s in states]
    obj = {"classifiers": wrapped, "opt": [{}] * heads, "scaler": [None] * heads, "epoch": 20}
    torch.save(obj | {"batch_size": 32, "world_size": 8}, path)
    return states


def test_a_classifiers_file_loads_each_head_strictly(tmp_path: Path) -> None:
    states = probe_file(tmp_path / "ssv2-probe.pt", d=32, classes=5)
    x = torch.randn(3, 10, 32)
    for index in (0, 1):
        probe = build_probe("attentive_v2", embed_dim=32, num_classes=5, num_heads=4)
        load_probe_checkpoint(tmp_path / "ssv2-probe.pt", probe, index=index).eval()
        with torch.no_grad():
            assert torch.allclose(probe(x), reference_probe(states[index], x, 4), atol=1e-5)
    with pytest.raises(CheckpointError, match="no head 2"):
        load_probe_checkpoint(tmp_path / "ssv2-probe.pt", probe, index=2)
    v1 = build_probe("attentive", embed_dim=32, num_classes=5, num_heads=4, depth=4)
    with pytest.raises(CheckpointError, match="xattn.proj"):  # V-JEPA's probe has it
        load_probe_checkpoint(tmp_path / "ssv2-probe.pt", v1)
    other = build_probe("attentive_v2", embed_dim=32, num_classes=7, num_heads=4)
    with pytest.raises(CheckpointError, match=r"linear.weight has shape \[5, 32\]"):
        load_probe_checkpoint(tmp_path / "ssv2-probe.pt", other)


def test_the_multi_head_trainer_trains_v2_probes() -> None:
    g = torch.Generator().manual_seed(0)
    labels = np.arange(96) % 3
    x = torch.randn(96, 1, 1, 4, 16, generator=g)
    x[:, 0, 0, 1] += 2.0 * torch.randn(3, 16, generator=g)[torch.as_tensor(labels)]
    rows = np.arange(96)
    train, val = FeatureSet(x, rows[:64], labels), FeatureSet(x, rows[64:], labels)
    params = ProbeParams(kind="attentive_v2", num_heads=2, depth=4, epochs=6, batch_size=16)
    params.heads = [{"lr": 3e-3, "weight_decay": 0.01}, {"lr": 1e-4, "weight_decay": 0.01}]
    result = train_heads(train, val, params, num_classes=3, embed_dim=16, seed=0)
    assert len(result.results) == 2
    model = result.results[0].model
    assert len(model.pooler.blocks) == 3 and not hasattr(
        model.pooler.cross_attention_block.xattn, "proj"
    )
    assert max(r.val_top1 for r in result.results) > 0.6  # chance is 1/3
