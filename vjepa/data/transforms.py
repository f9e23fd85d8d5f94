"""Clip transforms: uint8 frames [T, H, W, C] -> normalised float views [V, C, T, H, W].

Train: one random resized crop (scale and aspect-ratio ranges) and one flip decision for all
frames of a clip, as the reference does, so the crop never adds motion. Eval: short-side resize
and ``num_views`` crops spread along the long side (left/centre/right or top/middle/bottom).
Resizing uses ``torch.nn.functional.interpolate`` (no torchvision).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _to_float(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 [T, H, W, C] -> float [C, T, H, W] in [0, 1]."""
    x = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected frames [T, H, W, 3], got {tuple(x.shape)}")
    return x.permute(3, 0, 1, 2).float().div_(255.0)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of [C, T, H, W] to ``size`` (antialiased when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    y = F.interpolate(
        x.transpose(0, 1), size=size, mode="bilinear", align_corners=False, antialias=shrink
    )
    return y.transpose(0, 1)


def _normalise(x: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype).view(-1, 1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(-1, 1, 1, 1)
    return (x - m) / s


def random_resized_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: np.random.Generator,
    attempts: int = 10,
) -> tuple[int, int, int, int]:
    """(top, left, h, w) covering a random area fraction in ``scale`` with w/h in ``ratio``.

    The usual Inception-style sampling: log-uniform ratio, up to ``attempts`` tries, then the
    largest centred box whose ratio is clamped into range.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(attempts):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class TrainTransform:
    """Random resized crop + horizontal flip + ImageNet normalisation; output [1, C, T, S, S]."""

    takes_rng = True

    def __init__(
        self,
        crop_size: int = 224,
        scale: tuple[float, float] = (0.3, 1.0),
        ratio: tuple[float, float] = (0.75, 1.35),
        hflip: float = 0.5,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        self.crop_size, self.scale, self.ratio = crop_size, tuple(scale), tuple(ratio)
        self.hflip, self.mean, self.std = hflip, tuple(mean), tuple(std)

    def __call__(
        self, frames: torch.Tensor | np.ndarray, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        rng = rng if rng is not None else np.random.default_rng()
        x = _to_float(frames)
        top, left, h, w = random_resized_box(x.shape[-2], x.shape[-1], self.scale, self.ratio, rng)
        x = _resize(x[..., top : top + h, left : left + w], (self.crop_size, self.crop_size))
        if rng.uniform() < self.hflip:
            x = x.flip(-1)
        return _normalise(x, self.mean, self.std).unsqueeze(0)


class EvalTransform:
    """Short-side resize, then ``num_views`` square crops along the long side; [V, C, T, S, S]."""

    takes_rng = False

    def __init__(
        self,
        crop_size: int = 224,
        num_views: int = 1,
        short_side: int | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        if num_views < 1:
            raise ValueError("num_views must be >= 1")
        self.crop_size, self.num_views = crop_size, num_views
        self.short_side = short_side or crop_size
        if self.short_side < crop_size:
            raise ValueError("short_side must be >= crop_size")
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, frames: torch.Tensor | np.ndarray, rng: object = None) -> torch.Tensor:
        x = _to_float(frames)
        h, w = x.shape[-2:]
        k = self.short_side / min(h, w)
        x = _resize(x, (max(self.short_side, round(h * k)), max(self.short_side, round(w * k))))
        h, w = x.shape[-2:]
        c = self.crop_size
        views = []
        for pos in self.positions(h, w):
            top, left = pos
            views.append(x[..., top : top + c, left : left + c])
        return _normalise(torch.stack(views), self.mean, self.std)

    def positions(self, height: int, width: int) -> list[tuple[int, int]]:
        """Top-left corners: spread evenly along the long side, centred along the short one.

        One view is the centre crop; three are left/centre/right (or top/middle/bottom).
        """
        c, n = self.crop_size, self.num_views
        along_w = width >= height
        long_free = (width if along_w else height) - c
        short_free = (height if along_w else width) - c
        spots = [long_free // 2] if n == 1 else [round(i * long_free / (n - 1)) for i in range(n)]
        return [(short_free // 2, s) if along_w else (s, short_free // 2) for s in spots]
