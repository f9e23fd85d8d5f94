"""Files of the project at a git revision (``compare --rev`` reads params.yaml there)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from vjepa.errors import UserError


def git(root: Path, args: list[str]) -> str:
    """``git ARGS`` in ``root``; a failure is a UserError with git's message."""
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        message = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
        raise UserError(f"git {' '.join(args)}: {message}")
    return out.stdout


def show(root: Path, rev: str, path: str) -> str:
    """The text of ``path`` (relative to the project root) at revision ``rev``."""
    return git(root, ["show", f"{rev}:{path}"])
