"""The source files each stage kind runs, read from the imports of its stage module.

A stage's DVC deps name the code that computes its outputs, so that editing it reruns the stage
and editing anything else does not: a probe-only change must not rerun every feature extraction,
and a change to the CLI or the docs must not rerun pretraining. The set is the transitive closure
of ``vjepa`` imports (eager and function-level) from ``vjepa/stages/<kind>.py``, found by reading
the sources, not by importing them (no torch at compile time). Importing a module runs its
packages' ``__init__`` files and what they import, so those count too, as Python runs them.
Plumbing that cannot change a number (error types, atomic file writes, key checks) is left out,
as are the CLI and the pipeline's own orchestration.
"""

from __future__ import annotations

import ast
import hashlib
import os
from functools import cache
from pathlib import Path

from vjepa.utils.io import atomic_write_json, read_json_object

PACKAGE = "vjepa"
SOURCE_ROOT = Path(__file__).resolve().parents[2]

# Modules whose edits never change what a stage computes (messages, file plumbing, key checks).
PLUMBING = frozenset({"vjepa.errors", "vjepa.utils.io", "vjepa.utils.keys"})


def _module_file(module: str) -> Path | None:
    """The source file of ``module`` under the package, or None if it is not one of ours."""
    base = SOURCE_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_packages(modules: set[str]) -> set[str]:
    """``modules`` and their packages: importing ``a.b.c`` first runs ``a`` and ``a.b``."""
    return modules | {m.rsplit(".", k)[0] for m in modules for k in range(1, m.count(".") + 1)}


@cache
def _is_lazy(package: str) -> bool:
    """True for a package whose ``__init__`` resolves names on first use (a module ``__getattr__``)."""
    init = SOURCE_ROOT.joinpath(*package.split("."), "__init__.py")
    if not init.is_file():
        return False
    tree = ast.parse(init.read_text(), filename=str(init))
    return any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body)


@cache
def _imported_modules(path: Path, module: str) -> frozenset[str]:
    """Every ``vjepa`` module that ``path`` imports anywhere in its body.

    A name imported from a lazy package (``from vjepa.models import build_encoder``) would hide
    the module that defines it from this reading, so it is refused: import it from its module.
    """
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            # ``from vjepa.models import probe`` imports a submodule, not a name.
            found.update(f"{base}.{a.name}" for a in node.names if _module_file(f"{base}.{a.name}"))
            hidden = [
                a.name
                for a in node.names
                if base.startswith(PACKAGE)
                and _is_lazy(base)
                and not _module_file(f"{base}.{a.name}")
            ]
            if hidden and path.name != "__init__.py":
                raise ValueError(
                    f"{path}: `from {base} import {', '.join(hidden)}` goes through a lazy "
                    "package export, which hides the defining module from the stages' code "
                    "deps; import it from its module"
                )
    return frozenset(
        _with_packages({m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")})
    )


@cache
def modules_run_by(kind: str) -> frozenset[str]:
    """The ``vjepa`` modules a stage of ``kind`` runs (closure over imports, plumbing removed)."""
    todo, seen = list(_with_packages({f"{PACKAGE}.stages.{kind}"})), set()
    while todo:
        module = todo.pop()
        path = _module_file(module)
        if module in seen or path is None or module in PLUMBING:
            continue
        seen.add(module)
        todo.extend(_imported_modules(path, module))
    return frozenset(seen)


def _relative(path: Path) -> str:
    return path.relative_to(SOURCE_ROOT).as_posix()


@cache
def code_deps(kind: str) -> tuple[str, ...]:
    """Project-relative dep paths for ``kind``: a folder where all its modules run, else files."""
    files = {_module_file(m) for m in modules_run_by(kind)}
    files.discard(None)
    deps: set[str] = set()
    for folder in {f.parent for f in files}:
        members = set(folder.glob("*.py"))
        if members <= files and folder != SOURCE_ROOT / PACKAGE:
            deps.add(_relative(folder))
        else:
            deps.update(_relative(f) for f in members & files)
    return tuple(sorted(deps))


@cache
def _source_stamp() -> str:
    """Size and mtime of every source file of the package: reading the imports of ~60 modules
    took ~0.5 s of each compile, the largest part of a no-op run after DVC's."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(SOURCE_ROOT / PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            st = os.stat(os.path.join(folder, name))
            digest.update(f"{folder}/{name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cached_code_deps(kind: str, cache_file: Path) -> tuple[str, ...]:
    """``code_deps(kind)``, kept in ``cache_file`` while no source file of the package changes."""
    stamp = _source_stamp()
    data = read_json_object(cache_file)
    known = data.get("deps") if data.get("stamp") == stamp else None
    if isinstance(known, dict) and isinstance(known.get(kind), list):
        return tuple(known[kind])
    deps = code_deps(kind)
    atomic_write_json(cache_file, {"stamp": stamp, "deps": {**(known or {}), kind: list(deps)}})
    return deps
