"""Clip dataset over index records: seek-based decoding, segments, bounded skipping of bad files."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vjepa.data.records import ClipRecords
from vjepa.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa


def clip_indices(
    num_frames: int,
    frames_per_clip: int,
    frame_step: int,
    num_clips: int = 1,
    random: bool = False,
    rng: np.random.Generator | None = None,
) -> list[np.ndarray]:
    """Frame indices of ``num_clips`` clips of ``frames_per_clip`` frames each.

    Rules:

    1. The video is cut into ``num_clips`` equal segments of ``L = num_frames // num_clips``
       frames; segment ``i`` starts at ``i * L``. (If the video has fewer frames than
       ``num_clips``, every segment is the whole video.) One clip is taken from each segment.
    2. A clip spans ``span = (frames_per_clip - 1) * frame_step + 1`` frames and takes every
       ``frame_step``-th frame of its span.
    3. If the segment holds the span (``L >= span``), the clip starts at offset ``s`` in the
       segment: uniformly random in ``[0, L - span]`` when ``random``, else centred,
       ``(L - span) // 2``.
    4. Otherwise (a short video or segment), the clip takes every ``frame_step``-th frame from the
       segment's start and is padded with the segment's last frame up to ``frames_per_clip``
       frames, as the reference implementation does.
    """
    if num_frames < 1:
        raise DataError("clip_indices: a video with no frames")
    if frames_per_clip < 1 or frame_step < 1 or num_clips < 1:
        raise DataError("clip_indices: frames_per_clip, frame_step and num_clips must be >= 1")
    if random and rng is None:
        rng = np.random.default_rng()
    seg = num_frames // num_clips if num_frames >= num_clips else num_frames
    span = (frames_per_clip - 1) * frame_step + 1
    clips = []
    for i in range(num_clips):
        base = i * seg if num_frames >= num_clips else 0
        if seg >= span:
            start = int(rng.integers(0, seg - span + 1)) if random else (seg - span) // 2
            idx = base + start + np.arange(frames_per_clip) * frame_step
        else:
            idx = np.arange(0, seg, frame_step)[:frames_per_clip]
            idx = np.concatenate([idx, np.full(frames_per_clip - len(idx), seg - 1)]) + base
        clips.append(idx.astype(np.int64))
    return clips


class ClipDataset(Dataset):
    """Clips from index records (``read_index`` rows); item per ``docs/architecture.md``.

    Item: ``video`` float [S, V, C, T, H, W] (S = ``num_clips`` segments, V = views of the
    transform), ``label``, ``index`` (the record actually returned) and ``skipped``. A record
    that fails to decode is skipped: the next record (``index + 1``, wrapping) is returned in its
    place with ``skipped=True``, the failure is counted in ``skipped_count`` and ``failed``, and
    after ``max_attempts`` consecutive failures a ``DataError`` names the paths. Counters live in
    each DataLoader worker's copy; ``failure_report()`` of the main-process copy only sees
    failures of ``num_workers=0`` loading, so the items' ``skipped`` flags are the portable count.

    Random clip positions and crops come from ``numpy.random.default_rng((seed, epoch, index))``:
    reproducible for any number of workers; call ``set_epoch`` to draw new ones each epoch.

    ``records`` (dicts, an Arrow table of index rows, or a ``ClipRecords``) are kept as a
    ``ClipRecords`` table: forked DataLoader workers share its pages instead of each copying a
    list of dicts (``vjepa/data/records.py``).
    """

    def __init__(
        self,
        records: Sequence[dict[str, Any]] | ClipRecords | pa.Table,
        frames_per_clip: int = 16,
        frame_step: int = 4,
        num_clips: int = 1,
        random_clip: bool = False,
        transform: Callable | None = None,
        seed: int = 0,
        target_fps: float | None = None,
        max_attempts: int = 10,
    ) -> None:
        self.records = ClipRecords.of(records)
        if not len(self.records):
            raise DataError("ClipDataset: no records (empty index selection?)")
        self.frames_per_clip, self.frame_step, self.num_clips = (
            frames_per_clip,
            frame_step,
            num_clips,
        )
        self.random_clip, self.transform, self.seed = random_clip, transform, seed
        self.target_fps, self.max_attempts = target_fps, max_attempts
        self.epoch = 0
        self.skipped_count = 0
        self.failed: list[tuple[str, str]] = []
        self._facts: tuple[np.ndarray, np.ndarray] | None = None  # see _frame_facts

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def step_for(self, record: dict) -> int:
        """Frame step of a record: fixed, or from its fps when ``target_fps`` is set."""
        fps = record.get("fps") or 0
        if self.target_fps and fps > 0:
            return max(1, round(fps / self.target_fps))
        return self.frame_step

    def load(self, index: int) -> torch.Tensor:
        """Video tensor [S, V, C, T, H, W] of record ``index``; raises if the file fails."""
        from vjepa.data.video import read_frames, read_image

        rec = self.records[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        if rec.get("media") == "image" or _is_image(rec):
            still = np.repeat(read_image(rec["path"])[None], self.frames_per_clip, axis=0)
            clips = [still] * self.num_clips
        else:
            if rec.get("num_frames") is None:  # unprobed (indexed with probe "none"): count now
                n, fps = self._frame_facts(index)
                rec = {**rec, "fps": fps}
            else:
                n = int(rec["num_frames"])
            if n < 1:
                raise DataError(f"{rec['path']}: no frame count in the index record")
            idx = clip_indices(
                n, self.frames_per_clip, self.step_for(rec), self.num_clips, self.random_clip, rng
            )
            frames = read_frames(rec["path"], np.concatenate(idx))
            clips = np.split(frames, self.num_clips)
        views = [self._apply(c, rng) for c in clips]
        return torch.stack(views)

    def _frame_facts(self, index: int) -> tuple[int, float]:
        """(frames, fps) of an unprobed record, read from its file once per process.

        Kept in two zeroed arrays (frames + 1; 0 = not counted yet), whose pages take memory
        only once a count is written in them: a dict would grow to ~200 bytes per file in every
        worker over the epochs of a paper-scale run.
        """
        if self._facts is None:
            n = len(self.records)
            self._facts = np.zeros(n, np.int64), np.zeros(n, np.float64)
        frames, rates = self._facts
        if frames[index] == 0:
            n, fps = count_frames(self.records[index]["path"])
            frames[index], rates[index] = n + 1, fps
        return int(frames[index]) - 1, float(rates[index])

    def _apply(self, clip: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        if self.transform is None:
            return torch.from_numpy(clip).permute(3, 0, 1, 2).float().div_(255.0).unsqueeze(0)
        if getattr(self.transform, "takes_rng", False):
            return self.transform(clip, rng=rng)
        return self.transform(clip)

    def __getitem__(self, index: int) -> dict[str, Any]:
        errors = []
        for attempt in range(min(self.max_attempts, len(self.records))):
            i = (index + attempt) % len(self.records)
            try:
                video = self.load(i)
            except Exception as exc:  # any decode failure is the file's: skip, count, report
                path = self.records[i]["path"]
                reason = " ".join(str(exc).split())[:200] or type(exc).__name__
                self.skipped_count += 1
                self.failed.append((path, reason))
                errors.append(path)
                continue
            return {
                "video": video,
                "label": int(self.records[i].get("label", -1)),
                "index": i,
                "skipped": attempt > 0,
            }
        raise DataError(
            f"{len(errors)} consecutive samples failed to load from index {index}: "
            f"{', '.join(errors[:3])}{' ...' if len(errors) > 3 else ''}"
        )

    def failure_report(self) -> str:
        """One line per distinct failed file (this process's copy)."""
        seen = dict(self.failed)
        head = f"{self.skipped_count} skipped reads, {len(seen)} distinct files"
        return "\n".join([head, *(f"  {p}: {why}" for p, why in seen.items())])


def count_frames(path: str) -> tuple[int, float]:
    """(frames, fps) of a video the index did not probe; raises if it cannot be read.

    The header's frame count, else duration x rate, else its video packets counted (demuxing
    only, no decoding). A count a frame too high is harmless: reads past the end repeat the
    last frame.
    """
    import av

    if os.path.getsize(path) == 0:
        raise ValueError("empty file (0 bytes)")
    with av.open(path) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        n = int(stream.frames or 0)
        if n == 0 and fps > 0:
            if stream.duration:
                n = round(float(stream.duration * stream.time_base) * fps)
            elif container.duration:
                n = round(container.duration / av.time_base * fps)
        if n == 0:
            container.seek(0)
            n = sum(1 for p in container.demux(stream) if p.size)
    return n, fps


def _is_image(rec: dict) -> bool:
    from vjepa.data.video import is_image

    return is_image(rec["path"])


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch items: video [B, S, V, C, T, H, W], label/index LongTensors, skipped BoolTensor."""
    return {
        "video": torch.stack([it["video"] for it in items]),
        "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
        "skipped": torch.tensor([it["skipped"] for it in items], dtype=torch.bool),
    }
