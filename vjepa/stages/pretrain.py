"""Pretrain stage: ``run(config, out) -> metrics``, the body of ``vjepa-exp stage pretrain``.

SIGTERM and SIGUSR2 (SLURM preemption / time limit) make the run save ``ckpt/latest.pt`` at the
next step and raise :class:`vjepa.utils.signals.PretrainInterrupted`, so no ``metrics.json`` is
published; running the stage again resumes from the saved state.

Rank 0 writes ``progress.json`` (steps done of the run's total, loss, lr, clips/s); a resumed run
counts on from the step it resumed at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run(config: dict[str, Any], out: Path) -> dict[str, Any]:
    from vjepa.train import pretrain
    from vjepa.train.distributed import read_env
    from vjepa.train.plots import plot_losses
    from vjepa.utils.progress import ProgressWriter
    from vjepa.utils.signals import PretrainInterrupted, stop_on_signals

    out = Path(out)
    on_progress = ProgressWriter(out, "pretrain", "step").update if read_env().is_main else None
    with stop_on_signals() as stop:
        metrics = pretrain(config, out, stop=stop, on_progress=on_progress)
    if metrics.get("interrupted"):
        raise PretrainInterrupted(
            f"pretraining interrupted at step {metrics['steps']}; resume state saved in "
            f"{out / 'ckpt' / 'latest.pt'}"
        )
    if read_env().is_main and (out / "checkpoint.pt").is_file():
        target = config.get("pretrain", {}).get("target", "feature")
        plot_losses({f"{target} target": out / "log.jsonl"}, out / "loss.png")
    return metrics
