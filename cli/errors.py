"""One-line user errors: a command raises ``UserError`` and the CLI prints it without a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """Print ``error: <message>`` for user errors (exit 2) and a diverged training run (exit 3),
    and ``interrupted: <message>`` for a stage that saved its state on request (exit 4)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vjepa.errors import StageInterrupted, TrainingDiverged, UserError

        try:
            return func(*args, **kwargs)
        except StageInterrupted as exc:
            typer.secho(f"interrupted: {exc}", err=True, fg="yellow")
            raise typer.Exit(4) from None
        except UserError as exc:
            typer.secho(f"error: {exc}", err=True, fg="red")
            raise typer.Exit(2) from None
        except TrainingDiverged as exc:
            typer.secho(f"error: {exc}", err=True, fg="red")
            raise typer.Exit(3) from None

    return wrapper  # type: ignore[return-value]
