"""Top-level pipeline commands: run, compile, dag, status, results, compare, cancel, exec."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the pipeline commands to the main app."""
