"""Video and image I/O with PyAV: encode, probe, and seek-based frame reading.

Reading a clip seeks to the keyframe at or before the clip's first frame and decodes forward only
up to its last frame. With a short GOP this costs a few frames more than the clip, instead of the
whole video (see ``docs/benchmarks.md``).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v"})

# A wanted frame more than this many frames past the last decoded one is reached by a new seek.
RESEEK_GAP = 48

av.logging.set_level(av.logging.PANIC)  # broken files are reported by exceptions, not stderr


def is_image(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a still image (by extension)."""
    return Path(path).suffix.lower() in IMAGE_EXTS


# ---------------------------------------------------------------------------------------------
# writing


def write_video(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    fps: int,
    codec: str = "libx264",
    pix_fmt: str = "yuv444p",
    crf: int = 0,
    gop: int = 8,
    preset: str = "medium",
) -> None:
    """Encode uint8 frames [T, H, W, 3] to ``path``; single-threaded x264 is deterministic."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        stream.codec_context.gop_size = gop
        stream.codec_context.thread_count = 1
        if codec == "libx264":
            stream.options = {
                "crf": str(crf),
                "preset": preset,
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:threads=1",
            }
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write a uint8 image [H, W, 3] as PNG with PyAV's png encoder (no extra image library)."""
    ctx = av.CodecContext.create("png", "w")
    ctx.width, ctx.height, ctx.pix_fmt = image.shape[1], image.shape[0], "rgb24"
    ctx.time_base = Fraction(1, 1)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    frame.pts = 0
    data = b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None))
    Path(path).write_bytes(data)


# ---------------------------------------------------------------------------------------------
# probing


def probe(path: str | os.PathLike[str]) -> dict:
    """Stream facts of a video or image; raises on anything that cannot be decoded.

    Checks more than the header: the first frame must decode, and for videos the last frame
    the header promises must be reachable (a truncated file fails here, not in training).
    """
    path = str(path)
    if os.path.getsize(path) == 0:
        raise ValueError("empty file (0 bytes)")
    with av.open(path) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        first = next(container.decode(stream), None)
        if first is None:
            raise ValueError("no decodable frame")
        info = {
            "width": int(first.width),
            "height": int(first.height),
            "codec": stream.codec_context.name,
        }
        if is_image(path):
            return {**info, "media": "image", "num_frames": 1, "fps": 0.0, "duration_s": 0.0}
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        num_frames = int(stream.frames or 0)
        if num_frames == 0:  # containers without a frame count: count packets (no decoding)
            container.seek(0)
            num_frames = sum(1 for p in container.demux(stream) if p.size)
        if num_frames > 1 and fps > 0:
            last = _decoded_frame_count(container, stream, num_frames - 1, fps)
            if last < num_frames:
                raise ValueError(f"truncated: frame {num_frames - 1} of {num_frames} not decodable")
        duration = num_frames / fps if fps > 0 else 0.0
        return {
            **info,
            "media": "video",
            "num_frames": num_frames,
            "fps": fps,
            "duration_s": duration,
        }


def _decoded_frame_count(container, stream, index: int, fps: float) -> int:
    """1 + the index of the last frame decodable from the keyframe before ``index``."""
    last = -1
    for idx, _ in _decode_from(container, stream, index, fps):
        last = idx
    return last + 1


# ---------------------------------------------------------------------------------------------
# reading


def _frame_index(frame, stream, start: float, fps: float) -> int:
    """Presentation index of a decoded frame (constant frame rate assumed)."""
    return int(round((float(frame.pts * stream.time_base) - start) * fps))


def _decode_from(container, stream, index: int, fps: float):
    """Yield (frame index, frame) from the keyframe at or before ``index`` onwards."""
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    target = int((start + index / fps) / stream.time_base)
    container.seek(max(target, 0), stream=stream, backward=True, any_frame=False)
    first = True
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        idx = _frame_index(frame, stream, start, fps)
        if first and idx > index:  # seek overshot (odd index table): decode from the start
            container.seek(0, stream=stream, backward=True, any_frame=False)
            yield from _decode_all(container, stream, start, fps)
            return
        first = False
        yield idx, frame


def _decode_all(container, stream, start: float, fps: float):
    for frame in container.decode(stream):
        if frame.pts is not None:
            yield _frame_index(frame, stream, start, fps), frame


def read_frames(
    path: str | os.PathLike[str], indices: np.ndarray | list[int], seek: bool = True
) -> np.ndarray:
    """Frames at ``indices`` (any order, repeats allowed) as uint8 [len(indices), H, W, 3].

    With ``seek=True`` each run of nearby indices costs one seek to the keyframe before it and a
    forward decode up to its last frame. ``seek=False`` decodes the video from its start (the
    baseline of the benchmark). Indices past the real end of the file get its last frame; a file
    with no decodable frame raises.
    """
    wanted = sorted({int(i) for i in indices})
    if not wanted:
        raise ValueError("no frame indices")
    got: dict[int, np.ndarray] = {}
    rgb = VideoReformatter()  # one colour converter per read: reused across the clip's frames
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 1.0
        start = (
            float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        )
        pos = 0
        last: np.ndarray | None = None
        while pos < len(wanted):
            frames = (
                _decode_from(container, stream, wanted[pos], fps)
                if seek
                else _decode_all(container, stream, start, fps)
            )
            ended = True
            for idx, frame in frames:
                if idx < wanted[pos]:
                    continue
                last = rgb.reformat(frame, format="rgb24").to_ndarray()
                while pos < len(wanted) and wanted[pos] <= idx:  # a gap in pts: use this frame
                    got[wanted[pos]] = last
                    pos += 1
                if pos == len(wanted):
                    ended = False
                    break
                if seek and wanted[pos] - idx > RESEEK_GAP:
                    ended = False
                    break
            if ended:
                break
        if pos < len(wanted):  # past the end of the file: repeat its last frame
            if last is None:
                raise ValueError(f"no decodable frame at or after index {wanted[pos]}")
            for i in wanted[pos:]:
                got[i] = last
    return np.stack([got[int(i)] for i in indices])


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """A still image as uint8 [H, W, 3]."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0), None)
        if frame is None:
            raise ValueError("no decodable image")
        return frame.to_ndarray(format="rgb24")
