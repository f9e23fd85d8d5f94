"""Stages with content-addressed uids, and the small graph operations the runner needs.

A stage's uid hashes its kind, its resolved config (input paths included) and its inputs' uids, so
a stage that two specs need is one stage, and changing any default makes a new one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vjepa.stages import KINDS

UID_LEN = 10
_NAME_RE = re.compile(rf"^(?P<kind>[a-z]+)-(?P<label>.+)-(?P<uid>[0-9a-f]{{{UID_LEN}}})$")


def canonical(obj: Any) -> str:
    """Canonical JSON: sorted keys, no spaces (the bytes a uid hashes)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def make_uid(kind: str, config: Mapping[str, Any], inputs: Iterable[str]) -> str:
    """sha256 of the canonical (kind, config, input uids), 10 hex characters."""
    body = canonical({"kind": kind, "config": config, "inputs": sorted(inputs)})
    return hashlib.sha256(body.encode()).hexdigest()[:UID_LEN]


def slug(*parts: Any) -> str:
    """A readable name: parts joined by '-', each reduced to [a-z0-9_]."""
    out = []
    for part in parts:
        text = re.sub(r"[^a-z0-9_]+", "_", str(part).lower()).strip("_")
        out.append(text or "x")
    return "-".join(out)


@dataclass(eq=False)
class Stage:
    """One node: kind, readable label, its params section (config) and its input stages' uids."""

    kind: str
    label: str
    config: dict[str, Any]
    inputs: tuple[Stage, ...] = ()
    persist: bool = False
    uid: str = field(init=False)

    def __post_init__(self) -> None:
        self.uid = make_uid(self.kind, self.config, [s.uid for s in self.inputs])

    @property
    def name(self) -> str:
        """The dvc.yaml stage name and params.yaml section: ``<kind>-<label>-<uid>``."""
        return f"{self.kind}-{self.label}-{self.uid}"

    @property
    def out(self) -> str:
        """The stage folder, relative to the project root."""
        return out_dir(self.name)

    @property
    def metrics_file(self) -> str:
        """The git-tracked copy of the stage's metrics.json (a DVC metrics file, not cached)."""
        return metrics_path(self.name)


def parse_name(name: str) -> tuple[str, str, str]:
    """``<kind>-<label>-<uid>`` -> (kind, label, uid); ValueError when it is not a stage name."""
    match = _NAME_RE.match(name)
    if not match or match["kind"] not in KINDS:
        raise ValueError(f"{name!r} is not a pipeline stage name (<kind>-<label>-<uid>)")
    return match["kind"], match["label"], match["uid"]


def out_dir(name: str) -> str:
    kind, label, uid = parse_name(name)
    return f"runs/{kind}/{label}-{uid}"


def metrics_path(name: str) -> str:
    kind, label, uid = parse_name(name)
    return f"metrics/{kind}/{label}-{uid}.json"


class Graph:
    """Stages by name; adding a stage that exists already keeps the first (same content)."""

    def __init__(self) -> None:
        self.stages: dict[str, Stage] = {}

    def add(self, stage: Stage) -> Stage:
        return self.stages.setdefault(stage.name, stage)

    def ordered(self) -> list[Stage]:
        """Stages in a deterministic topological order (kind order, then name)."""
        return sorted(self.stages.values(), key=lambda s: (KINDS.index(s.kind), s.name))


def descendants(stages: Iterable[Stage], roots: set[str]) -> set[str]:
    """``roots`` plus every stage downstream of them."""
    stages = sorted(stages, key=lambda s: KINDS.index(s.kind))
    found = set(roots)
    for stage in stages:  # kinds only point forward, so one pass in kind order suffices
        if any(i.name in found for i in stage.inputs):
            found.add(stage.name)
    return found
