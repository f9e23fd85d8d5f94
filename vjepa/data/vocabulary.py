"""What the synthetic benchmark can draw: colours, shapes, textures.

Apart from the renderer so that checking a spec's synthetic-data settings (at compile time, on
every ``run``) does not import numpy.
"""

from __future__ import annotations

PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.15, 0.1),
    "green": (0.1, 0.8, 0.2),
    "blue": (0.15, 0.3, 0.95),
    "yellow": (0.95, 0.85, 0.1),
    "magenta": (0.85, 0.1, 0.85),
    "cyan": (0.1, 0.85, 0.9),
    "orange": (1.0, 0.55, 0.0),
    "white": (0.97, 0.97, 0.97),
    "black": (0.05, 0.05, 0.05),
}

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond", "bar")
TEXTURES = ("solid", "stripes", "checker", "dots")
