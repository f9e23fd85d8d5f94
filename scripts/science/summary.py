"""The calibration results (runs/science/results.jsonl): one line per run, and the search plot.

    python scripts/science/summary.py                       # every run, one line each
    python scripts/science/summary.py --plot docs/science/search.png

The plot puts each pretrained encoder's motion validation accuracy (attentive probe; 2000 and
200 labelled clips) against the clips it saw in pretraining, one colour per design, with that
design's random-init encoder as a dashed line: a point above its line is the signal looked for.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "runs" / "science" / "results.jsonl"


def rows() -> list[dict]:
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


def labels_used(r: dict) -> int:
    return r.get("n_train") or 2000


def print_rows() -> None:
    for r in rows():
        acc = {
            k: f"{v['val']:.1f} (train {v['train']:.1f}, ep {v['best_epoch']})"
            for k, v in r.items()
            if "/" in k and isinstance(v, dict)
        }
        loss = r.get("loss", [[None, None]])[-1][1]
        print(
            r["mode"], r["design"], r.get("model", "-"), r.get("target", "-"),
            r.get("steps", "-"), f"ema={r.get('ema', '-')}", f"seed={r['seed']}",
            r["tag"] or "-", f"which={r.get('which', 'target')}", f"n_train={r.get('n_train')}",
            f"wall={r.get('pretrain_s', '-')}", f"loss={loss}", acc,
        )  # fmt: skip


def plot(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = [r for r in rows() if r.get("which", "target") == "target" and "motion/attentive" in r]
    designs = sorted({r["design"] for r in data})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, n_labels in zip(axes, (2000, 200), strict=True):
        for i, design in enumerate(designs):
            here = [r for r in data if r["design"] == design and labels_used(r) == n_labels]
            base = [r["motion/attentive"]["val"] for r in here if r["mode"] == "baseline"]
            if base:
                ax.axhline(sum(base) / len(base), color=f"C{i}", ls="--", lw=1)
            for target, marker in (("feature", "o"), ("pixel", "x")):
                pts = [r for r in here if r.get("target") == target]
                ax.scatter(
                    [r["steps"] * r["batch"] / 1000 for r in pts],
                    [r["motion/attentive"]["val"] for r in pts],
                    color=f"C{i}", marker=marker, label=f"{design} ({target})" if pts else None,
                )  # fmt: skip
        ax.set_xlabel("pretraining clips seen (thousands)")
        ax.set_ylabel("motion, validation top-1 (%)")
        ax.set_title(f"{n_labels} labelled clips: V-JEPA vs random init (dashed)")
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--plot", type=Path)
    a = ap.parse_args()
    plot(a.plot) if a.plot else print_rows()
