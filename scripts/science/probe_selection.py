"""Which rule should pick a few-label probe's epoch? Measured on labelled clips the probe never sees.

A 10 % label probe of the science specs trains on ~185 clips for 1600 steps (~530 epochs of 3
steps) and keeps the epoch with the best accuracy on its ~20 carved-out validation clips. With
that many looks at so few clips the maximum is mostly noise, and ties go to the earliest epoch: a
probe can keep a barely trained state. This script trains the probe with the stage's own
``train_probe`` (same rows and seed), records every epoch, and scores candidate rules by the accuracy
of the epoch each keeps on *held-out training clips*: the labelled train-split rows outside the
fraction whose group (a clip and its time-reversed partner) has no row in it. The test split is
not opened.

    python scripts/science/probe_selection.py runs/extract/<encoder>-motion-train-<uid>/features \
        --fraction 0.1 --seed 2 --out runs/science/probe_selection.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vjepa.eval.heads import train_probe
from vjepa.eval.label_fraction import carve_validation, stratified_subset
from vjepa.eval.metrics import view_averaged_probs
from vjepa.eval.probe_train import FeatureSet, ProbeParams, forward_views
from vjepa.eval.store import FeatureStore


def split_rows(store: FeatureStore, fraction: float, seed: int, val_fraction: float):
    """(train, val, held_out) rows: the stage's split, plus the untouched rest of the labels."""
    labels, usable = store.labels, np.nonzero(store.valid)[0]
    groups = np.asarray(store.groups) if store.groups is not None else np.arange(len(labels))
    rows = usable[stratified_subset(labels[usable], fraction, seed)]
    train, val = carve_validation(labels, rows, val_fraction, seed, groups)
    held_out = usable[~np.isin(groups[usable], groups[rows])]  # no row of a used group
    return train, val, held_out


@torch.no_grad()
def scores(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(top-1 %, cross-entropy of the view-averaged softmax) on a preloaded set."""
    model.eval()
    probs = view_averaged_probs(forward_views(model, x))
    top1 = 100.0 * float((probs.argmax(-1) == y).float().mean())
    return top1, float(F.nll_loss(probs.clamp_min(1e-12).log(), y))


def history(store: FeatureStore, train, val, params: ProbeParams, seed: int) -> tuple[list, Any]:
    """Train as the stage does (``train_probe``); record each epoch's validation CE and state."""
    val_x, val_y = FeatureSet(store, val, store.labels).batch(torch.arange(len(val)))
    out: list[dict] = []

    def record(epoch: int, val_top1: float | None, model: torch.nn.Module) -> None:
        state = {k: v.clone() for k, v in model.state_dict().items()}
        val_ce = scores(model, val_x, val_y)[1]
        out.append({"epoch": epoch, "val_top1": val_top1, "val_ce": val_ce, "state": state})

    params = ProbeParams(**{**params.to_dict(), "num_heads": params.num_heads or store.num_heads})
    result = train_probe(
        FeatureSet(store, train, store.labels),
        FeatureSet(store, val, store.labels),
        params,
        num_classes=store.num_classes,
        embed_dim=store.embed_dim,
        seed=seed,
        on_epoch=record,
    )
    return out, result.model


def held_out_top1(model, hist: list[dict], epochs: set[int], held_x, held_y) -> dict[int, float]:
    """Held-out top-1 of the states kept at ``epochs``."""
    out = {}
    for e in sorted(epochs):
        model.load_state_dict(hist[e]["state"])
        out[e] = scores(model, held_x, held_y)[0]
    return out


def choose(hist: list[dict], rule: str, checkpoints: int) -> int:
    """The epoch a selection rule keeps."""
    n = len(hist)
    if rule == "last":
        return n - 1
    if rule == "first_best_acc":  # the stage's rule before this study
        return max(range(n), key=lambda e: (hist[e]["val_top1"], -e))
    if rule == "last_best_acc":
        return max(range(n), key=lambda e: (hist[e]["val_top1"], e))
    if rule == "min_ce":
        return min(range(n), key=lambda e: hist[e]["val_ce"])
    if rule == "best_acc_then_ce":
        return max(range(n), key=lambda e: (hist[e]["val_top1"], -hist[e]["val_ce"]))
    if rule == "spaced_best_acc_then_ce":
        looks = sorted({round((i + 1) * n / checkpoints) - 1 for i in range(checkpoints)})
        return max(looks, key=lambda e: (hist[e]["val_top1"], -hist[e]["val_ce"]))
    raise ValueError(rule)


RULES = (
    "first_best_acc",
    "last_best_acc",
    "min_ce",
    "best_acc_then_ce",
    "spaced_best_acc_then_ce",
    "last",
)


def summarise(paths: list[Path]) -> None:
    """Held-out top-1 of the epoch each rule keeps, per probe and on average."""
    rows = [json.loads(line) for path in paths for line in path.read_text().splitlines()]
    print("features".ljust(64), *(r[:12].rjust(12) for r in RULES), "oracle".rjust(8))
    for row in rows:
        picks = [f"{row['picks'][r][1]:.1f}".rjust(12) for r in RULES]
        print(row["features"][:64].ljust(64), *picks, f"{row['oracle_on_grid']:.1f}".rjust(8))
    means = [f"{np.mean([row['picks'][r][1] for row in rows]):.1f}".rjust(12) for r in RULES]
    print("mean".ljust(64), *means, f"{np.mean([r['oracle_on_grid'] for r in rows]):.1f}".rjust(8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "features", nargs="+", help="train-split feature stores (--summary: jsonl files)"
    )
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=None, help="default: the encoder's seed (_sN)")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--min-steps", type=int, default=1600)
    ap.add_argument("--out", type=Path, default=Path("runs/science/probe_selection.jsonl"))
    ap.add_argument("--summary", action="store_true", help="print the rules' table of --out")
    args = ap.parse_args()
    if args.summary:
        summarise([Path(p) for p in args.features])
        return
    params = ProbeParams(lr=args.lr, batch_size=64, epochs=40, min_steps=args.min_steps)
    torch.set_num_threads(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for path in args.features:
        name = Path(path).parent.name
        seed = args.seed if args.seed is not None else int(name.split("-")[0].rsplit("_s", 1)[1])
        store = FeatureStore(path)
        train, val, held = split_rows(store, args.fraction, seed, args.val_fraction)
        hist, model = history(store, train, val, params, seed)
        picks = {rule: choose(hist, rule, params.epochs) for rule in RULES}
        held_x, held_y = FeatureSet(store, held, store.labels).batch(torch.arange(len(held)))
        grid = set(range(0, len(hist), max(1, len(hist) // 50))) | set(picks.values())
        held_acc = held_out_top1(model, hist, grid, held_x, held_y)
        row = {
            "features": name,
            "fraction": args.fraction,
            "seed": seed,
            "n": [len(train), len(val), len(held)],
            "picks": {r: [e, held_acc[e]] for r, e in picks.items()},
            "oracle_on_grid": max(held_acc.values()),
            "history": [{k: v for k, v in h.items() if k != "state"} for h in hist],
            "held_out": held_acc,
        }
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(name, row["n"], {r: f"ep{e} {held_acc[e]:.1f}" for r, e in picks.items()}, flush=True)


if __name__ == "__main__":
    main()
