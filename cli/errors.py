"""One-line user errors: a command raises ``UserError`` and the CLI prints it without a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """Print ``error: <message>`` for user errors (exit 2) and a diverged training run (exit 3)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vjepa.errors import TrainingDiverged, UserError

        try:
            return func(*args, **kwargs)
        except UserError as exc:
            typer.secho(f"error: {exc}", err=True, fg="red")
            raise typer.Exit(2) from None
        except TrainingDiverged as exc:
            typer.secho(f"error: {exc}", err=True, fg="red")
            raise typer.Exit(3) from None

    return wrapper  # type: ignore[return-value]
