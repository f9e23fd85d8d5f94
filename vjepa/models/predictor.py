"""The V-JEPA predictor: a narrow ViT that predicts target-token features from context tokens.

Context tokens are projected to the predictor width and given their positions; each target
position gets a learned mask token (one per mask generator) plus its position; the predictor runs
over both and returns its outputs at the target positions, projected back to the encoder width.
"""

from __future__ import annotations

import torch
from torch import nn

from vjepa.models import pos_embed as pe
from vjepa.models.blocks import LN_EPS, Block, gather_tokens, init_weights, rescale_blocks


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
    ) -> None:
        super().__init__()
        self.embed_dim, self.predictor_embed_dim = embed_dim, predictor_embed_dim
        self.depth, self.num_heads, self.mlp_ratio = depth, num_heads, mlp_ratio
        self.grid, self.uniform_power = tuple(grid), uniform_power
        self.num_patches = grid[0] * grid[1] * grid[2]
        self.num_mask_tokens = num_mask_tokens
        self.predictor_embed = nn.Linear(embed_dim, predictor_embed_dim)
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, predictor_embed_dim)) for _ in range(num_mask_tokens)
        )
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
        if self.predictor_pos_embed.is_meta:
            return
        self.apply(init_weights)
        rescale_blocks(self.predictor_blocks)
        with torch.no_grad():
            for token in self.mask_tokens:
                token.zero_()
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
        pos = self.predictor_pos_embed.to(ctx.dtype).expand(b, -1, -1)
        x = self.predictor_embed(ctx) + gather_tokens(pos, masks_ctx)
        token = self.mask_tokens[mask_index % self.num_mask_tokens].to(x.dtype)
        targets = token + gather_tokens(pos, masks_tgt)
        n_ctx = x.shape[1]
        x = torch.cat([x, targets], dim=1)
        for block in self.predictor_blocks:
            x = block(x)
        x = self.predictor_norm(x)
        return self.predictor_proj(x[:, n_ctx:])
