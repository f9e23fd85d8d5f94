"""A spec's pictures from the platform's side: redrawn from its finished probes on request, and
declared to DVC so that ``dvc plots show`` draws them from a finished run.

The figures themselves are ``vjepa.report.plots`` (shared with the report stage); this module adds
what needs the platform: the compiled spec, the tracked metrics copies, the dvc.yaml section.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vjepa.pipeline.graph import out_dir, parse_name

PLOTS_DIR = Path("runs") / "plots"  # untracked: never inside a stage's DVC output
LOSS_PNG = "loss.png"  # written by every pretrain stage


def write_spec_plots(root: Path, compiled: Any) -> list[Path]:
    """Draw the report PNG of ``compiled`` from the probes finished so far into
    ``runs/plots/<spec>/`` (a stage's own folder is DVC's: rewriting it would make the stage
    stale), and list it with the loss PNGs its pretrain stages wrote (those that exist)."""
    from vjepa.pipeline.results import read_workdir
    from vjepa.report import plots, results

    config = compiled.report.config
    df, pv = results.pivot_report(
        config, read_workdir(root), lambda folder: results.probe_classes(root / folder)
    )
    out = root / PLOTS_DIR / compiled.report.label
    written = plots.save_plots(df, pv, out, compiled.spec.name)
    for stale in {plots.BARS, plots.CURVE} - set(written):  # from an earlier, other layout
        (out / stale).unlink(missing_ok=True)
    losses = [
        root / stage.out / LOSS_PNG
        for stage in compiled.stages
        if stage.kind == "pretrain" and (root / stage.out / LOSS_PNG).is_file()
    ]
    return [out / name for name in written] + losses


def _stage_plots(name: str) -> list[Any]:
    """The top-level dvc.yaml plots of one stage (files inside its output folder)."""
    try:
        kind, label, _ = parse_name(name)
    except ValueError:
        return []
    from vjepa.report.plots import SUMMARY

    folder = out_dir(name)
    if kind == "pretrain":  # DVC reads no JSONL: the loss curve is the stage's PNG
        return [f"{folder}/{LOSS_PNG}"]
    if kind == "report":
        props = {"template": "bar_horizontal", "x": "mean", "y": "label", "title": label}
        return [{f"{folder}/{SUMMARY}": props}]
    return []


def _path(entry: Any) -> str:
    """The file (or id) a dvc.yaml plots entry names."""
    return entry if isinstance(entry, str) else next(iter(entry), "") if entry else ""


def dvc_plots(stages: Iterable[str], existing: list[Any] | None = None) -> list[Any]:
    """The top-level ``plots:`` of dvc.yaml for the stages named ``stages``.

    DVC refuses a plots file declared inside an output as a second output, so a stage cannot
    declare its own; a top-level entry may point into any output. Entries of ``existing`` that
    point outside ``runs/`` (written by hand) are kept first; those of stages no longer present
    are dropped, so rendering twice gives the same section.
    """
    kept = [e for e in existing or [] if not _path(e).startswith("runs/")]
    return kept + [entry for name in stages for entry in _stage_plots(name)]
