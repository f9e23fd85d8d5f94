"""Stage code deps: each stage kind depends on the modules it runs and on nothing else."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vjepa.pipeline.code_deps import PLUMBING, _imported_modules, code_deps, modules_run_by

REPO = Path(__file__).resolve().parents[2]
KINDS = ("data", "pretrain", "extract", "probe", "report")


def covered(path: str, deps: tuple[str, ...]) -> bool:
    return any(path == d or path.startswith(d + "/") for d in deps)


def test_probe_and_extract_code_are_separate_deps() -> None:
    probe, extract = code_deps("probe"), code_deps("extract")
    assert covered("vjepa/eval/probe_train.py", probe)
    assert covered("vjepa/models/probe.py", probe)
    assert not covered("vjepa/eval/extract.py", probe)  # an extraction change keeps the probes
    assert not any(d.startswith("vjepa/data") for d in probe)
    assert covered("vjepa/eval/extract.py", extract)
    assert covered("vjepa/models/vit.py", extract)  # imported inside a function
    assert covered("vjepa/data/clips.py", extract)
    assert not covered("vjepa/eval/probe_train.py", extract)  # a probe change keeps the features
    assert covered("vjepa/masks/generators.py", code_deps("pretrain"))
    assert covered("vjepa/train/loop.py", code_deps("pretrain"))
    for kind in KINDS:
        deps = code_deps(kind)
        assert covered(f"vjepa/stages/{kind}.py", deps)
        assert not any(d.startswith(("cli", "docs", "tests")) for d in deps), deps
        assert not any(covered(m.replace(".", "/") + ".py", deps) for m in PLUMBING), deps


@pytest.mark.parametrize("kind", KINDS)
def test_deps_cover_every_module_python_imports(kind: str) -> None:
    """What the interpreter loads for a stage module is inside that kind's deps (eager imports)."""
    code = (
        f"import json, sys, vjepa.stages.{kind}\n"
        "print(json.dumps(sorted(n for n in sys.modules if n == 'vjepa' or n.startswith('vjepa.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout)) - PLUMBING
    assert loaded, out.stdout
    assert loaded <= modules_run_by(kind), loaded - modules_run_by(kind)


def test_relative_and_submodule_imports_are_followed(tmp_path: Path) -> None:
    source = tmp_path / "fake.py"
    source.write_text(
        "from .probe_train import train_probe\n"
        "def later():\n"
        "    from ..models import vit\n"
        "    import numpy\n"
    )
    found = _imported_modules(source, "vjepa.eval.fake")
    packages = {"vjepa", "vjepa.eval"}  # run by Python before the modules they hold
    assert found == packages | {"vjepa.eval.probe_train", "vjepa.models", "vjepa.models.vit"}


LAPTOP_SPECS = (
    "quickstart",
    "ablation_targets",
    "ablation_masking",
    "label_efficiency",
    "probe_sweep",
)


def committed(name: str) -> str | None:
    out = subprocess.run(["git", "show", f"HEAD:{name}"], cwd=REPO, capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else None


def test_committed_pipeline_is_what_compile_writes(tmp_path: Path) -> None:
    """`dvc repro` on a clone runs the committed files: they must match the specs and the code."""
    if committed("dvc.yaml") is None:
        pytest.skip("not a git checkout of the project")
    (tmp_path / ".dvc").mkdir()
    shutil.copytree(REPO / "experiments", tmp_path / "experiments")
    (tmp_path / "vjepa").symlink_to(REPO / "vjepa")
    specs = [f"experiments/{name}.yaml" for name in LAPTOP_SPECS]
    vjepa_exp = Path(sys.executable).parent / "vjepa-exp"
    subprocess.run(
        [str(vjepa_exp), "compile", *specs], cwd=tmp_path, check=True, capture_output=True
    )
    for name in ("dvc.yaml", "params.yaml"):
        assert (tmp_path / name).read_text() == committed(name), (
            f"{name} is stale: run `vjepa-exp compile {' '.join(specs)}` and commit it"
        )


@pytest.mark.parametrize("name", LAPTOP_SPECS)
def test_compiling_one_committed_spec_changes_no_byte(tmp_path: Path, name: str) -> None:
    """`vjepa-exp compile` of any one committed spec leaves the committed files as they are
    (no YAML anchors renumbered, no other spec's stages dropped): `git status` stays clean."""
    if committed("dvc.yaml") is None:
        pytest.skip("not a git checkout of the project")
    (tmp_path / ".dvc").mkdir()
    shutil.copytree(REPO / "experiments", tmp_path / "experiments")
    (tmp_path / "vjepa").symlink_to(REPO / "vjepa")
    for file in ("dvc.yaml", "params.yaml"):
        (tmp_path / file).write_text(committed(file))
    vjepa_exp = Path(sys.executable).parent / "vjepa-exp"
    out = subprocess.run(
        [str(vjepa_exp), "compile", f"experiments/{name}.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "unchanged" in out.stdout
    for file in ("dvc.yaml", "params.yaml"):
        assert (tmp_path / file).read_text() == committed(file), f"{name} rewrote {file}"
