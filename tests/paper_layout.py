"""A tiny data tree laid out like the V-JEPA paper's data, of real encoded media of varied kinds.

``build_paper_layout(root)`` writes, deterministically from ``seed``::

    root/k400/train.csv, val.csv          "videos/<split>/<class name>/<id>.<ext> <label>"
    root/ssv2/train.csv, val.csv          "videos/<id>.<ext> <label>"
    root/in1k/train/<wnid>/*.JPEG|*.png   ImageNet-style class folders (wnid names)
    root/in1k/val/<wnid>/*.JPEG|*.png
    root/k710/train.csv                   pretraining mixture, its own labels
    root/howto100m/train.csv              pretraining mixture, label 0 on every line

CSV lines are the reference format: ``<path> <int label>``, one space, no header, paths relative
to the CSV's folder (some with spaces: K400 class folders are named like "air drumming").

Unlike ``vjepa.data.synth`` (32x32 lossless H.264 yuv444p .mp4 at one rate), the media differ
in every way a reader meets in real data: H.264 yuv420p and yuv444p (.mp4), MPEG-4 Part 2
(.mp4 and .avi), VP9 (.webm), B-frames and GOPs of one keyframe or several, odd frame sizes,
frame rates 24, 25, 30000/1001 and 60 and one variable-frame-rate file (pts gaps alternating 1
and 3 ticks of 1/120 s). The train CSVs of K400 and SSv2 also list broken files (zero bytes,
truncated, text) and a file that does not exist; val CSVs and the pretraining CSVs list none.

Content is class-dependent so that a probe can beat chance: K400 classes are object colours,
SSv2 classes are directions of motion, IN1K classes are shape + colour, K710 classes are shapes.
Every clip has a second, distracting object of random look and motion. The media kind of a clip
depends on its index within its class, not on its class, so no codec or size tells the label.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vjepa.data.render import PALETTE
from vjepa.data.video import write_png

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")
COLOURS = ("red", "green", "blue", "yellow", "magenta", "cyan")
K400_NAMES = (
    "abseiling",
    "air drumming",
    "answering questions",
    "applauding",
    "applying cream",
    "archery",
)
WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331")
MAX_CLASSES = len(SHAPES)
VFR_TIME_BASE = Fraction(1, 120)
VFR_GAPS = (1, 3)  # pts deltas, in VFR_TIME_BASE ticks, alternating: average 60 fps


@dataclass(frozen=True)
class Kind:
    """How one video is encoded."""

    name: str
    encoder: str  # PyAV encoder name
    codec: str  # the decoder name probe() reports
    container: str  # muxer, also the file extension (avi, mp4, webm)
    pix_fmt: str
    width: int
    height: int
    rate: Fraction
    frames: int
    gop: int
    vfr: bool = False

    @property
    def ext(self) -> str:
        return self.container


R2997 = Fraction(30000, 1001)
KINDS = {
    k.name: k
    for k in (
        # H.264 4:2:0, one keyframe for the whole clip, B-frames (x264 defaults)
        Kind("h264-420-25", "libx264", "h264", "mp4", "yuv420p", 128, 96, Fraction(25), 32, 250),
        # H.264 4:4:4 at an odd width (4:2:0 would need even sizes)
        Kind("h264-444-2997", "libx264", "h264", "mp4", "yuv444p", 171, 128, R2997, 32, 12),
        Kind("h264-420-60", "libx264", "h264", "mp4", "yuv420p", 96, 64, Fraction(60), 48, 24),
        Kind("h264-vfr", "libx264", "h264", "mp4", "yuv420p", 96, 64, Fraction(60), 32, 12, True),
        # MPEG-4 Part 2 accepts odd sizes in 4:2:0
        Kind("mpeg4-avi-24", "mpeg4", "mpeg4", "avi", "yuv420p", 97, 64, Fraction(24), 24, 12),
        Kind("mpeg4-mp4-2997", "mpeg4", "mpeg4", "mp4", "yuv420p", 112, 80, R2997, 32, 12),
        # VP9 (like SSv2's .webm), odd sizes in 4:2:0
        Kind("vp9-2997", "libvpx-vp9", "vp9", "webm", "yuv420p", 97, 64, R2997, 32, 128),
        Kind("vp9-24", "libvpx-vp9", "vp9", "webm", "yuv420p", 128, 96, Fraction(24), 24, 128),
        Kind("vp9-444-25", "libvpx-vp9", "vp9", "webm", "yuv444p", 85, 64, Fraction(25), 24, 12),
    )
}
# media kinds of each dataset, cycled over the clips of a class
MIX = {
    "k400": ("h264-420-25", "h264-444-2997", "mpeg4-avi-24"),
    "ssv2": ("vp9-2997", "vp9-24", "h264-420-60"),
    "k710": ("mpeg4-mp4-2997", "h264-420-25", "vp9-444-25"),
    "howto100m": ("h264-444-2997", "mpeg4-avi-24", "h264-420-60"),
}
IMAGE_SIZES = ((96, 80), (97, 65), (128, 96), (80, 112))  # (width, height); 97x65 is odd
DATASET_SEED = {"k400": 1, "ssv2": 2, "in1k": 3, "k710": 4, "howto100m": 5}


# ---------------------------------------------------------------------------------------------
# content


def _mask(shape: str, x: np.ndarray, y: np.ndarray, r: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a shape of size ``r`` centred at the origin."""
    ax, ay = np.abs(x), np.abs(y)
    if shape == "circle":
        d = r - np.hypot(x, y)
    elif shape == "square":
        d = 0.85 * r - np.maximum(ax, ay)
    elif shape == "diamond":
        d = (1.2 * r - (ax + ay)) / math.sqrt(2)
    elif shape == "ring":
        d = 0.3 * r - np.abs(np.hypot(x, y) - 0.7 * r)
    elif shape == "cross":
        d = np.maximum(np.minimum(r - ax, 0.3 * r - ay), np.minimum(r - ay, 0.3 * r - ax))
    elif shape == "triangle":
        d = 0.575 * r - np.maximum(-y, np.maximum(0.866 * x + 0.5 * y, -0.866 * x + 0.5 * y))
    elif shape == "bar":
        d = np.minimum(r - ax, 0.3 * r - ay)
    else:
        raise ValueError(shape)
    return np.clip(d + 0.5, 0.0, 1.0)


def _saturated(rng: np.random.Generator) -> np.ndarray:
    h, s, v = rng.uniform(0, 1), rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    return v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)


def _sprite(shape: str, colour, heading: float, speed: float, size: float) -> dict:
    return {"shape": shape, "colour": np.asarray(colour, float), "heading": heading,
            "speed": speed, "size": size}  # fmt: skip


def render_clip(
    rng: np.random.Generator, width: int, height: int, frames: int, objects: list[dict]
) -> np.ndarray:
    """uint8 [T, H, W, 3]: objects moving in straight lines (wrapping at the edges) over a
    static smooth background. Object sizes and speeds are fractions of the shorter side."""
    side = min(width, height)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    level = rng.uniform(0.3, 0.6)
    bg = level + 0.08 * np.sin(xs / width * 2 * np.pi * rng.uniform(0.5, 2) + rng.uniform(0, 6))
    bg = np.repeat(bg[..., None], 3, axis=2) * rng.uniform(0.9, 1.1, 3)
    layers = []
    for obj in objects:
        r = obj["size"] * side / 2
        alpha = _mask(obj["shape"], xs - width / 2, ys - height / 2, r)[..., None]
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        v = obj["speed"] * side
        layers.append((alpha, obj["colour"], x0, y0, v * math.cos(obj["heading"]),
                       v * math.sin(obj["heading"])))  # fmt: skip
    gain = rng.uniform(0.9, 1.1)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        img = bg.copy()
        for alpha, colour, x0, y0, vx, vy in layers:
            dx = int(round(x0 + vx * t - width / 2))
            dy = int(round(y0 + vy * t - height / 2))
            a = np.roll(alpha, (dy, dx), axis=(0, 1))
            img = img * (1 - a) + a * colour
        out[t] = np.clip(np.round(img * gain * 255), 0, 255).astype(np.uint8)
    return out


def _distractor(rng: np.random.Generator) -> dict:
    grey = rng.uniform(0.05, 0.95)
    return _sprite("bar", (grey, grey, grey), rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.03), 0.5)


def _objects(dataset: str, label: int, classes: int, rng: np.random.Generator) -> list[dict]:
    """The clip's objects: a distractor, then the labelled object."""
    heading = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0.02, 0.04)
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = _saturated(rng)
    if dataset == "k400":  # appearance: colour
        colour = PALETTE[COLOURS[label]]
    elif dataset == "ssv2":  # motion: direction, classes evenly spread over the circle
        heading = 2 * np.pi * label / classes + rng.uniform(-0.2, 0.2)
        speed = rng.uniform(0.03, 0.05)
    elif dataset == "in1k":  # shape and colour
        shape, colour = SHAPES[label], PALETTE[COLOURS[(label + 3) % len(COLOURS)]]
    elif dataset == "k710":  # shape
        shape = SHAPES[label]
    return [_distractor(rng), _sprite(shape, colour, heading, speed, rng.uniform(0.4, 0.55))]


# ---------------------------------------------------------------------------------------------
# encoding


def encode(path: Path, frames: np.ndarray, kind: Kind, faststart: bool = False) -> None:
    """Encode uint8 [T, H, W, 3] as ``kind`` (single-threaded, bit-exact muxing)."""
    options = {"fflags": "+bitexact"}
    if faststart:
        options["movflags"] = "faststart"
    with av.open(str(path), "w", format=kind.container, options=options) as container:
        stream = container.add_stream(kind.encoder, rate=kind.rate)
        stream.width, stream.height = kind.width, kind.height
        stream.pix_fmt = kind.pix_fmt
        ctx = stream.codec_context
        ctx.thread_count = 1
        ctx.gop_size = kind.gop
        time_base = VFR_TIME_BASE if kind.vfr else 1 / kind.rate
        stream.time_base = ctx.time_base = time_base
        if kind.encoder == "libx264":
            stream.options = {
                "preset": "veryfast",
                "crf": "18",
                "x264-params": f"keyint={kind.gop}:threads=1",
            }
        elif kind.encoder == "libvpx-vp9":
            stream.options = {"deadline": "realtime", "cpu-used": "8", "crf": "20", "b": "0"}
        elif kind.encoder == "mpeg4":
            stream.options = {"qscale": "3"}
        pts = _vfr_pts(len(frames)) if kind.vfr else list(range(len(frames)))
        for rgb, p in zip(frames, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = p, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _vfr_pts(n: int) -> list[int]:
    return [0] + np.cumsum([VFR_GAPS[i % 2] for i in range(n - 1)]).tolist()


def write_jpeg(path: Path, image: np.ndarray) -> None:
    """A baseline JPEG (4:2:0, odd sizes allowed) with PyAV's mjpeg encoder."""
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = image.shape[1], image.shape[0], "yuvj420p"
    ctx.time_base = Fraction(1, 1)
    ctx.options = {"qscale": "3"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    frame = frame.reformat(format="yuvj420p")
    frame.pts = 0
    Path(path).write_bytes(b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None)))


# ---------------------------------------------------------------------------------------------
# the layout


def _ytid(rng: np.random.Generator) -> str:
    """An 11-character YouTube-like id (never starting with '-')."""
    abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    return "".join(abc[i] for i in [rng.integers(52), *rng.integers(64, size=10)])


class _Writer:
    def __init__(self, root: Path, seed: int, classes: int) -> None:
        self.root, self.seed, self.classes = root, seed, classes
        self.files: list[dict] = []
        self.broken: dict[str, str] = {}
        self.missing: list[str] = []

    def rng(self, dataset: str, *key: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, DATASET_SEED[dataset], *key))

    def video(self, dataset: str, split: str, rel: str, label: int, kind: Kind, key) -> str:
        """Write one clip at ``<dataset>/<rel>``; returns ``rel``."""
        rng = self.rng(dataset, *key)
        objects = _objects(dataset, label, self.classes, rng)
        frames = render_clip(rng, kind.width, kind.height, kind.frames, objects)
        path = self.root / dataset / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        encode(path, frames, kind)
        self.files.append({
            "path": f"{dataset}/{rel}", "dataset": dataset, "split": split, "label": label,
            "media": "video", "kind": kind.name, "codec": kind.codec, "encoder": kind.encoder,
            "container": kind.container, "pix_fmt": kind.pix_fmt, "width": kind.width,
            "height": kind.height, "fps": float(kind.rate), "rate": str(kind.rate),
            "frames": kind.frames, "vfr": kind.vfr,
        })  # fmt: skip
        return rel

    def image(self, split: str, rel: str, label: int, size: tuple[int, int], key) -> None:
        rng = self.rng("in1k", *key)
        w, h = size
        img = render_clip(rng, w, h, 1, _objects("in1k", label, self.classes, rng))[0]
        path = self.root / "in1k" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (write_png if path.suffix == ".png" else write_jpeg)(path, img)
        self.files.append({
            "path": f"in1k/{rel}", "dataset": "in1k", "split": split, "label": label,
            "media": "image", "codec": "png" if path.suffix == ".png" else "mjpeg",
            "width": w, "height": h,
        })  # fmt: skip

    def broken_files(
        self, dataset: str, folder: str, faststart: bool, label: int | None = None
    ) -> list[tuple[str, int]]:
        """An empty, a truncated and a text file, all named .mp4; returns (rel, label) lines
        (``label``, or drawn at random)."""
        rng = self.rng(dataset, 9)
        base = self.root / dataset / folder
        base.mkdir(parents=True, exist_ok=True)
        names = [f"{_ytid(rng)}.mp4" for _ in range(3)]
        (base / names[0]).write_bytes(b"")
        kind = KINDS["h264-420-60"]
        frames = render_clip(rng, kind.width, kind.height, kind.frames, [_distractor(rng)])
        encode(base / names[1], frames, kind, faststart=faststart)
        data = (base / names[1]).read_bytes()
        # faststart: header first, so it opens but the last frames are gone; else the header
        # (at the end) is gone and the file does not open at all
        (base / names[1]).write_bytes(data[: len(data) * 2 // 3 if faststart else len(data) // 2])
        (base / names[2]).write_text("this is not a video\n")
        kinds = ("empty", "truncated-faststart" if faststart else "truncated", "text")
        lines = []
        for name, what in zip(names, kinds, strict=True):
            rel = f"{folder}/{name}"
            self.broken[f"{dataset}/{rel}"] = what
            lines.append((rel, int(rng.integers(self.classes)) if label is None else label))
        return lines

    def csv(self, dataset: str, split: str, lines: list[tuple[str, int]]) -> int:
        """Write ``<dataset>/<split>.csv`` in a seeded order; returns its line count."""
        order = self.rng(dataset, 8, ("train", "val").index(split)).permutation(len(lines))
        text = "".join(f"{lines[i][0]} {lines[i][1]}\n" for i in order)
        (self.root / dataset / f"{split}.csv").write_text(text)
        return len(lines)


def build_paper_layout(
    root: Path, seed: int = 0, videos_per_class: int = 6, val_per_class: int = 2, classes: int = 3
) -> dict:
    """Write the layout (see the module docstring) under ``root``; returns what was written.

    The returned dict: ``root``; ``datasets``: per dataset the line (or image) count of each
    split, ``classes``, and ``good`` (the lines that name a decodable file); ``files``: one dict
    per good file (path relative to ``root``, dataset, split, label, codec, container, pix_fmt,
    width, height, fps, frames, vfr); ``broken``: paths (relative to ``root``) of the listed
    files that do not decode, with their kind in ``broken_kinds``; ``missing``: listed paths that
    do not exist; ``codecs``: good files per codec; ``seconds``: build time.
    """
    if not 2 <= classes <= MAX_CLASSES:
        raise ValueError(f"classes: expected 2..{MAX_CLASSES}, got {classes}")
    if videos_per_class < 1 or val_per_class < 1:
        raise ValueError("expected at least one train and one val item per class")
    started = time.time()
    root = Path(root)
    w = _Writer(root, seed, classes)
    datasets: dict[str, dict] = {}

    # K400: videos/<split>/<class name>/<ytid>_<start>_<end>.<ext>
    for split, per_class in (("train", videos_per_class), ("val", val_per_class)):
        lines = []
        for c in range(classes):
            for j in range(per_class):
                rng = w.rng("k400", 7, int(split == "val"), c, j)
                start = int(rng.integers(0, 300))
                name = f"{_ytid(rng)}_{start:06d}_{start + 10:06d}"
                if split == "train" and c == 1 and j == 0:
                    name = f"{name} 1"  # a file name with a space before a digit
                mix = MIX["k400"]
                kind = KINDS[mix[(j if split == "train" else c + j) % len(mix)]]
                if split == "train" and c == 0 and j == per_class - 1:
                    kind = KINDS["h264-vfr"]
                rel = f"videos/{split}/{K400_NAMES[c]}/{name}.{kind.ext}"
                lines.append((w.video("k400", split, rel, c, kind, (int(split == "val"), c, j)), c))
        good = len(lines)
        if split == "train":
            lines += w.broken_files("k400", f"videos/train/{K400_NAMES[0]}", False, 0)
        datasets.setdefault("k400", {"classes": classes, "good": {}})
        datasets["k400"][split] = w.csv("k400", split, lines)
        datasets["k400"]["good"][split] = good

    # SSv2: videos/<numeric id>.<ext>, one folder for both splits
    n_ids = classes * (videos_per_class + val_per_class) + 1  # + the missing file
    ids = w.rng("ssv2", 7).permutation(10**5)[:n_ids] + 1
    next_id = iter(int(i) for i in ids)
    for split, per_class in (("train", videos_per_class), ("val", val_per_class)):
        lines = []
        for c in range(classes):
            for j in range(per_class):
                mix = MIX["ssv2"]
                kind = KINDS[mix[(j if split == "train" else c + j) % len(mix)]]
                name = str(next(next_id))
                rel = f"videos/{name}.{kind.ext}"
                lines.append((w.video("ssv2", split, rel, c, kind, (int(split == "val"), c, j)), c))
        good = len(lines)
        if split == "train":
            lines += w.broken_files("ssv2", "videos", faststart=True)
            gone = f"videos/{next(next_id)}.webm"  # listed, never written
            w.missing.append(f"ssv2/{gone}")
            lines.append((gone, 0))
        datasets.setdefault("ssv2", {"classes": classes, "good": {}})
        datasets["ssv2"][split] = w.csv("ssv2", split, lines)
        datasets["ssv2"]["good"][split] = good

    # IN1K: <split>/<wnid>/<file>, a third of the images PNG, the others JPEG
    datasets["in1k"] = {"classes": classes, "good": {}, "wnids": list(WNIDS[:classes])}
    for split, per_class in (("train", videos_per_class), ("val", val_per_class)):
        n = 0
        for c in range(classes):
            for j in range(per_class):
                ext = "png" if (j + c) % 3 == 2 else "JPEG"
                size = IMAGE_SIZES[(j + c * (split == "val")) % len(IMAGE_SIZES)]
                if split == "train":
                    name = f"{WNIDS[c]}_{1000 + 37 * j + c}.{ext}"
                else:
                    name = f"ILSVRC2012_val_{1 + c * per_class + j:08d}.{ext}"
                w.image(split, f"{split}/{WNIDS[c]}/{name}", c, size, (int(split == "val"), c, j))
                n += 1
        datasets["in1k"][split] = datasets["in1k"]["good"][split] = n

    # pretraining mixture: K710 (own labels) and HowTo100M (label 0)
    for dataset, n_classes in (("k710", classes), ("howto100m", 1)):
        lines = []
        for c in range(classes):
            for j in range(videos_per_class):
                rng = w.rng(dataset, 7, c, j)
                mix = MIX[dataset]
                kind = KINDS[mix[j % len(mix)]]
                label = c if n_classes > 1 else 0
                rel = f"videos/{_ytid(rng)}.{kind.ext}"
                lines.append((w.video(dataset, "train", rel, label, kind, (c, j)), label))
        datasets[dataset] = {"classes": n_classes, "good": {"train": len(lines)}}
        datasets[dataset]["train"] = w.csv(dataset, "train", lines)

    codecs: dict[str, int] = {}
    for f in w.files:
        codecs[f["codec"]] = codecs.get(f["codec"], 0) + 1
    return {
        "root": root,
        "seed": seed,
        "datasets": datasets,
        "files": w.files,
        "broken": sorted(w.broken),
        "broken_kinds": dict(sorted(w.broken.items())),
        "missing": w.missing,
        "codecs": codecs,
        "seconds": time.time() - started,
    }


def write_official_checkpoint(path: Path, model: str = "vit_micro", seed: int = 0) -> Path:
    """An encoder checkpoint in the official V-JEPA layout (``module.backbone.`` keys)."""
    import torch
    import yaml

    from vjepa.models import build_encoder
    from vjepa.models.presets import encoder_kwargs
    from vjepa.pipeline.spec import CONF_DIR

    cfg = yaml.safe_load((CONF_DIR / "model" / f"{model}.yaml").read_text())
    torch.manual_seed(seed)
    encoder = build_encoder(**encoder_kwargs(cfg))
    state = {f"module.backbone.{k}": v for k, v in encoder.state_dict().items()}
    torch.save(
        {"encoder": state, "target_encoder": state, "predictor": None, "opt": None, "epoch": 1},
        path,
    )
    return path


def paper_run_args(data_root: Path, checkpoint: Path) -> list[str]:
    """``vjepa-exp run`` arguments of the paper spec at laptop scale, shrunk further for tests."""
    return [
        "experiments/paper_vitl16.yaml",
        f"data.root={data_root}",
        "scale=laptop",
        f"baselines.official.path={checkpoint}",
        "baselines.official.model=vit_micro",
        "pretrain.epochs=1",
        "pretrain.iterations_per_epoch=3",
        "pretrain.batch_size=4",
        "probe.epochs=2",
        "probe.min_steps=0",
    ]
