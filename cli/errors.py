"""One-line user errors: a command raises ``UserError`` and the CLI prints it without a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """Turn ``vjepa.errors.UserError`` into ``error: <message>`` on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vjepa.errors import UserError

        try:
            return func(*args, **kwargs)
        except UserError as exc:
            typer.secho(f"error: {exc}", err=True, fg="red")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
