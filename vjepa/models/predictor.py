"""The V-JEPA predictor: a narrow ViT that predicts target-token features from context tokens.

Context tokens are projected to the predictor width and given their positions; each target
position gets a learned mask token (one per mask generator) plus its position; the predictor runs
over both and returns its outputs at the target positions, projected back to the encoder width.
Under ``pos: rope`` (V-JEPA 2) nothing is added: every layer rotates queries and keys by the
tokens' indices in the predictor's own grid (the pretraining clip's), as V-JEPA 2's predictor does.
"""

from __future__ import annotations

import torch
from torch import nn

from vjepa.models import pos_embed as pe
from vjepa.models.blocks import LN_EPS, Block, gather_tokens, init_weights, rescale_blocks
from vjepa.models.rope import Rotary, grid_coords
from vjepa.models.sizes import MODEL_DEFAULTS, POS_KINDS, ROPE_LAYOUTS


class Predictor(nn.Module):
    """ctx [B, Kc, D], masks_ctx [B, Kc], masks_tgt [B, Kt], mask_index -> predictions [B, Kt, D]."""

    def __init__(
        self,
        embed_dim: int,
        grid: tuple[int, int, int],
        predictor_embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        num_mask_tokens: int = 2,
        uniform_power: bool = True,
        pos: str = str(MODEL_DEFAULTS["pos"]),
        rope_layout: str = str(MODEL_DEFAULTS["rope_layout"]),
    ) -> None:
        super().__init__()
        if pos not in POS_KINDS or rope_layout not in ROPE_LAYOUTS:
            raise ValueError(f"predictor: unknown positions {pos!r} / RoPE layout {rope_layout!r}")
        self.pos, self.rope_layout = pos, rope_layout
        self.embed_dim, self.predictor_embed_dim = embed_dim, predictor_embed_dim
        self.depth, self.num_heads, self.mlp_ratio = depth, num_heads, mlp_ratio
        self.grid, self.uniform_power = tuple(grid), uniform_power
        self.num_patches = grid[0] * grid[1] * grid[2]
        self.num_mask_tokens = num_mask_tokens
        self.head_dim = predictor_embed_dim // num_heads
        self.predictor_embed = nn.Linear(embed_dim, predictor_embed_dim)
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, predictor_embed_dim)) for _ in range(num_mask_tokens)
        )
        self.predictor_pos_embed: nn.Parameter | None = None
        if pos == "sincos":
            self.predictor_pos_embed = nn.Parameter(
                torch.zeros(1, self.num_patches, predictor_embed_dim), requires_grad=False
            )
        self.predictor_blocks = nn.ModuleList(
            Block(predictor_embed_dim, num_heads, mlp_ratio) for _ in range(depth)
        )
        self.predictor_norm = nn.LayerNorm(predictor_embed_dim, eps=LN_EPS)
        self.predictor_proj = nn.Linear(predictor_embed_dim, embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reference init; mask tokens start at zero, positions are the fixed sin-cos table."""
        if self.predictor_embed.weight.is_meta:
            return
        self.apply(init_weights)
        rescale_blocks(self.predictor_blocks)
        with torch.no_grad():
            for token in self.mask_tokens:
                token.zero_()
            if self.predictor_pos_embed is not None:
                table = pe.sincos(self.predictor_embed_dim, self.grid, self.uniform_power)
                self.predictor_pos_embed.copy_(table.unsqueeze(0))

    def forward(
        self,
        ctx: torch.Tensor,
        masks_ctx: torch.Tensor,
        masks_tgt: torch.Tensor,
        mask_index: int = 0,
    ) -> torch.Tensor:
        b = ctx.shape[0]
        x = self.predictor_embed(ctx)
        token = self.mask_tokens[mask_index % self.num_mask_tokens].to(x.dtype)
        targets = token.expand(b, masks_tgt.shape[1], -1)
        rope = None
        if self.predictor_pos_embed is not None:
            pos = self.predictor_pos_embed.to(ctx.dtype).expand(b, -1, -1)
            x = x + gather_tokens(pos, masks_ctx)
            targets = token + gather_tokens(pos, masks_tgt)
        else:
            index = torch.cat([masks_ctx, masks_tgt], dim=1)
            rope = Rotary(grid_coords(index, self.grid), self.head_dim, self.rope_layout)
        n_ctx = x.shape[1]
        x = torch.cat([x, targets], dim=1)
        for block in self.predictor_blocks:
            x = block(x, rope)
        x = self.predictor_norm(x)
        return self.predictor_proj(x[:, n_ctx:])
