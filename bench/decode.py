"""Decoding benchmark: seek-based clip reading vs full decode, and DataLoader throughput.

    .venv/bin/python bench/decode.py                 # 10 s, 224x224, 30 fps videos (~1-2 min)
    .venv/bin/python bench/decode.py --json out.json --size 64 --clips 6 --no-loader   # quick

A clip is 16 frames with frame step 4 at a random position. "seek" is ``read_frames``: a seek to
the keyframe before the clip and a forward decode to its last frame. "full" decodes every frame of
the file and keeps the clip's (colour conversion only for the kept frames, a conservative
baseline). Rates are given per wall second and per CPU second of this process (the latter is
robust to other jobs on a shared machine). Results print as a table and, with ``--json``, are
written to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from vjepa.data.clips import ClipDataset, clip_indices, collate
from vjepa.data.index import build_index, read_index
from vjepa.data.synth import SynthConfig, generate
from vjepa.data.transforms import TrainTransform
from vjepa.data.video import read_frames

FRAMES_PER_CLIP, FRAME_STEP = 16, 4


def read_frames_full(path: str, indices: np.ndarray) -> np.ndarray:
    """Baseline: decode the whole file, keep the wanted frames."""
    wanted = set(int(i) for i in indices)
    kept = {}
    rgb = VideoReformatter()
    with av.open(path) as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                kept[i] = rgb.reformat(frame, format="rgb24").to_ndarray()
    return np.stack([kept[int(i)] for i in indices])


def clips_per_second(reader, records: list[dict], clips: int, seed: int = 0) -> tuple[float, float]:
    """(clips per wall second, clips per CPU second) of ``reader`` on random clips.

    CPU seconds (this process, all threads) measure the decoding work itself and stay
    comparable on a machine shared with other jobs; wall seconds are what a loader sees.
    """
    rng = np.random.default_rng(seed)
    reader(records[0]["path"], np.arange(FRAMES_PER_CLIP))  # warm-up: codec and converter set-up
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(clips):
        rec = records[k % len(records)]
        (idx,) = clip_indices(rec["num_frames"], FRAMES_PER_CLIP, FRAME_STEP, 1, True, rng)
        reader(rec["path"], idx)
    return clips / (time.perf_counter() - wall), clips / (time.process_time() - cpu)


def loader_clips_per_second(records: list[dict], workers: int, clips: int, size: int) -> float:
    ds = ClipDataset(records, FRAMES_PER_CLIP, FRAME_STEP, 1, True, TrainTransform(size), seed=0)
    sampler = torch.utils.data.RandomSampler(ds, num_samples=clips, replacement=True)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=4, sampler=sampler, num_workers=workers, collate_fn=collate
    )
    started = time.perf_counter()
    n = sum(len(batch["label"]) for batch in loader)
    return n / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--gop", type=int, default=16)
    ap.add_argument("--clips", type=int, default=40, help="clips per seek measurement")
    ap.add_argument("--full-clips", type=int, default=None, help="clips for full decode")
    ap.add_argument("--loader-clips", type=int, default=48)
    ap.add_argument("--no-loader", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        cfg = SynthConfig(
            videos=args.videos, images=0, split_fractions=(1.0, 0.0, 0.0),
            resolution=args.size, frames=args.seconds * args.fps, fps=args.fps, gop=args.gop,
            crf=23, pix_fmt="yuv420p", preset="veryfast", time_reversed_pairs=False,
        )  # fmt: skip
        t0 = time.perf_counter()
        generate(cfg, tmp, workers=args.workers, progress=False)
        build_index(tmp, Path(tmp) / "index.parquet", workers=args.workers, progress=False)
        records = read_index(Path(tmp) / "index.parquet", task="motion")
        gen_s = time.perf_counter() - t0

        seek = clips_per_second(read_frames, records, args.clips)
        full = clips_per_second(
            read_frames_full, records, args.full_clips or max(args.clips // 4, 4)
        )
        result = {
            "video": f"{args.seconds} s, {args.size}x{args.size}, {args.fps} fps, "
            f"h264 yuv420p crf 23, gop {args.gop}",
            "clip": f"{FRAMES_PER_CLIP} frames, step {FRAME_STEP}, random position",
            "generate_s": round(gen_s, 1),
            "seek_clips_per_s": round(seek[0], 1),
            "full_clips_per_s": round(full[0], 1),
            "speedup": round(seek[0] / full[0], 1),
            "seek_clips_per_cpu_s": round(seek[1], 1),
            "full_clips_per_cpu_s": round(full[1], 1),
            "cpu_speedup": round(seek[1] / full[1], 1),
        }
        if not args.no_loader:
            for w in (0, 1, 2):
                rate = loader_clips_per_second(records, w, args.loader_clips, args.size)
                result[f"loader_{w}_workers_clips_per_s"] = round(rate, 1)

    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
