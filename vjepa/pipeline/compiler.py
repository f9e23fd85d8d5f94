"""Spec -> stage graph: data -> pretrain -> extract -> probe -> report, one branch per variant and seed.

Every stage config here is exactly the params.yaml section its stage receives (the shapes of
docs/architecture.md); stages dedupe by uid, so variants and specs share what they have in common.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vjepa.pipeline import schema
from vjepa.pipeline.compose import Composer
from vjepa.pipeline.graph import Graph, Stage, slug
from vjepa.pipeline.spec import Spec, Value, load_spec


@dataclass
class Compiled:
    """One compiled spec: its stages (shared ones included), the report stage and the executor."""

    spec: Spec
    graph: Graph
    report: Stage
    executor: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def stages(self) -> list[Stage]:
        return self.graph.ordered()


@dataclass
class _Encoder:
    config: dict[str, Any]
    label: str
    inputs: tuple[Stage, ...]


def compile_spec(
    path: str | Path,
    overrides: list[str] | None = None,
    root: Path | None = None,
    check_paths: bool = True,
) -> Compiled:
    """Check spec ``path`` (+ overrides) and build its stage graph; nothing is written."""
    root = Path(root or Path.cwd())
    spec = load_spec(path, overrides, root)
    builder = _Builder(spec, root, check_paths)
    with Composer() as composer:
        builder.composer = composer
        base = composer.compose(spec, spec.groups, spec.values)
        for combo in itertools.product(*[axis.values for axis in spec.axes]):
            choices, values = dict(spec.groups), list(spec.values)
            for axis, value in zip(spec.axes, combo, strict=True):
                if axis.is_group:
                    choices[axis.key] = value
                else:
                    values.append(Value(axis.key, value, f"ablate.{axis.key}"))
            cfg = composer.compose(spec, choices, values)
            labels = {axis.label: value for axis, value in zip(spec.axes, combo, strict=True)}
            variant = "/".join(str(v) for v in combo) if combo else "vjepa"
            builder.add_variant(cfg, variant, labels)
        for name, baseline in spec.baselines.items():
            if name in builder.variants:
                raise spec.error(f"baselines.{name}", f"the name clashes with the variant {name!r}")
            choices = dict(spec.groups)
            if baseline["model"]:
                choices["model"] = baseline["model"]
            cfg = composer.compose(spec, choices, spec.values)
            builder.add_baseline(cfg, name, baseline, {axis.label: name for axis in spec.axes})
    report = builder.add_report()
    return Compiled(spec, builder.graph, report, base["executor"], builder.warnings)


class _Builder:
    """Adds the stages of one spec to a graph, checking graph-level facts on the way."""

    def __init__(self, spec: Spec, root: Path, check_paths: bool) -> None:
        self.spec, self.root, self.check_paths = spec, root, check_paths
        self.graph = Graph()
        self.probes: list[dict[str, Any]] = []
        self.variants: list[str] = []
        self.warnings: list[str] = []
        self.composer: Composer | None = None

    def _path(self, key: str, value: str) -> None:
        """A file the stages will read must exist (a warning when checks are deferred)."""
        path = Path(value) if Path(value).is_absolute() else self.root / value
        if path.exists():
            return
        if self.check_paths:
            raise self.spec.error(
                key,
                f"file not found: {value} (use --no-check-paths to compile for another machine)",
            )
        warning = f"{self.spec.file}: {key}: file not found: {value} (not checked)"
        if warning not in self.warnings:
            self.warnings.append(warning)

    def _data(self, cfg: dict[str, Any]) -> Stage:
        data = cfg["data"]
        if data["source"] is not None:
            self._path("data.source", data["source"])
            label = slug(Path(data["source"]).stem)
        else:
            label = "synth"
        return self.graph.add(Stage("data", label, data))

    def _check_tasks(self, cfg: dict[str, Any]) -> None:
        protocols = cfg["eval"]["protocols"]
        for i, task in enumerate(self.spec.tasks):
            if task not in protocols:
                raise self.spec.error(
                    f"tasks[{i}]",
                    f"no evaluation protocol for task {task!r} in eval"
                    f"{schema.suggest(task, protocols)}",
                )

    def add_variant(self, cfg: dict[str, Any], variant: str, labels: dict[str, Any]) -> None:
        self._check_tasks(cfg)
        self.variants.append(variant)
        data = self._data(cfg)
        for seed in self.spec.seeds:
            pre = {k: v for k, v in cfg["pretrain"].items() if k not in ("clip", "data")}
            if self.spec.seed_scope == "pretrain":
                pre["seed"] = seed
            config = {
                "data": {"index": f"{data.out}/index.parquet", **cfg["pretrain"]["data"]},
                "clip": cfg["pretrain"]["clip"],
                "model": cfg["model"],
                "masking": cfg["masking"],
                "pretrain": pre,
            }
            label = slug(
                cfg["model"]["name"], cfg["masking"]["name"], pre["target"], f"s{pre['seed']}"
            )
            pretrain = self.graph.add(Stage("pretrain", label, config, (data,), persist=True))
            encoder = _Encoder(
                {
                    "source": "checkpoint",
                    "path": f"{pretrain.out}/checkpoint.pt",
                    "which": "target_encoder",
                    "seed": 0,
                },
                label,
                (pretrain,),
            )
            self._evaluate(cfg, data, encoder, seed, {"variant": variant, **labels})

    def add_baseline(
        self, cfg: dict[str, Any], name: str, baseline: dict[str, Any], labels: dict[str, Any]
    ) -> None:
        self._check_tasks(cfg)
        data = self._data(cfg)
        for seed in self.spec.seeds:
            if baseline["encoder"] == "random":
                enc_seed = seed if self.spec.seed_scope == "pretrain" else 0
                encoder = _Encoder(
                    {"source": "random", "path": None, "which": "target_encoder", "seed": enc_seed},
                    slug("random", cfg["model"]["name"], f"s{enc_seed}"),
                    (),
                )
            else:
                self._path(f"baselines.{name}.path", baseline["path"])
                encoder = _Encoder(
                    {
                        "source": "official",
                        "path": baseline["path"],
                        "which": "target_encoder",
                        "seed": 0,
                    },
                    slug("official", Path(baseline["path"]).stem),
                    (),
                )
            self._evaluate(cfg, data, encoder, seed, {"variant": name, **labels})

    def _evaluate(
        self, cfg: dict[str, Any], data: Stage, encoder: _Encoder, seed: int, labels: dict[str, Any]
    ) -> None:
        ev = cfg["eval"]
        for task in self.spec.tasks:
            extracts = {}
            for split in (ev["train_split"], ev["eval_split"]):
                config = {
                    "encoder": encoder.config,
                    "model": cfg["model"],
                    "data": {"index": f"{data.out}/index.parquet", "task": task, "split": split},
                    "protocol": ev["protocols"][task],
                    "dtype": ev["dtype"],
                    "batch_size": ev["batch_size"],
                }
                label = slug(encoder.label, task, split)
                extracts[split] = self.graph.add(
                    Stage("extract", label, config, (data, *encoder.inputs))
                )
            train, test = extracts[ev["train_split"]], extracts[ev["eval_split"]]
            for fraction in self.spec.label_fractions:
                config = {
                    "features": {"train": f"{train.out}/features", "eval": f"{test.out}/features"},
                    "task": task,
                    "probe": cfg["probe"],
                    "label_fraction": fraction,
                    "split_seed": seed,
                    "val_fraction": ev["val_fraction"],
                    "seed": seed,
                    "sweep": cfg["sweep"],
                }
                pct = f"f{fraction * 100:g}".replace(".", "p")
                label = slug(encoder.label, task, cfg["probe"]["kind"], pct, f"s{seed}")
                persist = cfg["sweep"]["n_trials"] > 0
                probe = self.graph.add(
                    Stage("probe", label, config, (train, test), persist=persist)
                )
                self.probes.append(
                    {
                        "stage": probe,
                        "labels": {
                            **labels,
                            "task": task,
                            "label_fraction": fraction,
                            "seed": seed,
                        },
                    }
                )

    def add_report(self) -> Stage:
        report = self.spec.report
        first = report["rows"][0]
        if report["baseline"] is not None:
            known = sorted({str(p["labels"].get(first)) for p in self.probes})
            if str(report["baseline"]) not in known:
                raise self.spec.error(
                    "report.baseline",
                    f"no row has {first}={report['baseline']!r}"
                    f"{schema.suggest(str(report['baseline']), known)}",
                )
        probes = sorted(
            ({"dir": p["stage"].out, "labels": p["labels"]} for p in self.probes),
            key=lambda p: (p["dir"], sorted(p["labels"].items(), key=str)),
        )
        inputs = tuple(
            sorted(
                {p["stage"].name: p["stage"] for p in self.probes}.values(), key=lambda s: s.name
            )
        )
        config = {"name": self.spec.name, "probes": probes, "report": dict(report)}
        return self.graph.add(Stage("report", slug(self.spec.name), config, inputs))
