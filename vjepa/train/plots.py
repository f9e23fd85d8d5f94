"""Loss curves from ``log.jsonl`` (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vjepa.train.logging import read_log
from vjepa.utils.io import atomic_save


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average (the raw per-step loss is noisy at small batch)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot_losses(curves: dict[str, Path], target: Path, title: str = "pretraining loss") -> None:
    """One panel per curve (L1 and MSE have different scales); raw and smoothed loss vs step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6), squeeze=False)
    for ax, (label, log_path) in zip(axes[0], curves.items(), strict=True):
        records = read_log(log_path)
        steps = [r["step"] for r in records]
        losses = [r["loss"] for r in records]
        ax.plot(steps, losses, alpha=0.3, lw=0.8, label="per step")
        ax.plot(steps, smooth(losses, max(1, len(losses) // 20)), lw=1.8, label="moving mean")
        ax.set_title(label)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    atomic_save(target, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
