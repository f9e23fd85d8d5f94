"""`vjepa-exp --help` must answer without importing the heavy libraries."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "av", "dvc", "optuna", "polars", "hydra", "matplotlib", "omegaconf")

PROBE = """
import sys
sys.argv = ["vjepa-exp", "--help"]
from cli.main import app
try:
    app()
except SystemExit:
    pass
print("LOADED:" + ",".join(sorted({m.split(".")[0] for m in sys.modules} & set(%r))))
"""


def test_help_imports_no_heavy_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    line = [x for x in out.stdout.splitlines() if x.startswith("LOADED:")][-1]
    assert line == "LOADED:", f"heavy modules imported by --help: {line}"
    for command in ("run", "compile", "dag", "status", "results", "compare", "cancel"):
        assert command in out.stdout


FORBIDDEN = {"dvc", "subprocess", "signal", "submitit", "shutil", "fcntl"}


def test_cli_only_parses_and_renders() -> None:
    """DVC, SLURM, git, process and file logic live in ``vjepa.pipeline``; ``cli/`` calls it."""
    import ast
    from pathlib import Path

    found = []
    for path in sorted((Path(__file__).resolve().parents[2] / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            elif isinstance(node, ast.Attribute) and node.attr in ("kill", "killpg"):
                names = [f"os.{node.attr}"]
            else:
                continue
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN | {"os"}]
    assert not found, found
