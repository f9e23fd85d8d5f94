"""Entry point of ``vjepa-exp``.

Only typer is imported at start-up; every command imports torch, PyAV, DVC, Optuna or polars
inside its own body, so ``vjepa-exp --help`` answers without loading them.
"""

from __future__ import annotations

import typer

from cli import checkpoint, data, pipeline, stage

app = typer.Typer(
    name="vjepa-exp",
    help="V-JEPA experiments: YAML spec -> DVC pipeline -> result table, locally or on SLURM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data", help="Synthesize, index and inspect video datasets.")
app.add_typer(checkpoint.app, name="checkpoint", help="Import, export and inspect checkpoints.")
app.add_typer(stage.app, name="stage", help="Run one pipeline stage from a config file.")
pipeline.register(app)


def main() -> None:
    """Console-script entry."""
    app()


if __name__ == "__main__":
    main()
