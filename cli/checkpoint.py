"""`vjepa-exp checkpoint ...` commands: convert between the official layout and ours, inspect."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from cli.errors import friendly

app = typer.Typer(no_args_is_help=True)

SRC = typer.Argument(..., help="Checkpoint file (official V-JEPA layout or ours).")
OUT = typer.Option(..., "--out", "-o", help="File to write.")


@app.command("import")
@friendly
def import_(src: Path = SRC, out: Path = OUT) -> None:
    """Convert an official V-JEPA checkpoint (e.g. vitl16.pth.tar) into our layout."""
    from vjepa.models.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(src)
    scalars = {k: v for k, v in ckpt.extra.items() if isinstance(v, int | float | str)}
    save_checkpoint(
        out,
        ckpt.model,
        encoder=ckpt.encoder,
        target_encoder=ckpt.target_encoder,
        predictor=ckpt.predictor,
        epoch=ckpt.epoch,
        step=ckpt.step,
        **({"imported": scalars} if ckpt.official else {}),
    )
    typer.echo(f"{out}: {ckpt.model['name']} checkpoint, epoch {ckpt.epoch}")


@app.command("export")
@friendly
def export(src: Path = SRC, out: Path = OUT) -> None:
    """Write a checkpoint in the official layout (module.backbone. keys) for the reference code."""
    from vjepa.models.checkpoint import export_official, load_checkpoint

    ckpt = load_checkpoint(src)
    export_official(ckpt, out)
    typer.echo(f"{out}: official layout, {ckpt.model['name']}, epoch {ckpt.epoch}")


def _grouped(state: dict) -> list[tuple[str, str, int]]:
    """(key pattern, shape, count): keys of repeated blocks folded into ``blocks.{i}.``."""
    rows: dict[tuple[str, str], int] = {}
    for key, value in state.items():
        pattern = re.sub(r"\.\d+(\.|$)", r".{i}\1", key)
        shape = str(list(getattr(value, "shape", [])))
        rows[(pattern, shape)] = rows.get((pattern, shape), 0) + 1
    return [(k, s, n) for (k, s), n in rows.items()]


@app.command("show")
@friendly
def show(src: Path = SRC) -> None:
    """Print a checkpoint's layout, detected model, epoch, and its tensors' keys and shapes."""
    from rich.console import Console
    from rich.table import Table

    from vjepa.models.checkpoint import MODULES, load_checkpoint

    ckpt = load_checkpoint(src)
    console = Console()
    layout = "official" if ckpt.official else "vjepa-exp"
    model = ", ".join(f"{k}={v}" for k, v in ckpt.model.items())
    console.print(f"[bold]{src}[/]  layout={layout}  epoch={ckpt.epoch}  step={ckpt.step}")
    console.print(f"model: {model}")
    for name in MODULES:
        state = getattr(ckpt, name)
        if not state:
            console.print(f"{name}: none")
            continue
        total = sum(v.numel() for v in state.values())
        table = Table(
            "key", "shape", "count", title=f"{name}: {len(state)} tensors, {total:,} values"
        )
        for key, shape, count in _grouped(state):
            table.add_row(key, shape, str(count))
        console.print(table)
    if ckpt.extra:
        console.print("other entries: " + ", ".join(sorted(ckpt.extra)))
