"""Stage kinds: one module per kind with ``run(config, out) -> metrics``.

``run_stage`` is the only entry that DVC commands (``vjepa-exp exec``), ``vjepa-exp stage`` and SLURM
jobs call. It times the stage and publishes ``metrics.json`` and ``meta.json`` atomically after the
stage's own outputs, so a folder with a ``metrics.json`` is a finished stage.
"""

from __future__ import annotations

import copy
import importlib
import time
from pathlib import Path
from typing import Any

from vjepa.errors import UserError
from vjepa.utils.io import atomic_write_json, run_meta
from vjepa.utils.secrets import HOW, find_secret

# every stage kind, in the order data flows through them (a kind only reads earlier kinds)
KINDS = ("data", "pretrain", "extract", "probe", "stream", "report")


def load_stage_config(path: str | Path) -> dict[str, Any]:
    """Read a stage config YAML file into a plain dict."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: stage config not found")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(cfg, dict):
        raise UserError(f"{path}: a stage config must be a mapping")
    return cfg


def run_stage(
    kind: str,
    config: dict[str, Any],
    out: str | Path,
    uid: str | None = None,
    placement: dict[str, Any] | None = None,
) -> dict:
    """Run stage ``kind`` with ``config`` into folder ``out``; write metrics.json and meta.json.

    ``placement``: where and how it runs, ``{dotted config path: value}`` (sweep storage and
    workers, ...), set into the config it runs with but recorded apart in meta.json: it is not
    part of what the stage computes. A credential in either is refused before anything is
    written (credentials come from the environment: ``env:NAME``)."""
    if kind not in KINDS:
        raise UserError(f"unknown stage kind {kind!r} (expected one of {', '.join(KINDS)})")
    for section, value in (("config", config), ("placement", placement)):
        found = find_secret(value)
        if found:
            raise UserError(f"{kind} stage {section}: {found[0]}: holds {found[1]}; {HOW}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(f"vjepa.stages.{kind}")
    started = time.time()
    metrics = module.run(_placed(config, placement or {}), out)
    meta = run_meta(config, uid, started, kind=kind, placement=placement or {})
    atomic_write_json(out / "meta.json", meta)
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def _placed(config: dict[str, Any], placement: dict[str, Any]) -> dict[str, Any]:
    """``config`` with each ``placement`` value set at its dotted path (a path whose section the
    config lacks is skipped: the stage has no such setting)."""
    out = copy.deepcopy(config)
    for path, value in placement.items():
        *parents, leaf = path.split(".")
        node: Any = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node[leaf] = value
    return out
