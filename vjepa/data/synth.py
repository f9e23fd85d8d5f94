"""A procedurally generated video benchmark: small stand-ins for SSv2, K400 and ImageNet.

Every clip carries two labels over the same file:

- ``motion`` (like SSv2): how the labelled objects move (direction, direction x speed, or rotation
  sense). With ``time_reversed_pairs`` every clip has a partner that is the same frames played
  backwards under the opposite motion label, so no single frame, and no unordered set of frames,
  tells the label.
- ``appearance`` (like K400): what the labelled objects are (shape, colour, texture, or
  shape x colour), drawn independently of the motion.

The ``image`` task (like IN1K) is a separate set of still PNG images labelled by appearance.

A small-scale calibration showed how easily such a benchmark becomes trivial for a randomly
initialised encoder (coherent motion on a flat background) or degenerate for pretraining (a
textured background dominates the prediction target). Every design choice is therefore a field of
``SynthConfig``. Output, deterministic from ``seed`` (video ``i`` renders from
``numpy.random.default_rng((seed, 0, i))``)::

    DIR/videos/<split>/<id>.mp4     H.264, short GOP, yuv444p
    DIR/images/<split>/<id>.png
    DIR/labels.parquet              one row per file, relative paths, both labels
    DIR/csv/<task>_<split>.csv      "/abs/path <label>" per line, the reference format
    DIR/synth.json                  config, class names, counts (written last)
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vjepa.data.vocabulary import PALETTE, SHAPES, TEXTURES
from vjepa.errors import DataError

SPLITS = ("train", "val", "test")
TASKS = ("motion", "appearance", "image")
FORMAT_VERSION = 1


@dataclass
class SynthConfig:
    """Every knob of the synthetic benchmark. Sizes and speeds are fractions of the frame side."""

    # size of the benchmark
    videos: int = 600
    images: int = 300
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    seed: int = 0
    # clip geometry and encoding
    resolution: int = 32
    frames: int = 16
    fps: int = 8
    codec: str = "libx264"
    pix_fmt: str = "yuv444p"  # yuv420p halves chroma: small objects lose their colour at 32 px
    crf: int = 0  # 0 = lossless
    gop: int = 8  # short GOP: a clip read seeks at most gop-1 frames before its start
    preset: str = "medium"
    # background
    background: str = "flat"  # flat | noise | texture
    background_level: tuple[float, float] = (0.3, 0.7)
    background_contrast: float = 0.1  # std of the noise / texture
    background_scale: float = 0.15  # texture correlation length
    # labelled objects
    num_objects: int = 2  # same appearance class, same motion
    object_size: tuple[float, float] = (0.3, 0.45)  # diameter
    shapes: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring", "diamond")
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow", "magenta", "cyan")
    textures: tuple[str, ...] = ("solid", "stripes", "checker", "dots")
    appearance: str = "shape"  # shape | colour | texture | shape_colour
    # motion classes
    motion: str = "direction"  # direction | direction_speed | rotation
    directions: int = 8
    speed_range: tuple[float, float] = (0.03, 0.06)  # per frame, for motion=direction
    speed_classes: tuple[float, ...] = (0.025, 0.06)  # for motion=direction_speed
    rotation_speed: tuple[float, float] = (0.15, 0.3)  # radians per frame, for motion=rotation
    rotation_drift: tuple[float, float] = (0.0, 0.03)  # translation nuisance when rotating
    time_reversed_pairs: bool = True
    # nuisances
    num_distractors: int = 1  # other objects moving as another motion class
    distractor_shape: str = "bar"
    distractor_size: tuple[float, float] = (0.25, 0.4)
    camera_pan: float = 0.0  # max per-frame camera speed
    camera_jitter: float = 0.01  # per-frame camera shake (std)
    brightness_jitter: float = 0.15  # per-clip gain U(1-b, 1+b)
    colour_jitter: float = 0.1  # per-clip, per-channel gain
    pixel_noise: float = 0.02  # per-pixel, per-frame Gaussian std

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, where: str = "synth") -> SynthConfig:
        """Build from a plain dict (YAML); unknown keys and bad values name the key."""
        values = dict(values or {})
        names = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise DataError(f"{where}.{key}: unknown synth setting{hint}")
        for f in dataclasses.fields(cls):
            if f.name in values and isinstance(values[f.name], list):
                values[f.name] = tuple(values[f.name])
        cfg = cls(**values)
        cfg.validate(where)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists for tuples), as written to synth.json."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    def validate(self, where: str = "synth") -> None:
        """Raise DataError naming the first setting that cannot work."""

        def bad(key: str, why: str) -> DataError:
            return DataError(f"{where}.{key}: {why} (got {getattr(self, key)!r})")

        choices = {
            "background": ("flat", "noise", "texture"),
            "appearance": ("shape", "colour", "texture", "shape_colour"),
            "motion": ("direction", "direction_speed", "rotation"),
            "distractor_shape": SHAPES,
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise bad(key, f"expected one of {', '.join(allowed)}")
        for key, allowed in (("shapes", SHAPES), ("colours", PALETTE), ("textures", TEXTURES)):
            values = getattr(self, key)
            if (
                not values
                or any(v not in allowed for v in values)
                or len(set(values)) < len(values)
            ):
                raise bad(key, f"expected distinct values from {', '.join(allowed)}")
        for key in ("videos", "images", "num_objects", "num_distractors"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 0:
                raise bad(key, "expected an integer >= 0")
        for key in ("resolution", "frames", "fps", "gop"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise bad(key, "expected an integer >= 1")
        if self.resolution % 2:
            raise bad("resolution", "expected an even number of pixels")
        if len(self.split_fractions) != 3 or abs(sum(self.split_fractions) - 1) > 1e-6:
            raise bad("split_fractions", "expected three fractions (train, val, test) summing to 1")
        if self.motion != "rotation" and (self.directions < 2 or self.directions % 2):
            raise bad("directions", "expected an even number >= 2 (time reversal maps d to d+n/2)")
        if self.motion == "rotation":
            symmetric = {"circle", "ring"} & set(self.shapes)
            if symmetric:
                raise bad("shapes", f"rotation is invisible on {', '.join(sorted(symmetric))}")
            if max(self.rotation_speed) >= 0.785:
                raise bad("rotation_speed", "expected < pi/4 rad/frame (square symmetry aliases)")
        if self.time_reversed_pairs and self.videos % 2:
            raise bad("videos", "expected an even count with time_reversed_pairs")
        if not 0 <= self.crf <= 51:
            raise bad("crf", "expected 0..51")

    # -----------------------------------------------------------------------------------------

    def split_counts(self, total: int, paired: bool) -> dict[str, int]:
        """Items per split; pairs never straddle two splits."""
        unit = 2 if paired else 1
        units = total // unit
        train = round(units * self.split_fractions[0])
        val = round(units * self.split_fractions[1])
        return {"train": train * unit, "val": val * unit, "test": (units - train - val) * unit}

    def class_names(self) -> dict[str, list[str]]:
        """Class names per task, in label order."""
        from vjepa.data.render import appearance_class_names, motion_class_names

        appearance = appearance_class_names(self)
        return {"motion": motion_class_names(self), "appearance": appearance, "image": appearance}


@dataclass
class SynthSummary:
    """What ``generate`` wrote."""

    out: Path
    videos: int
    images: int
    seconds: float
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# one item


def _draw_labels(cfg: SynthConfig, kind: str, index: int):
    """The item's generator after its label draws, and the labels (motion -1 for images)."""
    import numpy as np

    names = cfg.class_names()
    rng = np.random.default_rng((cfg.seed, 0 if kind == "video" else 1, index))
    motion = -1 if kind == "image" else int(rng.integers(len(names["motion"])))
    appearance = int(rng.integers(len(names["appearance"])))
    return rng, motion, appearance


def _labels(cfg: SynthConfig, kind: str, index: int) -> tuple[int, int, int | None]:
    """(motion, appearance, reversed_of) of item ``index``; a pair's labels come from its base."""
    from vjepa.data.render import reversed_motion_label

    base = index - index % 2 if kind == "video" and cfg.time_reversed_pairs else index
    _, motion, appearance = _draw_labels(cfg, kind, base)
    if base != index:
        return reversed_motion_label(cfg, motion), appearance, base
    return motion, appearance, None


def render_item(cfg: SynthConfig, kind: str, index: int):
    """Frames uint8 [T, H, W, 3] of video ``index`` (or [1, H, W, 3] of image ``index``).

    The second clip of a time-reversed pair is its base clip's frames in reverse order.
    """
    from vjepa.data.render import render

    _, _, reversed_of = _labels(cfg, kind, index)
    base = index if reversed_of is None else reversed_of
    rng, motion, appearance = _draw_labels(cfg, kind, base)
    frames = render(
        cfg, max(motion, 0), appearance, rng, frames=1 if kind == "image" else cfg.frames
    )
    return frames if reversed_of is None else frames[::-1].copy()


def item_id(kind: str, index: int) -> str:
    return f"{'v' if kind == 'video' else 'i'}{index:06d}"


def _write_items(cfg_dict: dict, out: str, items: list[tuple[str, int, str]]) -> list[dict]:
    """Worker body: render and write a chunk of items; returns their label rows."""
    from vjepa.data.video import write_png, write_video
    from vjepa.utils.io import atomic_path

    cfg = SynthConfig.from_dict(cfg_dict)
    rows = []
    for kind, index, split in items:
        folder = "videos" if kind == "video" else "images"
        rel = f"{folder}/{split}/{item_id(kind, index)}.{'mp4' if kind == 'video' else 'png'}"
        frames = render_item(cfg, kind, index)
        target = Path(out) / rel
        with atomic_path(target) as tmp:
            if kind == "video":
                write_video(
                    tmp, frames, cfg.fps, cfg.codec, cfg.pix_fmt, cfg.crf, cfg.gop, cfg.preset
                )
            else:
                write_png(tmp, frames[0])
        motion, appearance, reversed_of = _labels(cfg, kind, index)
        rows.append(
            {
                "id": item_id(kind, index),
                "kind": kind,
                "split": split,
                "path": rel,
                "motion": motion,
                "appearance": appearance,
                "reversed_of": None if reversed_of is None else item_id(kind, reversed_of),
            }
        )
    return rows


def _plan(cfg: SynthConfig) -> list[tuple[str, int, str]]:
    """(kind, index, split) of every item, in a fixed order."""
    plan = []
    for kind, total, paired in (
        ("video", cfg.videos, cfg.time_reversed_pairs),
        ("image", cfg.images, False),
    ):
        index = 0
        for split, count in cfg.split_counts(total, paired).items():
            plan += [(kind, index + i, split) for i in range(count)]
            index += count
    return plan


# ---------------------------------------------------------------------------------------------
# the whole benchmark


def generate(
    cfg: SynthConfig,
    out_dir: str | os.PathLike[str],
    workers: int = 2,
    progress: bool = True,
    on_progress: Callable[[int, int, Mapping[str, float]], None] | None = None,
) -> SynthSummary:
    """Render and write the benchmark into ``out_dir`` (see the module docstring for the layout).

    ``progress``: a terminal bar; ``on_progress(items written, total, {})`` after each chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from rich.progress import Progress

    from vjepa.utils.io import atomic_path, atomic_write_json, atomic_write_text

    cfg.validate()
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    plan = _plan(cfg)
    chunk = max(1, min(32, len(plan) // max(4 * workers, 1) or 1))
    chunks = [plan[i : i + chunk] for i in range(0, len(plan), chunk)]
    rows: list[dict] = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("synth", total=len(plan))

        def written(items: list) -> None:
            bar.advance(task, len(items))
            if on_progress is not None:
                on_progress(len(rows), len(plan), {})

        if workers <= 1:
            for items in chunks:
                rows += _write_items(cfg.to_dict(), str(out), items)
                written(items)
        else:
            with ProcessPoolExecutor(workers) as pool:
                futures = [pool.submit(_write_items, cfg.to_dict(), str(out), c) for c in chunks]
                for fut, items in zip(futures, chunks, strict=True):
                    rows += fut.result()
                    written(items)

    table = pa.Table.from_pylist(rows)
    with atomic_path(out / "labels.parquet") as tmp:
        pq.write_table(table, tmp)
    names = cfg.class_names()
    counts: dict[str, dict[str, int]] = {}
    for task_name in TASKS:
        kind = "image" if task_name == "image" else "video"
        label_key = "appearance" if task_name == "image" else task_name
        for split in SPLITS:
            lines = [
                f"{out / r['path']} {r[label_key]}"
                for r in rows
                if r["kind"] == kind and r["split"] == split
            ]
            counts.setdefault(task_name, {})[split] = len(lines)
            atomic_write_text(
                out / "csv" / f"{task_name}_{split}.csv", "".join(f"{x}\n" for x in lines)
            )
    atomic_write_json(
        out / "synth.json",
        {"format": FORMAT_VERSION, "config": cfg.to_dict(), "classes": names, "counts": counts},
    )
    return SynthSummary(out, cfg.videos, cfg.images, time.time() - started, counts)


def load_synth_meta(folder: str | os.PathLike[str]) -> dict:
    """The synth.json of a generated folder; DataError if it is not one."""
    from vjepa.utils.io import read_json

    path = Path(folder) / "synth.json"
    if not path.is_file():
        raise DataError(f"{folder}: not a synthetic dataset (no synth.json)")
    return read_json(path)
