"""Calibration driver for the embedded synthetic benchmark (science only, not the pipeline).

Renders clips in memory (no video encoding), pretrains a small encoder with a compact V-JEPA step
(feature or pixel target, the package's objectives, masks and schedules), extracts frozen tokens
and trains the attentive probe with validation-split model selection. Every number it prints is
a VALIDATION accuracy: design choices are made here, the test split is left for the pipeline.

    python scripts/science/calib.py baseline --design d1 --seeds 0 1 2
    python scripts/science/calib.py pretrain --design d1 --target feature --steps 600 --seed 0

Results are appended as JSON lines to runs/science/results.jsonl.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from designs import DESIGNS  # noqa: E402

from vjepa.data.synth import SynthConfig, _labels, render_item  # noqa: E402
from vjepa.data.transforms import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "runs" / "science" / "cache"
RESULTS = ROOT / "runs" / "science" / "results.jsonl"
ENCODERS = ROOT / "runs" / "science" / "encoders"
THREADS = int(os.environ.get("SCIENCE_THREADS", "1"))


# ---------------------------------------------------------------------------------------------
# clips


def synth_config(design: str, **extra) -> SynthConfig:
    values = {**DESIGNS[design], **extra}
    return SynthConfig.from_dict(values, where=design)


def _render_chunk(cfg_dict: dict, indices: list[int]):
    cfg = SynthConfig.from_dict(cfg_dict)
    frames = np.stack([render_item(cfg, "video", i) for i in indices])
    labels = np.array([_labels(cfg, "video", i)[:2] for i in indices], dtype=np.int64)
    return frames, labels


def clips(design: str, start: int, count: int, workers: int = 2):
    """uint8 [N, T, H, W, 3], motion [N], appearance [N] of videos start..start+count-1."""
    cfg = synth_config(design)
    key = CACHE / f"{design}_{start}_{count}.npz"
    if key.exists():
        z = np.load(key)
        return z["frames"], z["motion"], z["appearance"]
    idx = list(range(start, start + count))
    chunks = [idx[i : i + 100] for i in range(0, count, 100)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_render_chunk, [cfg.to_dict()] * len(chunks), chunks))
    frames = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(key, frames=frames, motion=labels[:, 0], appearance=labels[:, 1])
    return frames, labels[:, 0], labels[:, 1]


def to_input(frames: np.ndarray) -> torch.Tensor:
    """uint8 [B, T, H, W, 3] -> normalised float [B, 3, T, H, W]."""
    x = torch.from_numpy(frames).permute(0, 4, 1, 2, 3).float().div_(255.0)
    m = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
    s = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
    return (x - m) / s


# split layout of the calibration (index ranges of the synthetic video stream)
PRETRAIN = (0, 4000)
PROBE_TRAIN = (20000, 2000)
PROBE_VAL = (30000, 600)


# ---------------------------------------------------------------------------------------------
# model


def build(model: dict, seed: int):
    from vjepa.models import build_encoder, build_predictor

    torch.manual_seed(seed)
    enc = build_encoder(
        model["name"],
        num_frames=model.get("num_frames", 16),
        img_size=model.get("img_size", 32),
        patch_size=model.get("patch_size", 8),
        tubelet_size=model.get("tubelet_size", 2),
        **({"depth": model["depth"]} if "depth" in model else {}),
    )
    pred = build_predictor(
        enc,
        depth=model.get("pred_depth", 2),
        embed_dim=model.get("pred_embed_dim", 48),
        num_mask_tokens=model.get("num_mask_tokens", 2),
    )
    return enc, pred


@torch.no_grad()
def encode(enc, frames: np.ndarray, batch: int = 128) -> torch.Tensor:
    enc.eval()
    out = []
    for i in range(0, len(frames), batch):
        out.append(enc(to_input(frames[i : i + batch])))
    return torch.cat(out)


def probe(
    train_x,
    train_y,
    val_x,
    val_y,
    num_classes,
    num_heads,
    kind="attentive",
    epochs=40,
    lr=5e-3,
    seed=0,
    batch_size=64,
):
    from vjepa.eval.heads import train_probe
    from vjepa.eval.probe_train import FeatureSet, ProbeParams

    if kind == "linear":
        train_x, val_x = train_x.mean(1), val_x.mean(1)

    def fs(x, y):
        x = x[:, None, None]  # [N, S=1, V=1, tokens, D] (or [N,1,1,D] pooled)
        return FeatureSet(x, np.arange(len(y)), y)

    params = ProbeParams(
        kind=kind, num_heads=num_heads, lr=lr, epochs=epochs, batch_size=batch_size
    )
    res = train_probe(
        fs(train_x, train_y),
        fs(val_x, val_y),
        params,
        num_classes=num_classes,
        embed_dim=train_x.shape[-1],
        seed=seed,
    )
    train_acc = None
    from vjepa.eval.heads import evaluate

    train_acc = evaluate(res.model, fs(train_x, train_y))["top1"]
    return {"val": res.val_top1, "best_epoch": res.best_epoch, "train": train_acc}


def evaluate_encoder(
    enc,
    design,
    tasks=("motion", "appearance"),
    probe_seed=0,
    kinds=("attentive",),
    epochs=40,
    n_train=None,
):
    trf, trm, tra = clips(design, *PROBE_TRAIN)
    vaf, vam, vaa = clips(design, *PROBE_VAL)
    if n_train:
        trf, trm, tra = trf[:n_train], trm[:n_train], tra[:n_train]
        epochs = min(400, epochs * PROBE_TRAIN[1] // n_train)  # same number of probe steps
    t0 = time.time()
    xt, xv = encode(enc, trf), encode(enc, vaf)
    t_enc = time.time() - t0
    names = synth_config(design).class_names()
    out = {}
    for task in tasks:
        yt, yv = (trm, vam) if task == "motion" else (tra, vaa)
        for kind in kinds:
            t0 = time.time()
            r = probe(
                xt,
                yt,
                xv,
                yv,
                len(names[task]),
                enc.num_heads,
                kind=kind,
                epochs=epochs,
                seed=probe_seed,
            )
            r["seconds"] = round(time.time() - t0, 1)
            out[f"{task}/{kind}"] = r
    out["encode_s"] = round(t_enc, 1)
    return out


# ---------------------------------------------------------------------------------------------
# pretraining (compact V-JEPA step for calibration only)


def pretrain(
    design,
    model,
    masking,
    target="feature",
    steps=600,
    batch_size=32,
    lr=6.25e-4,
    start_lr=2e-4,
    final_lr=1e-6,
    warmup=0.1,
    wd=(0.04, 0.4),
    ema=(0.998, 1.0),
    ipe_scale=1.25,
    seed=0,
    hflip=0.0,
    n_clips=None,
    log_every=50,
):
    from vjepa.masks import build_mask_generators
    from vjepa.train.objectives import JEPA, feature_targets, pixel_targets
    from vjepa.train.schedules import Schedules

    frames, _, _ = clips(design, *PRETRAIN)
    if n_clips:
        frames = frames[:n_clips]
    gens = build_mask_generators(masking, _grid(model))
    model = {**model, "num_mask_tokens": len(gens)}
    enc, pred = build(model, seed)
    jepa = JEPA(enc, pred, target)
    tgt_enc = copy.deepcopy(enc).requires_grad_(False) if target == "feature" else None
    decay = [p for n, p in jepa.named_parameters() if p.ndim > 1 and "pos_embed" not in n]
    no_decay = [p for n, p in jepa.named_parameters() if p.ndim <= 1 and p.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": wd[0]}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )
    sched = Schedules(
        warmup_steps=int(warmup * steps),
        horizon=int(ipe_scale * steps),
        start_lr=start_lr,
        lr=lr,
        final_lr=final_lr,
        weight_decay=wd[0],
        final_weight_decay=wd[1],
        ema_start=ema[0],
        ema_end=ema[1],
    )
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    tub, patch = model.get("tubelet_size", 2), model.get("patch_size", 8)
    log = []
    t0 = time.time()
    for step in range(steps):
        idx = rng.integers(0, len(frames), batch_size)
        x = to_input(frames[idx])
        if hflip:
            flip = torch.from_numpy(rng.random(batch_size) < hflip)
            x[flip] = x[flip].flip(-1)
        for g in opt.param_groups:
            g["lr"] = sched.lr_at(step)
        opt.param_groups[0]["weight_decay"] = sched.wd_at(step)
        masks = [g_(batch_size, gen) for g_ in gens]
        mc, mt = [m[0] for m in masks], [m[1] for m in masks]
        with torch.no_grad():
            if target == "feature":
                tgts = feature_targets(tgt_enc, x)
            else:
                tgts = pixel_targets(x, tub, patch)
        jepa.train()
        loss = jepa(x, mc, mt, tgts)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if step >= sched.warmup_steps:
            torch.nn.utils.clip_grad_norm_(jepa.parameters(), 10.0)
        opt.step()
        if tgt_enc is not None:
            m = sched.momentum_at(step)
            with torch.no_grad():
                for pt, pc in zip(tgt_enc.parameters(), enc.parameters(), strict=True):
                    pt.mul_(m).add_(pc.detach(), alpha=1 - m)
        if step % log_every == 0 or step == steps - 1:
            log.append((step, round(float(loss.detach()), 4), round(time.time() - t0, 1)))
            print(
                f"  step {step} loss {float(loss.detach()):.4f} {time.time() - t0:.0f}s", flush=True
            )
    final = tgt_enc if tgt_enc is not None else enc
    return (final, enc), {
        "loss": log,
        "pretrain_s": round(time.time() - t0, 1),
        "clips_per_s": round(steps * batch_size / (time.time() - t0), 1),
    }


def _grid(model):
    t = model.get("num_frames", 16) // model.get("tubelet_size", 2)
    s = model.get("img_size", 32) // model.get("patch_size", 8)
    return (t, s, s)


MODELS = {
    "micro_p8": {"name": "vit_micro", "patch_size": 8, "pred_depth": 2, "pred_embed_dim": 48},
    "micro_p4": {"name": "vit_micro", "patch_size": 4, "pred_depth": 2, "pred_embed_dim": 48},
    "mini_p8": {"name": "vit_mini", "patch_size": 8, "pred_depth": 4, "pred_embed_dim": 96},
    # the encoder of the earlier calibration round (192 wide, 4 blocks)
    "w192d4_p8": {
        "name": "vit_mini",
        "depth": 4,
        "patch_size": 8,
        "pred_depth": 2,
        "pred_embed_dim": 96,
    },
}


def record(row):
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def masking_arg(text):
    if text.startswith("{") or text.startswith("["):
        v = json.loads(text)
        return v if isinstance(v, dict) else {"name": "custom", "generators": v}
    return text


def main():
    torch.set_num_threads(THREADS)
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["baseline", "pretrain", "clips"])
    ap.add_argument("--design", required=True)
    ap.add_argument("--model", default="micro_p8")
    ap.add_argument("--masking", default="multiblock_small", type=masking_arg)
    ap.add_argument("--target", default="feature")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=6.25e-4)
    ap.add_argument("--ema", type=float, nargs=2, default=[0.998, 1.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--kinds", nargs="+", default=["attentive"])
    ap.add_argument("--tasks", nargs="+", default=["motion", "appearance"])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--n-train", type=int, nargs="+", default=None)
    ap.add_argument("--hflip", type=float, default=0.0)
    ap.add_argument("--tag", default="")
    ap.add_argument("--which", nargs="+", default=["target"], choices=["target", "context"])
    a = ap.parse_args()
    model = MODELS[a.model]
    if a.mode == "clips":
        t0 = time.time()
        for r in (PRETRAIN, PROBE_TRAIN, PROBE_VAL):
            clips(a.design, *r)
        print(f"clips {a.design}: {time.time() - t0:.0f}s")
        return
    for seed in a.seeds:
        row = {"mode": a.mode, "design": a.design, "model": a.model, "seed": seed, "tag": a.tag}
        if a.mode == "baseline":
            enc, _ = build(model, seed)
        else:
            (target_enc, context_enc), info = pretrain(
                a.design,
                model,
                a.masking,
                a.target,
                a.steps,
                a.batch,
                a.lr,
                ema=tuple(a.ema),
                seed=seed,
                hflip=a.hflip,
            )
            row.update(
                target=a.target,
                steps=a.steps,
                batch=a.batch,
                lr=a.lr,
                ema=a.ema,
                masking=a.masking,
                **info,
            )
        encoders = (
            {"target": enc}
            if a.mode == "baseline"
            else {"target": target_enc, "context": context_enc}
        )
        for which in a.which if a.mode == "pretrain" else ["target"]:
            if a.tag:
                ENCODERS.mkdir(parents=True, exist_ok=True)
                torch.save(encoders[which].state_dict(), ENCODERS / f"{a.tag}-s{seed}-{which}.pt")
            for n_train in a.n_train or [None]:
                res = evaluate_encoder(
                    encoders[which],
                    a.design,
                    tasks=a.tasks,
                    kinds=a.kinds,
                    epochs=a.epochs,
                    n_train=n_train,
                )
                record({**row, "which": which, "n_train": n_train, **res})


if __name__ == "__main__":
    main()
