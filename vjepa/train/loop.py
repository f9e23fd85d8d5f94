"""The V-JEPA pretraining loop: ``pretrain(config, out) -> metrics``.

One optimizer step (Bardes et al. 2024, Sec. 3 and App. C):

1. per micro-step, load B clips and draw the context/target masks of every mask generator;
2. targets: the EMA target encoder on the full clip, layer-normed (``feature``), or the clip's
   normalised tubelet pixels (``pixel``); no gradient flows into them;
3. for each generator: context encoder on the context tokens, predictor at the target tokens,
   L1 (features) or MSE (pixels); the loss is the mean over generators;
4. AdamW step with the scheduled lr / weight decay (gradients clipped per module after warmup),
   then the EMA update of the target encoder with the scheduled momentum.

Outputs in ``out``: ``log.jsonl`` (one record per step), ``ckpt/latest.pt`` (resume state, every
``checkpoint_every`` steps and at the end), ``checkpoint.pt`` (final weights, our layout).
Restarting with the same config and ``out`` resumes from ``ckpt/latest.pt`` and reproduces an
uninterrupted run exactly (see :mod:`vjepa.train.sampling` and :mod:`vjepa.train.state`).

``on_progress(step, total_steps, figures)`` is called on rank 0 when the run starts (at the resumed
step) and after every step, with the step's loss, learning rate and clips per second.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vjepa.data.clips import ClipDataset, collate
from vjepa.data.index import read_index
from vjepa.data.transforms import TrainTransform
from vjepa.errors import CheckpointError, DataError, TrainingDiverged
from vjepa.masks import build_mask_generators
from vjepa.masks import preset as masking_preset
from vjepa.models.checkpoint import save_checkpoint
from vjepa.models.presets import build_from_config, model_config
from vjepa.train import distributed as dist_utils
from vjepa.train.compiling import compiled
from vjepa.train.config import resolve
from vjepa.train.ema import ema_update, make_target
from vjepa.train.logging import JsonlLog, loss_summary, progress_bar
from vjepa.train.objectives import JEPA, feature_targets, pixel_targets
from vjepa.train.optim import build_optimizer, set_hyperparams
from vjepa.train.precision import autocast_dtype
from vjepa.train.sampling import (
    EpochBatchSampler,
    MixtureBatchSampler,
    PassItems,
    mask_generator,
    sample_masks,
)
from vjepa.train.schedules import Schedules
from vjepa.train.state import load_state, save_state, set_rng_states

# ``on_progress(done, total, figures)``: how far the run is (the stage writes progress.json)
OnProgress = Callable[[int, int, Mapping[str, float]], None]


def pretrain(
    config: dict[str, Any],
    out: str | Path,
    *,
    stop: threading.Event | None = None,
    on_progress: OnProgress | None = None,
) -> dict[str, Any]:
    """Pretrain (or resume) into ``out``; return the run's metrics.

    ``stop``: when set (from a signal handler or another thread), the run saves its resume state
    at the next step boundary and returns ``{"interrupted": True, ...}``. ``on_progress``: see
    the module docstring (called on rank 0 only).
    """
    cfg = resolve(config)
    p = cfg["pretrain"]
    device_type = _device_type(p["device"])
    denv = dist_utils.init(device_type)
    try:
        trainer = Trainer(cfg, Path(out), denv, device_type)
        return trainer.run(stop, on_progress if denv.is_main else None)
    finally:
        dist_utils.shutdown(denv)


def _device_type(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def _generator_count(masking: Mapping[str, Any]) -> int:
    """How many mask generators ``masking`` lists (the predictor learns one mask token each)."""
    generators = masking.get("generators")
    return len(generators or masking_preset(masking.get("name", "multiblock"))["generators"])


class Trainer:
    """Holds the models, optimizer, data and bookkeeping of one pretraining run."""

    def __init__(self, cfg: dict[str, Any], out: Path, denv: dist_utils.DistEnv, device_type: str):
        self.cfg, self.out, self.denv = cfg, out, denv
        self.p = p = cfg["pretrain"]
        self.device = torch.device(device_type, denv.local_rank if device_type == "cuda" else None)
        if p["deterministic"]:
            torch.use_deterministic_algorithms(True)
        _seed_all(int(p["seed"]))  # same init on every rank

        self.seed = int(p["seed"])
        self.ipe = int(p["iterations_per_epoch"])
        self.accum = int(p["accumulation_steps"])
        self.total_steps = int(p["epochs"]) * self.ipe
        self.sched = Schedules.from_config(p)

        # Models (encoder initialised first, then the predictor, from the seeded RNG) and masks.
        encoder, predictor = build_from_config(
            cfg["model"], num_mask_tokens=_generator_count(cfg["masking"])
        )
        self.mask_gens = build_mask_generators(cfg["masking"], encoder.grid)
        self.num_tokens = encoder.num_patches
        self.jepa = JEPA(encoder, predictor, p["target"]).to(self.device)
        self.target_encoder = make_target(self.jepa.encoder) if p["target"] == "feature" else None
        trainable = [self.jepa.encoder, self.jepa.predictor]
        if self.jepa.pixel_head is not None:
            trainable.append(self.jepa.pixel_head)
        self.optimizer = build_optimizer(trainable, self.sched.lr_at(0), self.sched.wd_at(0))
        # gradient clipping groups, listed once: the encoder, and the predictor (+ pixel head)
        self._enc_params = list(self.jepa.encoder.parameters())
        self._head_params = [q for m in trainable[1:] for q in m.parameters()]
        self.autocast_dtype = autocast_dtype(p["dtype"], device_type)
        self.scaler = torch.amp.GradScaler(
            device_type, enabled=self.autocast_dtype == torch.float16
        )

        self.model: nn.Module = self.jepa
        if denv.enabled:
            self.model = nn.parallel.DistributedDataParallel(
                self.jepa, device_ids=[denv.local_rank] if device_type == "cuda" else None
            )
        self.target_forward = self.target_encoder
        if p["compile"]:
            self.model = compiled(self.model)
            if self.target_encoder is not None:
                self.target_forward = compiled(self.target_encoder)

        self.step = 0
        self.last_saved = -1
        self.skipped = 0  # clips of this rank replaced because their file could not be read
        self._resume()

    # ----------------------------------------------------------------- data
    def _build_loader(self) -> tuple[torch.utils.data.DataLoader, EpochBatchSampler]:
        data, clip = self.cfg["data"], self.cfg["clip"]
        if "mixture" in data:
            records, sizes = _mixture_records(read_index, data)
        else:
            records = _video_records(read_index, data)
        transform = TrainTransform(
            crop_size=clip["crop_size"],
            scale=tuple(clip["random_resize_scale"]),
            ratio=tuple(clip["random_resize_aspect_ratio"]),
            hflip=clip["hflip"],
        )
        dataset = ClipDataset(
            records,
            frames_per_clip=clip["frames_per_clip"],
            frame_step=clip["frame_step"],
            num_clips=1,
            random_clip=True,
            transform=transform,
            seed=self.seed,
        )
        order = dict(
            batch_size=int(self.p["batch_size"]),
            batches_per_epoch=self.ipe * self.accum,
            seed=self.seed,
            rank=self.denv.rank,
            world_size=self.denv.world_size,
        )
        if "mixture" in data:
            # no weights: the datasets concatenated, every file equally likely
            weights = [
                float(size if e["weight"] is None else e["weight"])
                for e, size in zip(data["mixture"], sizes, strict=True)
            ]
            sampler: EpochBatchSampler = MixtureBatchSampler(sizes, weights, **order)
        else:
            sampler = EpochBatchSampler(len(records), **order)
        workers = int(clip["num_workers"])
        loader = torch.utils.data.DataLoader(
            PassItems(dataset),
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=self.device.type == "cuda",
        )
        return loader, sampler

    def _batches(self) -> Iterator[dict[str, Any]]:
        """Micro-batches from the current step on, epoch after epoch (the sampler decides)."""
        while True:
            epoch, within = divmod(self.step, self.ipe)
            self.sampler.set_epoch(epoch, within * self.accum)
            yield from self.loader

    # ---------------------------------------------------------- checkpoints
    @property
    def ckpt_path(self) -> Path:
        return self.out / "ckpt" / "latest.pt"

    def _resume(self) -> None:
        state = load_state(self.ckpt_path)
        if state is None:
            return
        if state.get("target") != self.p["target"]:
            raise CheckpointError(
                f"{self.ckpt_path}: resume state is for target {state.get('target')!r}, "
                f"the config asks for {self.p['target']!r}"
            )
        self.jepa.encoder.load_state_dict(state["encoder"])
        self.jepa.predictor.load_state_dict(state["predictor"])
        if self.jepa.pixel_head is not None:
            self.jepa.pixel_head.load_state_dict(state["pixel_head"])
        if self.target_encoder is not None:
            self.target_encoder.load_state_dict(state["target_encoder"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = self.last_saved = int(state["step"])
        set_rng_states(state["rng"])

    def save(self) -> None:
        """Write the resume state (rank 0); all ranks hold identical weights."""
        if self.denv.is_main and self.last_saved != self.step:
            epoch, within = divmod(self.step, self.ipe)
            save_state(
                self.ckpt_path,
                {
                    "step": self.step,
                    "epoch": epoch,
                    "batch_in_epoch": within * self.accum,
                    "encoder": self.jepa.encoder.state_dict(),
                    "predictor": self.jepa.predictor.state_dict(),
                    "pixel_head": (
                        self.jepa.pixel_head.state_dict() if self.jepa.pixel_head else None
                    ),
                    "target_encoder": (
                        self.target_encoder.state_dict() if self.target_encoder else None
                    ),
                    "optimizer": self.optimizer.state_dict(),
                    "scaler": self.scaler.state_dict(),
                    "target": self.p["target"],
                    "seed": self.seed,
                    "world_size": self.denv.world_size,
                },
            )
        self.last_saved = self.step

    def write_final(self) -> None:
        """``checkpoint.pt`` in our layout; for pixels the target encoder is the encoder."""
        if not self.denv.is_main:
            return
        target = self.target_encoder if self.target_encoder is not None else self.jepa.encoder
        save_checkpoint(
            self.out / "checkpoint.pt",
            model_config(self.jepa.encoder, self.jepa.predictor),
            encoder=self.jepa.encoder,
            target_encoder=target,
            predictor=self.jepa.predictor,
            epoch=self.step // self.ipe,
            step=self.step,
            target=self.p["target"],
            pixel_head=self.jepa.pixel_head.state_dict() if self.jepa.pixel_head else None,
        )

    # ---------------------------------------------------------------- step
    def train_step(self, batches: Iterator[dict[str, Any]]) -> dict[str, Any]:
        """One optimizer step of V-JEPA over ``accumulation_steps`` micro-batches.

        Per micro-batch: sample the masks; targets from the EMA target encoder on the full clip;
        the context encoder on the visible tokens, the predictor at the masked ones, L1 against
        the targets there; backward. Then one AdamW step and the EMA update of the target.
        """
        s, world = self.step, self.denv.world_size
        lr, wd, momentum = self.sched.lr_at(s), self.sched.wd_at(s), self.sched.momentum_at(s)
        set_hyperparams(self.optimizer, lr, wd)
        loss_sum = torch.zeros((), device=self.device)
        clips, n_ctx, n_tgt = 0, [], []
        for micro in range(self.accum):
            video = self._next_video(batches)  # [B, C, T, H, W]
            b = video.shape[0]
            clips += b * world

            # 1. masks of every generator, drawn for the global batch from (seed, step, micro)
            rng = mask_generator(self.seed, s, micro)
            masks_ctx, masks_tgt = sample_masks(self.mask_gens, b * world, self.denv.rank, b, rng)
            n_ctx, n_tgt = [m.shape[1] for m in masks_ctx], [m.shape[1] for m in masks_tgt]
            masks_ctx = [m.to(self.device, non_blocking=True) for m in masks_ctx]
            masks_tgt = [m.to(self.device, non_blocking=True) for m in masks_tgt]

            with self._no_sync(micro):
                with self._autocast():
                    # 2. targets for every token: the target encoder on the full clip, no grad
                    targets = self._targets(video)
                    # 3. context encoder on the visible tokens, predictor at the masked ones,
                    #    L1 to the targets there (mean over generators); see ``JEPA.forward``
                    loss = self.model(video, masks_ctx, masks_tgt, targets) / self.accum
                # 4. backward (outside autocast; gradients all-reduced on the last micro-step)
                self.scaler.scale(loss).backward()
            loss_sum += loss.detach()

        # 5. optimizer step: clip each module's gradients after warmup, refuse a diverged step
        self.scaler.unscale_(self.optimizer)
        clip = self.p["clip_grad"]
        max_norm = float(clip) if clip and s >= self.sched.warmup_steps else math.inf
        enc_norm = nn.utils.clip_grad_norm_(self._enc_params, max_norm, foreach=True)
        pred_norm = nn.utils.clip_grad_norm_(self._head_params, max_norm, foreach=True)
        loss_value = float(dist_utils.all_mean(loss_sum, self.denv).item())
        self._check_finite(loss_value, float(enc_norm), float(pred_norm))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

        # 6. EMA update of the target encoder with the scheduled momentum
        if self.target_encoder is not None:
            ema_update(self.target_encoder, self.jepa.encoder, momentum)
        self.step += 1
        return {
            "step": self.step,
            "epoch": s // self.ipe,
            "loss": loss_value,
            "lr": lr,
            "wd": wd,
            "momentum": momentum if self.target_encoder is not None else None,
            "grad_norm_encoder": float(enc_norm),
            "grad_norm_predictor": float(pred_norm),
            "mask_ratio": [round(1.0 - k / self.num_tokens, 4) for k in n_ctx],
            "context_tokens": n_ctx,
            "target_tokens": n_tgt,
            "clips": clips,
        }

    def _next_video(self, batches: Iterator[dict[str, Any]]) -> torch.Tensor:
        """The next micro-batch's clips on the device, [B, C, T, H, W]; counts unreadable ones."""
        batch = next(batches)
        if "skipped" in batch:
            self.skipped += int(torch.as_tensor(batch["skipped"]).sum())
        return batch["video"].flatten(0, 2).to(self.device, non_blocking=True)

    def _targets(self, video: torch.Tensor) -> torch.Tensor:
        """[B, N, E]: layer-normed target-encoder features, or normalised tubelet pixels."""
        if self.target_forward is not None:
            return feature_targets(self.target_forward, video)
        encoder = self.jepa.encoder
        return pixel_targets(video, encoder.tubelet_size, encoder.patch_size)

    def _no_sync(self, micro: int) -> contextlib.AbstractContextManager:
        """DDP's ``no_sync`` on every micro-step but the last (one all-reduce per step)."""
        if micro == self.accum - 1 or not self.denv.enabled:
            return contextlib.nullcontext()
        return self.model.no_sync()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _check_finite(self, loss: float, enc_norm: float, pred_norm: float) -> None:
        """Stop before a bad update can reach the weights (the last checkpoint stays good)."""
        bad = not math.isfinite(loss) or loss > float(self.p["max_loss"])
        bad = bad or not (math.isfinite(enc_norm) and math.isfinite(pred_norm))
        if bad and self.scaler.is_enabled() and math.isfinite(loss):
            return  # fp16 overflow in the gradients: GradScaler skips the step and backs off
        if bad:
            kept = (
                f"last good checkpoint at step {self.last_saved} kept"
                if self.last_saved >= 0
                else "no checkpoint written yet"
            )
            raise TrainingDiverged(
                f"pretraining diverged at step {self.step + 1}: loss {loss:.4g} "
                f"(max_loss {self.p['max_loss']:g}), grad norms {enc_norm:.4g}/{pred_norm:.4g}; "
                f"{kept}"
            )

    # ----------------------------------------------------------------- run
    def run(
        self, stop: threading.Event | None, on_progress: OnProgress | None = None
    ) -> dict[str, Any]:
        started = time.perf_counter()
        p, main = self.p, self.denv.is_main
        log = JsonlLog(self.out / "log.jsonl", resume_step=self.step, enabled=main)
        progress, task = progress_bar(self.total_steps, self.step, enabled=main and p["progress"])
        self.loader, self.sampler = self._build_loader()
        batches = self._batches()
        first_step, clips_done, train_time = self.step, 0, 0.0
        interrupted = False
        if on_progress is not None:
            on_progress(self.step, self.total_steps, {})
        try:
            with progress:
                while self.step < self.total_steps:
                    if dist_utils.any_flag(
                        stop is not None and stop.is_set(), self.denv, self.device
                    ):
                        interrupted = True
                        break
                    t0 = time.perf_counter()
                    record = self.train_step(batches)
                    dt = time.perf_counter() - t0
                    clips = record.pop("clips")
                    clips_done += clips
                    train_time += dt
                    record["clips_per_s"] = round(clips / dt, 2)
                    record["time"] = round(time.perf_counter() - started, 3)
                    log.write(record)
                    progress.update(task, advance=1, info=f"loss {record['loss']:.4f}")
                    if on_progress is not None:
                        figures = {k: record[k] for k in ("loss", "lr", "clips_per_s")}
                        on_progress(self.step, self.total_steps, figures)
                    if main and p["progress"] and self.step % int(p["log_every"]) == 0:
                        progress.console.print(_describe(record))
                    if self.step % int(p["checkpoint_every"]) == 0:
                        self.save()
            self.save()
            if not interrupted:
                self.write_final()
        finally:
            log.close()
        dist_utils.barrier(self.denv)
        losses = [r["loss"] for r in log.records]
        metrics: dict[str, Any] = {
            "steps": self.step,
            "steps_this_run": self.step - first_step,
            "target": p["target"],
            "final_loss": losses[-1] if losses else math.nan,
            **loss_summary(losses),
            "clips_per_s": round(clips_done / train_time, 2) if train_time else 0.0,
            "wall_s": round(time.perf_counter() - started, 3),
            "world_size": self.denv.world_size,
            "skipped_clips": self.skipped,
        }
        if isinstance(self.sampler, MixtureBatchSampler):
            metrics["mixture"] = self._mixture_drawn()
        if interrupted:
            metrics["interrupted"] = True
        return metrics

    def _mixture_drawn(self) -> dict[str, int]:
        """Clips drawn per dataset over the whole run (steps 0..now, all ranks)."""
        clips = self.step * self.accum * self.sampler.batch_size * self.denv.world_size
        names = [e["task"] for e in self.cfg["data"]["mixture"]]
        return dict(zip(names, self.sampler.drawn(clips), strict=True))


def _describe(record: dict[str, Any]) -> str:
    return (
        f"step {record['step']} loss {record['loss']:.4f} lr {record['lr']:.2e} "
        f"wd {record['wd']:.3f} gn {record['grad_norm_encoder']:.2f}/"
        f"{record['grad_norm_predictor']:.2f} {record['clips_per_s']:.1f} clips/s"
    )


def _video_records(read_index: Callable[..., list[dict]], data: dict[str, Any]) -> list[dict]:
    """Unique files of the index split, sorted by path (the index has one row per file and task)."""
    tasks = data.get("tasks")
    rows: list[dict] = []
    if tasks:
        for task in tasks:
            rows.extend(read_index(data["index"], task=task, split=data["split"]))
    else:  # every video file; still images only when a task names them
        rows = [
            r
            for r in read_index(data["index"], split=data["split"])
            if r.get("media", "video") != "image"
        ]
    unique = {}
    for row in rows:
        unique.setdefault(row["path"], row)
    if not unique:
        raise DataError(f"{data['index']}: no usable videos in split {data['split']!r}")
    return [unique[k] for k in sorted(unique)]


def _mixture_records(
    read_index: Callable[..., list[dict]], data: dict[str, Any]
) -> tuple[list[dict], list[int]]:
    """Files of every dataset (its whole task: videos and stills), dataset after dataset.

    Unique per (dataset, path), sorted by dataset name then path; also each dataset's size.
    """
    records: list[dict] = []
    sizes: list[int] = []
    for entry in data["mixture"]:
        unique: dict[str, dict] = {}
        for row in read_index(entry["index"], task=entry["task"], split=data["split"]):
            unique.setdefault(row["path"], row)
        if not unique:
            raise DataError(
                f"{entry['index']}: no usable files of {entry['task']!r} in split {data['split']!r}"
            )
        records.extend(unique[k] for k in sorted(unique))
        sizes.append(len(unique))
    return records, sizes
