"""Analytic FLOPs of a V-JEPA train step (multiply-add = 2 FLOPs; norms, softmax, GELU ignored).

Per transformer block on n tokens of width d with MLP width m:
qkv 6nd^2, attention scores and weighted sum 4n^2 d, projection 2nd^2, MLP 4ndm.
A train step counts forward + backward (3x forward) for the context encoder (once per mask
generator, on the context tokens) and the predictor (context + target tokens), and forward only
for the target encoder (full clip; feature target only). The pixel head (D -> tubelet*p*p*3
per target token) is left out: well under 1% of a step.
"""

from __future__ import annotations

from collections.abc import Sequence


def block_flops(n: float, d: int, mlp_ratio: float) -> float:
    """Forward FLOPs of one pre-norm ViT block on ``n`` tokens of width ``d``."""
    m = int(d * mlp_ratio)
    return 6 * n * d * d + 4 * n * n * d + 2 * n * d * d + 4 * n * d * m


def encoder_flops(encoder, n: float) -> float:
    """Forward FLOPs of the encoder on ``n`` kept tokens (patch embedding on all tokens)."""
    d = encoder.embed_dim
    in_per_token = 3 * encoder.tubelet_size * encoder.patch_size**2
    embed = 2 * encoder.num_patches * in_per_token * d
    return embed + encoder.depth * block_flops(n, d, encoder.mlp_ratio)


def predictor_flops(predictor, n_ctx: float, n_tgt: float) -> float:
    """Forward FLOPs of the predictor: embed context, blocks on context + targets, project."""
    d, dp = predictor.embed_dim, predictor.predictor_embed_dim
    blocks = predictor.depth * block_flops(n_ctx + n_tgt, dp, predictor.mlp_ratio)
    return 2 * n_ctx * d * dp + blocks + 2 * n_tgt * dp * d


def train_step_flops(
    encoder,
    predictor,
    ctx_tokens: Sequence[float],
    tgt_tokens: Sequence[float],
    batch_size: int,
    target: str = "feature",
) -> dict[str, float]:
    """FLOPs of one train step on ``batch_size`` clips, given each generator's token counts."""
    online = 0.0
    for n_ctx, n_tgt in zip(ctx_tokens, tgt_tokens, strict=True):
        online += encoder_flops(encoder, n_ctx) + predictor_flops(predictor, n_ctx, n_tgt)
    target_fwd = encoder_flops(encoder, encoder.num_patches) if target == "feature" else 0.0
    per_clip = {"online": 3 * online, "target": target_fwd}
    return {
        "encoder_predictor": per_clip["online"] * batch_size,
        "target_encoder": per_clip["target"] * batch_size,
        "total": (per_clip["online"] + per_clip["target"]) * batch_size,
    }
