"""Spec -> stage graph: data -> pretrain -> extract -> probe (or stream) -> report, per variant and seed.

Every stage config here is exactly the params.yaml section its stage receives (the shapes of
docs/architecture.md), less its placement (vjepa.pipeline.placement: workers, the sweep storage),
which stays out of the uid; stages dedupe by uid, so variants and specs share what they have in
common.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vjepa.data.synth import TASKS as SYNTH_TASKS
from vjepa.data.synth import SynthConfig
from vjepa.errors import DataError
from vjepa.eval.modes import HEAD_KEYS
from vjepa.pipeline import placement, schema
from vjepa.pipeline.compose import Composer, check_overrides
from vjepa.pipeline.datasets import CACHE as DATASET_CACHE
from vjepa.pipeline.datasets import Dataset, check, missing_sources, resolve, split_clips
from vjepa.pipeline.evalplan import (
    DTYPE_BYTES,
    PUBLISHED_CLIPS,
    EvalChoice,
    StoreEstimate,
    choose,
    row_values,
)
from vjepa.pipeline.graph import Graph, Stage, slug
from vjepa.pipeline.schema import Invalid
from vjepa.pipeline.spec import Spec, Value, load_spec
from vjepa.utils.io import is_torch_file
from vjepa.utils.secrets import HOW, env_name, find_secret
from vjepa.utils.units import parse_size

NAME_MAX = 255  # bytes of one file name (ext4, XFS, Lustre, GPFS)


def _eval_split(wanted: str, splits: dict[str, Any]) -> str:
    """``auto``: a dataset's test split when it has one, else its val split."""
    if wanted != "auto":
        return wanted
    return "test" if "test" in splits else "val"


@dataclass
class Compiled:
    """One compiled spec: its stages (shared ones included), the report stage, the executor and
    each stage's placement (the settings kept out of its params and uid: vjepa.pipeline.placement)."""

    spec: Spec
    graph: Graph
    report: Stage
    executor: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    evaluation: list[EvalChoice] = field(default_factory=list)  # one per task and model
    placement: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage name -> placement

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
    check_overrides(path, overrides or [], root)  # before anything could echo a credential
    spec = load_spec(path, overrides, root)
    for axis in spec.axes:
        if not axis.is_group and placement.is_placement(axis.key):
            raise spec.error(
                f"ablate.{axis.key}",
                "a placement setting cannot be ablated: where or how a stage runs never changes "
                "its result (docs/specs.md, identity and placement)",
            )
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
    for stage in builder.graph.ordered():
        found = find_secret(stage.config)
        if found:  # from a spec field that no composed config holds (a baseline's path)
            raise spec.error(
                "", f"stage {stage.kind}-{stage.label[:40]}: {found[0]}: holds {found[1]}; {HOW}"
            )
        name = Path(stage.metrics_file).name  # the longest file name a stage writes
        if len(name.encode()) > NAME_MAX:
            raise spec.error(
                "",
                f"stage {stage.kind}-{stage.label[:40]}...: its file name would be "
                f"{len(name.encode())} bytes, over the file system's {NAME_MAX}; shorten the "
                "names it is made of (variant values, dataset names, baseline file names)",
            )
    evaluation = list(builder.choices.values())
    placements = {n: p for n in builder.graph.stages if (p := builder.placement.get(n))}
    for name, where in placements.items():
        var = env_name(where.get("sweep.storage"))
        if (
            var
            and not os.environ.get(var)
            and builder.graph.stages[name].config["sweep"]["n_trials"]
        ):
            warning = (
                f"{spec.file}: sweep.storage: env:{var}: {var} is not set here; the sweeps "
                "read it where their stages run (export it there)"
            )
            if warning not in builder.warnings:
                builder.warnings.append(warning)
    return Compiled(
        spec,
        builder.graph,
        report,
        base["executor"],
        builder.warnings,
        evaluation,
        placements,
    )


class _Builder:
    """Adds the stages of one spec to a graph, checking graph-level facts on the way."""

    def __init__(self, spec: Spec, root: Path, check_paths: bool) -> None:
        self.spec, self.root, self.check_paths = spec, root, check_paths
        self.graph = Graph()
        self.probes: list[dict[str, Any]] = []
        self.variants: list[str] = []
        self.warnings: list[str] = []
        self.composer: Composer | None = None
        self.checked: set[str] = set()  # datasets whose sources were read already
        self.choices: dict[tuple[str, str, str], EvalChoice] = {}  # (task, model, mode)
        self.placement: dict[str, dict[str, Any]] = {}  # stage name -> its placement

    def _add(
        self,
        kind: str,
        label: str,
        config: dict[str, Any],
        inputs: tuple[Stage, ...] = (),
        persist: bool = False,
    ) -> Stage:
        """Add a stage whose params (and uid) are ``config`` less its placement keys."""
        identity, where = placement.split(kind, config)
        stage = self.graph.add(Stage(kind, label, identity, inputs, persist=persist))
        self.placement.setdefault(stage.name, where)
        return stage

    def _path(self, key: str, value: str, hint: str = "", checkpoint: bool = False) -> None:
        """A file the stages will read must exist (a warning when checks are deferred); a
        ``checkpoint`` must be a file that ``torch.load`` can read."""
        path = Path(value) if Path(value).is_absolute() else self.root / value
        if path.exists() and checkpoint and not is_torch_file(path):
            what = "a directory" if path.is_dir() else "not a torch checkpoint (torch.save file)"
            raise self.spec.error(key, f"{value} is {what}")
        if path.exists():
            return
        if self.check_paths:
            raise self.spec.error(
                key,
                f"file not found: {value} ({hint}use --no-check-paths to compile for another "
                "machine)",
            )
        warning = f"{self.spec.file}: {key}: file not found: {value} (not checked)"
        if warning not in self.warnings:
            self.warnings.append(warning)

    def _legacy_data(self, cfg: dict[str, Any]) -> Stage | None:
        """The stage of ``data.synth`` or ``data.source`` (one index for its tasks), if set."""
        data = cfg["data"]
        config = {key: data[key] for key in ("synth", "source", "workers")}
        if data["source"] is not None:
            self._path("data.source", data["source"])
            path = self.root / data["source"]
            if self.check_paths and path.exists():  # a CSV of `path label` lines or a class tree
                from vjepa.data.sources import inspect_source

                try:
                    inspect_source(path, cache_dir=self.root / DATASET_CACHE)
                except DataError as exc:
                    raise self.spec.error("data.source", str(exc)) from None
            return self._add("data", slug(Path(data["source"]).stem), config)
        if data["synth"] is not None:
            return self._add("data", "synth", config)
        return None

    def _datasets(self, cfg: dict[str, Any]) -> dict[str, Dataset]:
        try:
            return resolve(cfg["data"], self.root)
        except Invalid as exc:
            raise self.spec.error(exc.path, exc.message) from None

    def _dataset_data(self, cfg: dict[str, Any], dataset: Dataset) -> Stage:
        """The data stage of one named dataset, its sources checked first."""
        missing = missing_sources(dataset, self.root)
        for key, source in missing:
            self._path(key, source, "set data.root=DIR to where the datasets live, or ")
        if self.check_paths and dataset.name not in self.checked:
            try:
                check(dataset, self.root)
            except Invalid as exc:
                raise self.spec.error(exc.path, exc.message) from None
            self.checked.add(dataset.name)
        config = dataset.stage_config(cfg["data"])
        # persist: a killed index build keeps its journal of probed chunks and resumes from it
        return self._add("data", slug(dataset.name), config, persist=True)

    def _task_data(self, cfg: dict[str, Any]) -> dict[str, tuple[Stage, str, dict[str, Any]]]:
        """task -> (its data stage, its evaluation split, its protocol); checks every task (and
        remembers the named datasets, whose clips a store estimate counts)."""
        ev = cfg["eval"]
        datasets = self._datasets(cfg)
        legacy = None
        out = {}
        for i, task in enumerate(self.spec.tasks):
            protocol = ev["protocols"].get(task, ev["default_protocol"])
            if task in datasets:
                dataset = datasets[task]
                split = _eval_split(ev["eval_split"], dataset.splits)
                for key, wanted in (("train_split", ev["train_split"]), ("eval_split", split)):
                    if wanted not in dataset.splits:
                        raise self.spec.error(
                            f"tasks[{i}]",
                            f"dataset {task!r} has no {wanted!r} split (eval.{key}; it has "
                            f"{', '.join(dataset.splits)})",
                        )
                out[task] = (self._dataset_data(cfg, dataset), split, protocol)
                continue
            legacy = legacy or self._legacy_data(cfg)
            known = list(datasets) + (list(SYNTH_TASKS) if cfg["data"]["synth"] else [])
            if legacy is None or (cfg["data"]["synth"] is not None and task not in SYNTH_TASKS):
                what = "a dataset in data.datasets" + (
                    " or a task of the synthetic benchmark" if cfg["data"]["synth"] else ""
                )
                raise self.spec.error(
                    f"tasks[{i}]", f"{task!r} is not {what}{schema.suggest(task, known)}"
                )
            split = "test" if ev["eval_split"] == "auto" else ev["eval_split"]
            out[task] = (legacy, split, protocol)
        return out

    def _pretrain_data(self, cfg: dict[str, Any]) -> tuple[dict[str, Any], tuple[Stage, ...]]:
        """The pretrain stage's ``data`` section and its data stages: one index, or a mixture."""
        wanted = cfg["pretrain"]["data"].get("datasets")
        base = {k: v for k, v in cfg["pretrain"]["data"].items() if k != "datasets"}
        legacy = self._legacy_data(cfg) if wanted is None else None
        if legacy is not None:
            return {"index": f"{legacy.out}/index.parquet", **base}, (legacy,)
        datasets = self._datasets(cfg)
        split = base["split"]
        if wanted is None:  # every dataset with that split, concatenated
            wanted = [name for name, ds in datasets.items() if split in ds.splits]
            if not wanted:
                raise self.spec.error(
                    "pretrain.data.datasets",
                    f"no dataset has a {split!r} split to pretrain on (data.datasets)",
                )
        weights = wanted if isinstance(wanted, dict) else dict.fromkeys(wanted)
        mixture, stages = [], []
        for name, weight in weights.items():
            where = f"pretrain.data.datasets.{name}"
            if name not in datasets:
                raise self.spec.error(
                    where,
                    f"no dataset {name!r} in data.datasets{schema.suggest(name, datasets)}",
                )
            if split not in datasets[name].splits:
                raise self.spec.error(where, f"dataset {name!r} has no {split!r} split")
            stage = self._dataset_data(cfg, datasets[name])
            stages.append(stage)
            mixture.append({"index": f"{stage.out}/index.parquet", "task": name, "weight": weight})
        return {"mixture": mixture, "split": split}, tuple(stages)

    def add_variant(self, cfg: dict[str, Any], variant: str, labels: dict[str, Any]) -> None:
        tasks = self._task_data(cfg)
        self.variants.append(variant)
        pre_data, data_stages = self._pretrain_data(cfg)
        for seed in self.spec.seeds:
            pre = {k: v for k, v in cfg["pretrain"].items() if k not in ("clip", "data")}
            if self.spec.seed_scope == "pretrain":
                pre["seed"] = seed
            config = {
                "data": pre_data,
                "clip": cfg["pretrain"]["clip"],
                "model": cfg["model"],
                "masking": cfg["masking"],
                "pretrain": pre,
            }
            label = slug(
                cfg["model"]["name"], cfg["masking"]["name"], pre["target"], f"s{pre['seed']}"
            )
            pretrain = self._add("pretrain", label, config, data_stages, persist=True)
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
            self._evaluate(cfg, tasks, encoder, seed, {"variant": variant, **labels})

    def add_baseline(
        self, cfg: dict[str, Any], name: str, baseline: dict[str, Any], labels: dict[str, Any]
    ) -> None:
        tasks = self._task_data(cfg)
        for seed in self.spec.seeds:
            if baseline["encoder"] == "random":
                enc_seed = seed if self.spec.seed_scope == "pretrain" else 0
                encoder = _Encoder(
                    {"source": "random", "path": None, "which": "target_encoder", "seed": enc_seed},
                    slug("random", cfg["model"]["name"], f"s{enc_seed}"),
                    (),
                )
            else:
                self._path(f"baselines.{name}.path", baseline["path"], checkpoint=True)
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
            self._evaluate(cfg, tasks, encoder, seed, {"variant": name, **labels})

    def _evaluate(
        self,
        cfg: dict[str, Any],
        tasks: dict[str, tuple[Stage, str, dict[str, Any]]],
        encoder: _Encoder,
        seed: int,
        labels: dict[str, Any],
    ) -> None:
        ev = cfg["eval"]
        for task in self.spec.tasks:
            data, eval_split, protocol = tasks[task]
            splits = (ev["train_split"], eval_split)
            extracts = {}
            for split in splits:
                config = {
                    "encoder": encoder.config,
                    "model": cfg["model"],
                    "data": {"index": f"{data.out}/index.parquet", "task": task, "split": split},
                    "protocol": protocol,
                    "dtype": ev["dtype"],
                    "batch_size": ev["batch_size"],
                }
                num_classes = data.config.get("num_classes")
                if num_classes is not None:
                    config["data"]["num_classes"] = num_classes
                label = slug(encoder.label, task, split)
                extracts[split] = Stage("extract", label, config, (data, *encoder.inputs))
            mode = self._choose(cfg, task, protocol, splits, tuple(extracts.values()))
            if mode == "store":
                train, test = (self.graph.add(extracts[split]) for split in splits)
                features = {
                    "features": {"train": f"{train.out}/features", "eval": f"{test.out}/features"}
                }
                inputs: tuple[Stage, ...] = (train, test)
            else:
                data_cfg = extracts[ev["train_split"]].config["data"]
                stream_data = {k: v for k, v in data_cfg.items() if k != "split"}
                stream_data.update(train=ev["train_split"], eval=eval_split)
                features = {
                    "stream": {
                        **{k: extracts[eval_split].config[k] for k in ("encoder", "model")},
                        "data": stream_data,
                        **{
                            k: extracts[eval_split].config[k]
                            for k in ("protocol", "dtype", "batch_size")
                        },
                    }
                }
                inputs = (data, *encoder.inputs)
            sweep = {k: v for k, v in cfg["sweep"].items() if k != "heads_per_pass" or v}
            for fraction in self.spec.label_fractions:
                config = {
                    **features,
                    "task": task,
                    # no heads: the single probe, with the params (and uid) it always had
                    "probe": {k: v for k, v in cfg["probe"].items() if k != "heads" or v},
                    "label_fraction": fraction,
                    "split_seed": seed,
                    "val_fraction": ev["val_fraction"],
                    "seed": seed,
                    "sweep": sweep,
                }
                pct = f"f{fraction * 100:g}".replace(".", "p")
                label = slug(encoder.label, task, cfg["probe"]["kind"], pct, f"s{seed}")
                # persist: a sweep's study, a streamed probe's resume state survive a kill
                persist = cfg["sweep"]["n_trials"] > 0 or mode == "stream"
                kind = "probe" if mode == "store" else "stream"
                probe = self._add(kind, label, config, inputs, persist=persist)
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

    def _clips(self, cfg: dict[str, Any], task: str, split: str) -> tuple[int | None, str]:
        """Clips of one task's split, for the store estimate (None when it cannot be told)."""
        datasets = self._datasets(cfg)
        if task in datasets:
            if split not in datasets[task].splits:
                return None, f"no {split!r} split"
            return split_clips(datasets[task], split, self.root, PUBLISHED_CLIPS)
        synth = cfg["data"]["synth"]
        if synth is not None:
            try:
                sc = SynthConfig.from_dict(synth)
            except DataError:  # the data stage reports a bad synthetic config
                return None, "synthetic config not readable"
            total, paired = (
                (sc.images, False) if task == "image" else (sc.videos, sc.time_reversed_pairs)
            )
            return sc.split_counts(total, paired)[split], "synthetic config"
        return None, "data.source is not counted"

    def _choose(
        self,
        cfg: dict[str, Any],
        task: str,
        protocol: dict[str, Any],
        splits: tuple[str, str],
        extracts: tuple[Stage, ...],
    ) -> str:
        """``store`` or ``stream`` for one task under one encoder; records the estimate."""
        ev = cfg["eval"]
        values = row_values(cfg["model"], protocol)
        stores = tuple(
            StoreEstimate(split, *self._clips(cfg, task, split), values, DTYPE_BYTES[ev["dtype"]])
            for split in dict.fromkeys(splits)
        )
        extracted = all(
            (self.root / s.out / "features" / "manifest.json").is_file() for s in extracts
        )
        budget = parse_size(ev["store_budget"])  # checked when the config was composed
        mode, why = choose(ev["features"], stores, budget, self.root, extracted)
        if mode == "stream" and cfg["sweep"]["n_trials"] > 0:
            for name in cfg["sweep"]["space"]:
                if name not in HEAD_KEYS:
                    raise self.spec.error(
                        f"sweep.space.{name}",
                        f"task {task!r} streams its features ({why}): a streamed sweep trains "
                        f"its trials as heads of one pass, which differ only in "
                        f"{' and '.join(HEAD_KEYS)}",
                    )
        key = (task, cfg["model"]["name"], mode)
        self.choices.setdefault(key, EvalChoice(task, cfg["model"]["name"], mode, why, stores))
        return mode

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
        return self._add("report", slug(self.spec.name), config, inputs)
