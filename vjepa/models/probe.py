"""Frozen-evaluation heads: the attentive probe (official V-JEPA layout) and a linear probe.

The attentive probe keeps the published parameter names so that released probe checkpoints load
into it and ours load into the reference code:

    pooler.query_tokens                                  [1, 1, D]
    pooler.blocks.{i}.*                                  (depth > 1 only: self-attention blocks)
    pooler.cross_attention_block.norm1 / norm2           LayerNorm(D), eps 1e-5
    pooler.cross_attention_block.xattn.q                 Linear(D, D)
    pooler.cross_attention_block.xattn.kv                Linear(D, 2D)
    pooler.cross_attention_block.xattn.proj              Linear(D, D)   present, NOT applied
    pooler.cross_attention_block.mlp.fc1 / fc2           Linear(D, 4D) / Linear(4D, D)
    linear                                               Linear(D, classes)

``xattn.proj`` exists in every released checkpoint but the reference forward never calls it;
applying it silently changes a released probe's predictions, so it is kept and skipped.

``attentive_v2`` is V-JEPA 2's probe: the same names without ``xattn.proj`` (its cross-attention
has no output projection), 3 self-attention ``pooler.blocks`` before the query cross-attention
(depth 4) and 16 heads at every encoder size. Its released files hold a list ``classifiers`` of
such state dicts (one per head of a multi-head run, ``module.`` prefixed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vjepa.errors import CheckpointError, UserError
from vjepa.models.blocks import MLP, init_weights
from vjepa.models.sizes import PROBE_KINDS, PROBE_V2_DEPTH, PROBE_V2_HEADS

LN_EPS = 1e-5


class CrossAttention(nn.Module):
    """Queries attend to tokens. ``proj`` is a parameter of the layout only (see module doc);
    ``out_proj=False`` leaves it out (V-JEPA 2)."""

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, out_proj: bool = True
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise UserError(f"probe: embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        if out_proj:
            self.proj = nn.Linear(dim, dim)

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        b, n, c = q.shape
        h = self.num_heads
        q = self.q(q).reshape(b, n, h, c // h).transpose(1, 2)
        k, v = self.kv(x).reshape(b, x.shape[1], 2, h, c // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(b, n, c)


class CrossAttentionBlock(nn.Module):
    """q = q + xattn(q, norm1(x)); q = q + mlp(norm2(q))."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, out_proj: bool = True
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.xattn = CrossAttention(dim, num_heads, out_proj=out_proj)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        q = q + self.xattn(q, self.norm1(x))
        return q + self.mlp(self.norm2(q))


class SelfAttention(nn.Module):
    """Fused-qkv self-attention, the encoder's layout (``qkv``, ``proj``)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.num_heads
        q, k, v = self.qkv(x).reshape(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block used before the cross-attention when ``depth > 1``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = SelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class AttentivePooler(nn.Module):
    """One learned query cross-attends to all tokens (of all segments) and returns [B, 1, D]."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        depth: int = 1,
        mlp_ratio: float = 4.0,
        out_proj: bool = True,
    ):
        super().__init__()
        self.query_tokens = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.cross_attention_block = CrossAttentionBlock(
            embed_dim, num_heads, mlp_ratio, out_proj=out_proj
        )
        self.blocks = None
        if depth > 1:
            self.blocks = nn.ModuleList(
                Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth - 1)
            )
        nn.init.trunc_normal_(self.query_tokens, std=0.02)
        self.apply(init_weights)
        if self.blocks is not None:  # depth-scaled residual init, as in the reference
            for i, blk in enumerate(self.blocks, start=1):
                blk.attn.proj.weight.data.div_(math.sqrt(2.0 * i))
                blk.mlp.fc2.weight.data.div_(math.sqrt(2.0 * i))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blocks is not None:
            for blk in self.blocks:
                x = blk(x)
        q = self.query_tokens.expand(x.shape[0], -1, -1)
        return self.cross_attention_block(q, x)


class AttentiveClassifier(nn.Module):
    """Attentive probe: ``pooler`` then ``linear``. Input [B, N, D] -> logits [B, classes]."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        num_classes: int,
        depth: int = 1,
        out_proj: bool = True,
    ):
        super().__init__()
        self.pooler = AttentivePooler(embed_dim, num_heads, depth=depth, out_proj=out_proj)
        self.linear = nn.Linear(embed_dim, num_classes)
        init_weights(self.linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.pooler(x).squeeze(1))


class LinearProbe(nn.Module):
    """Average-pool the tokens, standardise (BatchNorm without affine), then ``linear``.

    The non-affine BatchNorm only rescales features (as in MAE-style linear probing), so the head
    stays linear in the pooled features while its learning rate stops depending on feature scale.
    """

    def __init__(self, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(embed_dim, affine=False, eps=1e-6)
        self.linear = nn.Linear(embed_dim, num_classes)
        init_weights(self.linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x.mean(dim=1)))


def build_probe(
    kind: str,
    *,
    embed_dim: int,
    num_classes: int,
    num_heads: int | None = None,
    depth: int | None = None,
) -> nn.Module:
    """Build a probe head. ``num_heads`` is required for the attentive probe (the encoder's);
    V-JEPA 2's (``attentive_v2``) defaults to its 16 heads."""
    if kind == "attentive_v2":
        heads, depth = int(num_heads or PROBE_V2_HEADS), depth or PROBE_V2_DEPTH
        return AttentiveClassifier(embed_dim, heads, num_classes, depth=depth, out_proj=False)
    if kind == "attentive":
        if not num_heads:
            raise UserError("probe.num_heads: the attentive probe needs a head count")
        return AttentiveClassifier(embed_dim, int(num_heads), num_classes, depth=depth or 1)
    if kind == "linear":
        return LinearProbe(embed_dim, num_classes)
    raise UserError(
        f"probe.kind: unknown probe {kind!r} (expected one of {', '.join(PROBE_KINDS)})"
    )


def probe_state_from_official(obj: Mapping[str, Any], index: int = 0) -> dict[str, torch.Tensor]:
    """The probe state_dict inside an official probe checkpoint: V-JEPA's ``classifier`` or
    V-JEPA 2's ``classifiers[index]`` (the released probes are read as head 0), ``module.``
    prefixed."""
    if "classifiers" in obj:
        heads = obj["classifiers"]
        if not isinstance(heads, list | tuple) or not -len(heads) <= index < len(heads):
            raise CheckpointError(
                f"probe checkpoint: 'classifiers' has no head {index} "
                f"({len(heads) if isinstance(heads, list | tuple) else 'not a list'})"
            )
        obj = {"classifier": heads[index]}
    state = obj.get("classifier", obj)
    if not isinstance(state, Mapping):
        raise CheckpointError("probe checkpoint: 'classifier' is not a state_dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_probe_checkpoint(path: str | Path, probe: nn.Module, index: int = 0) -> nn.Module:
    """Load an official (V-JEPA or V-JEPA 2, head ``index``) or our probe checkpoint into
    ``probe`` (strict: every name must match, every shape agree)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: probe checkpoint not found")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    state = probe_state_from_official(obj, index)
    own = probe.state_dict()
    for key, value in state.items():
        if key in own and getattr(value, "shape", None) != own[key].shape:
            raise CheckpointError(
                f"{path}: probe {key} has shape {list(value.shape)}, "
                f"the probe expects {list(own[key].shape)}"
            )
    missing, unexpected = probe.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: probe layout mismatch (missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]})"
        )
    return probe
