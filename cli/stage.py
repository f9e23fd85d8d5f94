"""``vjepa-exp stage KIND CONFIG --out DIR``: run one stage outside the pipeline.

The same function runs under ``vjepa-exp exec`` (DVC) and inside SLURM jobs.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cli.errors import friendly
from vjepa.stages import KINDS

app = typer.Typer(no_args_is_help=True)


def _make(kind: str):
    @friendly
    def command(
        config: Path = typer.Argument(..., help="YAML file with the stage's config."),
        out: Path = typer.Option(..., "--out", help="Output folder of the stage."),
    ) -> None:
        from vjepa.stages import load_stage_config, run_stage

        metrics = run_stage(kind, load_stage_config(config), out)
        typer.echo(f"{kind}: done -> {out}")
        for key, value in sorted(metrics.items()):
            if isinstance(value, int | float | str):
                typer.echo(f"  {key}: {value}")

    command.__doc__ = f"Run a {kind} stage."
    return command


for _kind in KINDS:
    app.command(_kind)(_make(_kind))
