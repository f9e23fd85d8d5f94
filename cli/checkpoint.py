"""`vjepa-exp checkpoint ...` commands: convert released layouts (V-JEPA, V-JEPA 2, V-JEPA 2.1)
into ours and back, inspect. Keys a layout ignores are named in the output (docs/checkpoints.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.errors import friendly

if TYPE_CHECKING:
    from vjepa.models.checkpoint import Checkpoint

app = typer.Typer(no_args_is_help=True)

SRC = typer.Argument(..., help="Checkpoint file (V-JEPA, V-JEPA 2 or 2.1 layout, or ours).")
OUT = typer.Option(..., "--out", "-o", help="File to write.")


def _ignored_lines(ckpt: Checkpoint) -> list[str]:
    """One line per module with keys the file's layout ignores."""
    return [f"ignored ({ckpt.layout} layout) {m}: {', '.join(k)}" for m, k in ckpt.ignored.items()]


@app.command("import")
@friendly
def import_(src: Path = SRC, out: Path = OUT) -> None:
    """Convert a released checkpoint (vitl16.pth.tar, vitl.pt, vjepa2_1_*.pt) into our layout."""
    from vjepa.models.checkpoint import load_checkpoint, save_checkpoint, verify

    ckpt = load_checkpoint(src)
    verify(ckpt, str(src))  # a file that would not load strictly is refused before writing
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
    for line in _ignored_lines(ckpt):
        typer.echo(line)
    typer.echo(f"{out}: {ckpt.model['name']} checkpoint ({ckpt.layout} layout), epoch {ckpt.epoch}")


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
    model = ", ".join(f"{k}={v}" for k, v in ckpt.model.items())
    console.print(
        f"[bold]{src}[/]  layout={ckpt.layout}  preset={ckpt.model['name']}  "
        f"epoch={ckpt.epoch}  step={ckpt.step}",
        highlight=False,
    )
    console.print(f"model: {model}", highlight=False)
    for line in _ignored_lines(ckpt):
        console.print(line, highlight=False, markup=False)
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
