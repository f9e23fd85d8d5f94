"""Procedural rendering of the synthetic benchmark: shapes, textures, backgrounds, motion.

Everything is drawn with anti-aliased signed distances on a torus (objects leaving one edge enter
at the opposite one), so a start position drawn uniformly says nothing about the direction of
motion. A clip is a pure function of its ``SynthConfig`` and its ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vjepa.data.vocabulary import PALETTE

if TYPE_CHECKING:
    from vjepa.data.synth import SynthConfig


_DIRECTION_NAMES8 = (
    "right",
    "down-right",
    "down",
    "down-left",
    "left",
    "up-left",
    "up",
    "up-right",
)


@dataclass
class Obj:
    """One object of a clip: look plus linear motion (pixels, radians, per frame)."""

    shape: str
    texture: str
    colour: np.ndarray
    radius: float
    x: float
    y: float
    vx: float
    vy: float
    angle: float
    omega: float


# ---------------------------------------------------------------------------------------------
# class sets


def motion_class_names(cfg: SynthConfig) -> list[str]:
    """Names of the motion classes, in label order."""
    if cfg.motion == "rotation":
        return ["cw", "ccw"]
    n = cfg.directions
    dirs = list(_DIRECTION_NAMES8) if n == 8 else [f"dir{round(360 * k / n)}deg" for k in range(n)]
    if cfg.motion == "direction":
        return dirs
    return [f"{d}@{s:g}" for d in dirs for s in cfg.speed_classes]


def reversed_motion_label(cfg: SynthConfig, label: int) -> int:
    """The motion label of a clip played backwards (a different label, same appearance)."""
    if cfg.motion == "rotation":
        return 1 - label
    n, k = cfg.directions, 1 if cfg.motion == "direction" else len(cfg.speed_classes)
    d, s = divmod(label, k)
    return ((d + n // 2) % n) * k + s


def appearance_class_names(cfg: SynthConfig) -> list[str]:
    """Names of the appearance classes, in label order."""
    if cfg.appearance == "shape":
        return list(cfg.shapes)
    if cfg.appearance == "colour":
        return list(cfg.colours)
    if cfg.appearance == "texture":
        return list(cfg.textures)
    return [f"{c}-{s}" for s in cfg.shapes for c in cfg.colours]


def _look(cfg: SynthConfig, label: int, rng: np.random.Generator) -> tuple[str, str, np.ndarray]:
    """Shape, texture and colour of a labelled object of appearance class ``label``."""
    shape = cfg.shapes[rng.integers(len(cfg.shapes))]
    texture = "solid"
    colour = _random_colour(rng)
    if cfg.appearance == "shape":
        shape = cfg.shapes[label]
    elif cfg.appearance == "colour":
        colour = np.array(PALETTE[cfg.colours[label]])
    elif cfg.appearance == "texture":
        texture = cfg.textures[label]
    else:
        s, c = divmod(label, len(cfg.colours))
        shape, colour = cfg.shapes[s], np.array(PALETTE[cfg.colours[c]])
    return shape, texture, colour


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated random colour (HSV with high S and V), so objects stand out from grey."""
    h, s, v = rng.uniform(0, 1), rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    return v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)


# ---------------------------------------------------------------------------------------------
# drawing


def _sdf(shape: str, x: np.ndarray, y: np.ndarray, r: float) -> np.ndarray:
    """Approximate signed distance in pixels (positive inside) of a shape of size ``r``."""
    ax, ay = np.abs(x), np.abs(y)
    if shape == "circle":
        return r - np.hypot(x, y)
    if shape == "square":
        return 0.85 * r - np.maximum(ax, ay)
    if shape == "diamond":
        return (1.2 * r - (ax + ay)) / math.sqrt(2)
    if shape == "ring":
        return 0.3 * r - np.abs(np.hypot(x, y) - 0.7 * r)
    if shape == "cross":
        return np.maximum(np.minimum(r - ax, 0.33 * r - ay), np.minimum(r - ay, 0.33 * r - ax))
    if shape == "triangle":
        c = 1.15 * r / 2  # apothem of a triangle with circumradius 1.15 r, pointing up
        d = np.maximum(-y, np.maximum(0.866 * x + 0.5 * y, -0.866 * x + 0.5 * y))
        return c - d
    if shape == "bar":
        return np.minimum(r - ax, 0.3 * r - ay)
    raise ValueError(shape)


def _pattern(texture: str, x: np.ndarray, y: np.ndarray, r: float) -> np.ndarray:
    """Fill intensity in [0.35, 1] of a texture in object coordinates (moves with the object)."""
    if texture == "solid":
        return np.ones_like(x)
    period = max(r / 1.5, 2.0)
    if texture == "stripes":
        on = np.sin(2 * np.pi * x / period) > 0
    elif texture == "checker":
        on = (np.floor(x / (period / 2)) + np.floor(y / (period / 2))) % 2 == 0
    elif texture == "dots":
        on = np.hypot((x / period) % 1 - 0.5, (y / period) % 1 - 0.5) > 0.3
    else:
        raise ValueError(texture)
    return np.where(on, 1.0, 0.35)


def _draw(img: np.ndarray, obj: Obj, t: float, cam: np.ndarray, grid: tuple) -> None:
    """Alpha-blend ``obj`` at time ``t`` into ``img`` [H, W, 3] in place (torus wrap)."""
    h, w = img.shape[:2]
    ys, xs = grid
    cx, cy = obj.x + obj.vx * t - cam[0], obj.y + obj.vy * t - cam[1]
    dx = (xs - cx + w / 2) % w - w / 2
    dy = (ys - cy + h / 2) % h - h / 2
    a = obj.angle + obj.omega * t
    ca, sa = math.cos(a), math.sin(a)
    lx, ly = ca * dx + sa * dy, -sa * dx + ca * dy
    alpha = np.clip(_sdf(obj.shape, lx, ly, obj.radius) + 0.5, 0.0, 1.0)[..., None]
    fill = obj.colour * _pattern(obj.texture, lx, ly, obj.radius)[..., None]
    img *= 1 - alpha
    img += alpha * fill


def _background(cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Static background [H, W, 3] in [0, 1]: flat grey, grey + pixel noise, or smooth texture."""
    n = cfg.resolution
    level = rng.uniform(*cfg.background_level)
    bg = np.full((n, n, 3), level)
    if cfg.background == "noise":
        bg += rng.normal(0, cfg.background_contrast, (n, n, 1))
    elif cfg.background == "texture":
        white = rng.normal(0, 1, (n, n, 3))
        f = np.fft.fftfreq(n)
        sigma = 1 / max(cfg.background_scale * n, 1e-6)
        gain = np.exp(-(f[:, None] ** 2 + f[None, :] ** 2) / (2 * sigma**2))[..., None]
        smooth = np.real(np.fft.ifft2(np.fft.fft2(white, axes=(0, 1)) * gain, axes=(0, 1)))
        bg += cfg.background_contrast * smooth / (smooth.std() + 1e-8)
    return bg


def _motion(cfg: SynthConfig, label: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """(vx, vy, omega) of the labelled objects for motion class ``label``."""
    n = cfg.resolution
    if cfg.motion == "rotation":
        omega = rng.uniform(*cfg.rotation_speed) * (1 if label == 0 else -1)
        heading = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(*cfg.rotation_drift) * n
        return speed * math.cos(heading), speed * math.sin(heading), omega
    k = 1 if cfg.motion == "direction" else len(cfg.speed_classes)
    d, s = divmod(label, k)
    heading = 2 * np.pi * d / cfg.directions
    speed = (
        rng.uniform(*cfg.speed_range) if cfg.motion == "direction" else cfg.speed_classes[s]
    ) * n
    return speed * math.cos(heading), speed * math.sin(heading), 0.0


def _distractor_motion(
    cfg: SynthConfig, label: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    """Motion of a distractor: another class of the motion task than the clip's own label."""
    n_classes = len(motion_class_names(cfg))
    other = (label + 1 + rng.integers(n_classes - 1)) % n_classes
    vx, vy, omega = _motion(cfg, other, rng)
    if cfg.motion == "rotation":
        return vx, vy, omega
    return vx, vy, rng.uniform(-1, 1) * cfg.rotation_speed[0]


def _objects(
    cfg: SynthConfig, motion: int, appearance: int, rng: np.random.Generator, still: bool
) -> list[Obj]:
    """Distractors (drawn first, behind) then the labelled objects."""
    n = cfg.resolution
    objs = []
    for _ in range(cfg.num_distractors):
        vx, vy, om = (0.0, 0.0, 0.0) if still else _distractor_motion(cfg, motion, rng)
        objs.append(
            Obj(
                cfg.distractor_shape, "solid", _random_colour(rng),
                rng.uniform(*cfg.distractor_size) * n / 2,
                rng.uniform(0, n), rng.uniform(0, n), vx, vy, rng.uniform(0, 2 * np.pi), om,
            )
        )  # fmt: skip
    vx, vy, om = (0.0, 0.0, 0.0) if still else _motion(cfg, motion, rng)
    for _ in range(cfg.num_objects):
        shape, texture, colour = _look(cfg, appearance, rng)
        objs.append(
            Obj(
                shape, texture, colour, rng.uniform(*cfg.object_size) * n / 2,
                rng.uniform(0, n), rng.uniform(0, n), vx, vy, rng.uniform(0, 2 * np.pi), om,
            )
        )  # fmt: skip
    return objs


def render(
    cfg: SynthConfig, motion: int, appearance: int, rng: np.random.Generator, frames: int
) -> np.ndarray:
    """Render ``frames`` frames uint8 [T, H, W, 3]; ``frames == 1`` draws a still image."""
    n = cfg.resolution
    still = frames == 1
    bg = _background(cfg, rng)
    objs = _objects(cfg, motion, appearance, rng, still)
    heading = rng.uniform(0, 2 * np.pi)
    pan = np.array([math.cos(heading), math.sin(heading)]) * rng.uniform(0, cfg.camera_pan) * n
    jitter = rng.normal(0, cfg.camera_jitter * n, (frames, 2))
    gain = rng.uniform(1 - cfg.brightness_jitter, 1 + cfg.brightness_jitter)
    gain = gain * rng.uniform(1 - cfg.colour_jitter, 1 + cfg.colour_jitter, 3)
    grid = np.mgrid[0:n, 0:n].astype(np.float64) + 0.5
    out = np.empty((frames, n, n, 3), np.uint8)
    for t in range(frames):
        cam = pan * t + (0 if still else jitter[t])
        shift = np.round(cam).astype(int)
        img = np.roll(bg, (-shift[1], -shift[0]), axis=(0, 1)).copy()
        for obj in objs:
            _draw(img, obj, float(t), cam, (grid[0], grid[1]))
        img = img * gain + rng.normal(0, cfg.pixel_noise, img.shape)
        out[t] = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return out
