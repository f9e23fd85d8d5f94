"""PNG plots of a tidy results table: label-efficiency curves and per-variant bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _agg(df: Any, keys: list[str], metric: str) -> list[dict[str, Any]]:
    import polars as pl

    done = df.filter(pl.col("done") & pl.col(metric).is_not_null())
    return (
        done.group_by(keys)
        .agg(
            pl.col(metric).mean().alias("mean"),
            pl.col(metric).std(ddof=1).fill_null(0.0).alias("std"),
        )
        .sort(keys)
        .to_dicts()
    )


def save_plots(df: Any, metric: str, out: Path) -> list[str]:
    """Write ``label_efficiency.png`` (several label fractions) or ``bars.png``; the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if metric not in df.columns or "task" not in df.columns or df.height == 0:
        return []
    tasks = sorted(set(df["task"].to_list()))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.4), squeeze=False)
    curve = "label_fraction" in df.columns and df["label_fraction"].n_unique() > 1
    for ax, task in zip(axes[0], tasks, strict=True):
        sub = df.filter(df["task"] == task)
        if curve:
            rows = _agg(sub, ["variant", "label_fraction"], metric)
            for variant in sorted({r["variant"] for r in rows}):
                pts = [r for r in rows if r["variant"] == variant]
                ax.errorbar(
                    [r["label_fraction"] * 100 for r in pts],
                    [r["mean"] for r in pts],
                    yerr=[r["std"] for r in pts],
                    marker="o",
                    capsize=3,
                    label=variant,
                )
            ax.set_xscale("log")
            ax.set_xlabel("labelled training data (%)")
        else:
            rows = _agg(sub, ["variant"], metric)
            ax.bar(
                [r["variant"] for r in rows],
                [r["mean"] for r in rows],
                yerr=[r["std"] for r in rows],
                capsize=3,
            )
            ax.tick_params(axis="x", rotation=30)
        ax.set_title(task)
        ax.set_ylabel(metric)
    if curve:
        axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    name = "label_efficiency.png" if curve else "bars.png"
    out.mkdir(parents=True, exist_ok=True)
    from vjepa.utils.io import atomic_save

    atomic_save(out / name, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)
    return [name]
