"""The two prediction targets of V-JEPA's Table 1: features (the method) and pixels (the ablation).

Both share everything but the target: the same masks, context encoder and predictor. For every
mask generator i the context encoder sees the clip's context tokens, the predictor fills in the
target tokens, and the loss is averaged over generators.

- ``feature``: targets are the EMA target encoder's output on the full clip, layer-normed without
  affine parameters, gathered at the target tokens; loss = L1.
- ``pixel``: targets are the clip's tubelets (tubelet x patch x patch x 3 values, ImageNet-
  normalised input), each normalised by its own mean and variance as in MAE; loss = MSE. The
  predictor still outputs the encoder width D; a linear pixel head D -> tubelet*patch*patch*3
  maps it to pixels (the only extra parameters of the ablation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vjepa.models.blocks import gather_tokens  # the models' own: one token gather everywhere

PIXEL_EPS = 1e-6

__all__ = ["JEPA", "feature_targets", "gather_tokens", "patchify", "pixel_targets"]


def patchify(video: Tensor, tubelet: int, patch: int) -> Tensor:
    """[B, C, T, H, W] -> [B, N, tubelet*patch*patch*C], tokens in (t, h, w) order, w fastest.

    The token order is the patch embedding's, so token k of the encoder covers row k here.
    Values inside a token are ordered (dt, dy, dx, c).
    """
    b, c, t, h, w = video.shape
    gt, gh, gw = t // tubelet, h // patch, w // patch
    x = video.reshape(b, c, gt, tubelet, gh, patch, gw, patch)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # b, gt, gh, gw, dt, dy, dx, c
    return x.reshape(b, gt * gh * gw, tubelet * patch * patch * c)


def pixel_targets(video: Tensor, tubelet: int, patch: int, eps: float = PIXEL_EPS) -> Tensor:
    """Per-tubelet normalised pixels (MAE's ``norm_pix_loss``; unbiased variance, eps 1e-6)."""
    x = patchify(video.float(), tubelet, patch)
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True)
    return (x - mean) / (var + eps) ** 0.5


@torch.no_grad()
def feature_targets(target_encoder: nn.Module, video: Tensor) -> Tensor:
    """Layer-normed (no affine) target-encoder features of the full clip, no gradient."""
    h = target_encoder(video)
    return F.layer_norm(h, (h.size(-1),))


class JEPA(nn.Module):
    """Context encoder + predictor (+ pixel head): one forward per train step returns the loss.

    Bundling them lets DDP see one forward and one backward per step, even though the encoder
    runs once per mask generator.
    """

    def __init__(self, encoder: nn.Module, predictor: nn.Module, target: str = "feature"):
        super().__init__()
        if target not in ("feature", "pixel"):
            raise ValueError(f"pretrain.target must be 'feature' or 'pixel', not {target!r}")
        self.target = target
        self.encoder = encoder
        self.predictor = predictor
        self.pixel_head: nn.Linear | None = None
        if target == "pixel":
            tubelet, patch = _tubelet_patch(encoder)
            self.pixel_head = nn.Linear(encoder.embed_dim, tubelet * patch * patch * 3)
            nn.init.trunc_normal_(self.pixel_head.weight, std=0.02)
            nn.init.zeros_(self.pixel_head.bias)

    def forward(
        self,
        video: Tensor,
        masks_ctx: list[Tensor],
        masks_tgt: list[Tensor],
        targets: Tensor,
    ) -> Tensor:
        """Mean over mask generators of L1 (features) or MSE (pixels) at the target tokens.

        ``targets`` is [B, N, E]: layer-normed target features or normalised tubelet pixels for
        every token; this function gathers the target tokens of each generator.
        """
        losses = []
        for i, (ctx, tgt) in enumerate(zip(masks_ctx, masks_tgt, strict=True)):
            z = self.encoder(video, ctx)  # context encoder on the visible tokens only
            pred = self.predictor(z, ctx, tgt, i)  # predictions at the masked tokens
            h = gather_tokens(targets, tgt)  # their targets
            if self.pixel_head is None:
                losses.append(torch.mean(torch.abs(pred.float() - h.float())))  # L1
            else:
                pred = self.pixel_head(pred)
                losses.append(torch.mean((pred.float() - h.float()) ** 2))  # MSE
        return torch.stack(losses).mean()


def _tubelet_patch(encoder: nn.Module) -> tuple[int, int]:
    """(tubelet, patch) of an encoder, read from its Conv3d patch embedding."""
    kernel = encoder.patch_embed.proj.kernel_size
    if len(kernel) == 3:
        return int(kernel[0]), int(kernel[1])
    return 1, int(kernel[0])
