"""``vjepa-exp compare``: the cells of two result tables side by side, two specs or one spec now
and at a git revision (its report section of params.yaml and its committed metrics copies)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vjepa.errors import UserError


@dataclass(frozen=True)
class Comparison:
    """Rows of ``results.compare`` (cell keys, ``a``, ``b``, ``diff``) and how to show them."""

    rows: list[dict[str, Any]]
    names: tuple[str, str]  # the headers of the a and b columns
    metric: str
    scale: float  # 100 when both tables hold fractions shown as percentages


def compare_specs(
    root: Path, specs: list[Path], overrides: list[str], rev: str | None = None
) -> Comparison:
    """``SPEC_A SPEC_B``, or ``SPEC --rev REV`` (REV's table first, then the one of now)."""
    import yaml

    from vjepa.pipeline import gitrev
    from vjepa.pipeline.compiler import compile_spec
    from vjepa.pipeline.graph import slug
    from vjepa.pipeline.results import read_git, read_workdir
    from vjepa.pipeline.runs import overrides_for
    from vjepa.report import results

    # each spec with the overrides given, else those of its latest run (as `results` does)
    per_spec = [overrides_for(root, s, overrides, None)[0] for s in specs]
    if len(specs) != (1 if rev else 2):
        raise UserError("compare: give SPEC_A SPEC_B, or SPEC --rev GIT_REV")
    a = compile_spec(specs[0], per_spec[0], root, check_paths=False)
    _, pa = results.pivot_report(a.report.config, read_workdir(root))
    if rev:
        params = yaml.safe_load(gitrev.show(root, rev, "params.yaml")) or {}
        prefix = f"report-{slug(a.spec.name)}-"
        sections = [k for k in params if k.startswith(prefix)]
        if not sections:
            raise UserError(f"--rev {rev}: params.yaml there has no report stage of {a.spec.name}")
        _, pb = results.pivot_report(params[sections[0]], read_git(root, rev))
        names = (f"{rev}", "now")
        pa, pb = pb, pa
    else:
        b = compile_spec(specs[1], per_spec[1], root, check_paths=False)
        _, pb = results.pivot_report(b.report.config, read_workdir(root))
        names = (a.spec.name, b.spec.name)
    scale = 100.0 if pa.percent() and (not pb.cells or pb.percent()) else 1.0
    return Comparison(results.compare(pa, pb), names, pa.metric, scale)
