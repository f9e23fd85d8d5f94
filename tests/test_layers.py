"""The layers of docs/architecture.md, read from the sources: imports point down, and no cycles.

Every ``import`` of a ``vjepa`` or ``cli`` module counts, at the top of a module or inside a
function, since a function-level import is still a dependency of the layer it sits in.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# each layer, and the layers above it that it must never import
SCIENCE = ("vjepa.data", "vjepa.models", "vjepa.masks", "vjepa.train", "vjepa.eval")
ABOVE = {
    **{s: ("vjepa.stages", "vjepa.report", "vjepa.pipeline", "cli") for s in SCIENCE},
    "vjepa.utils": (*SCIENCE, "vjepa.stages", "vjepa.report", "vjepa.pipeline", "cli"),
    "vjepa.stages": ("vjepa.pipeline", "cli"),
    "vjepa.report": ("vjepa.stages", "vjepa.pipeline", "cli"),
    "vjepa.pipeline": ("cli",),
}


def _modules() -> dict[str, Path]:
    found = {}
    for top in ("vjepa", "cli"):
        for path in sorted((REPO / top).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path, top_level_only: bool = False) -> set[str]:
    """The project modules ``name`` imports (``from a import b`` counts a.b when it is one)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)
    return {m for m in out if m in MODULES and m != name}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_no_layer_imports_a_layer_above_it(layer: str) -> None:
    wrong = [
        f"{name} imports {target}"
        for name, path in MODULES.items()
        if _within(name, layer)
        for target in sorted(_imports(name, path))
        if any(_within(target, above) for above in ABOVE[layer])
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_at_module_level() -> None:
    """Module-level imports form a DAG (a cycle breaks on whichever module is imported first)."""
    graph = {name: _imports(name, path, top_level_only=True) for name, path in MODULES.items()}
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            # a package's __init__ is run before its submodules: an edge into one's own parent
            # package is Python's import order, not a cycle of ours
            if _within(node, nxt):
                continue
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_checks_see_real_imports() -> None:
    """Guard against a vacuous pass: the reader finds imports that are known to be there."""
    assert "vjepa.pipeline.dvcio" in _imports(
        "vjepa.pipeline.runner", MODULES["vjepa.pipeline.runner"]
    )
    assert "vjepa.utils.progress" in _imports(
        "vjepa.stages.pretrain", MODULES["vjepa.stages.pretrain"]
    )
