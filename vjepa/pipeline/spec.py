"""Read an experiment spec (YAML) plus command-line overrides into a checked ``Spec``.

Only spec-level facts are checked here (keys, types, group options, override syntax); the
composed configs are checked in ``compose`` and the graph-level facts in ``compiler``. Every
failure is one ``SpecError`` naming the file, the key path and what was expected.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vjepa.errors import SpecError
from vjepa.pipeline import schema
from vjepa.pipeline.schema import Invalid

GROUPS = ("data", "model", "masking", "pretrain", "eval", "probe", "sweep", "executor")
# A Hydra ``@package _global_`` group: it swaps the groups a spec chose and sets values anywhere.
SCALE = "scale"
CHOICE_GROUPS = (*GROUPS, SCALE)
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


@dataclass(frozen=True)
class Value:
    """One value override: dotted config key, value and where it came from (for messages)."""

    key: str
    value: Any
    origin: str


@dataclass(frozen=True)
class Axis:
    """One ablation axis: a config key (or a group name, which swaps the group) and its values."""

    key: str
    values: tuple[Any, ...]
    is_group: bool
    label: str  # the column name in result tables


@dataclass
class Spec:
    """A checked spec: what to compose, which variants, seeds, tasks, baselines and report."""

    name: str
    file: str  # as shown in messages (relative to the project root when inside it)
    description: str
    groups: dict[str, str]
    values: list[Value]
    seeds: list[int]
    seed_scope: str
    tasks: list[str]
    label_fractions: list[float]
    axes: list[Axis]
    baselines: dict[str, dict[str, Any]]
    report: dict[str, Any]
    overrides: list[str] = field(default_factory=list)

    def error(self, path: str, message: str) -> SpecError:
        """A SpecError naming this spec's file and ``path`` (one line, at most ~1000 chars)."""
        text = f"{self.file}: {path}: {message}" if path else f"{self.file}: {message}"
        text = " ".join(text.split("\n"))
        return SpecError(text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "...")


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The option names of config group ``group`` (its YAML files)."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def scale_choices(option: str, conf_dir: Path = CONF_DIR) -> dict[str, str]:
    """The group choices scale ``option`` swaps in (its ``override /group: option`` entries)."""
    import yaml

    data = yaml.safe_load((conf_dir / SCALE / f"{option}.yaml").read_text()) or {}
    choices = {}
    for entry in data.get("defaults") or []:
        for key, value in entry.items() if isinstance(entry, dict) else ():
            group = key.removeprefix("override").strip().lstrip("/")
            if group in GROUPS:
                choices[group] = value
    return choices


def base_choices(conf_dir: Path = CONF_DIR) -> dict[str, str]:
    """The group choices of the primary config's defaults list."""
    import yaml

    data = yaml.safe_load((conf_dir / "config.yaml").read_text())
    return {k: v for entry in data["defaults"] if isinstance(entry, dict) for k, v in entry.items()}


def display_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it, else as given."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""",
    re.X,
)


MAX_ERROR = 1000  # characters of one error line
MAX_ALIASES = 100  # a spec has no use for more; an alias bomb has billions after expansion
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


def yaml_loader() -> type:
    """A strict safe loader for specs: ``1e-4`` is a float (YAML 1.1 keeps it a string), only
    ``true``/``false`` are booleans (YAML 1.1 also reads ``on``, ``off``, ``yes``, ``no``: a key
    ``off:`` became ``False``), a duplicate key is an error (YAML keeps the last, silently
    dropping the first block), and more than ``MAX_ALIASES`` aliases are refused."""
    import yaml

    class Loader(yaml.SafeLoader):
        aliases = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_ALIASES:
                    mark = self.peek_event().start_mark
                    raise yaml.composer.ComposerError(
                        None, None, f"more than {MAX_ALIASES} aliases (refused)", mark
                    )
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, list | dict):
                    continue  # unhashable: the base constructor reports it
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first at line {seen[key].line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
            return super().construct_mapping(node, deep)

    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
    return Loader


def read_yaml(path: Path, shown: str) -> Any:
    """Parse a YAML file; a syntax error names the line."""
    import yaml

    if not path.is_file():
        raise SpecError(f"{shown}: spec file not found")
    try:
        return yaml.load(path.read_text(), Loader=yaml_loader())  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise SpecError(f"{shown}: not valid YAML{where}: {problem}") from None


def flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    """Nested mappings -> dotted leaf keys (lists and scalars are leaves)."""
    if isinstance(value, dict) and value:
        out: list[tuple[str, Any]] = []
        for key, item in value.items():
            out.extend(flatten(f"{prefix}.{key}", item))
        return out
    return [(prefix, value)]


def _parse_override(text: str) -> Any:
    """Parse one Hydra-style override; a malformed one raises SpecError naming it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    if "=" not in text:
        raise SpecError(f"override {text!r}: expected KEY=VALUE (e.g. pretrain.lr=1e-4)")
    try:
        parsed = OverridesParser.create().parse_overrides([text])[0]
    except HydraException as exc:
        first = str(exc).strip().splitlines()[0]
        raise SpecError(f"override {text!r}: cannot parse ({first})") from None
    if parsed.type != OverrideType.CHANGE:
        raise SpecError(
            f"override {text!r}: adding (+) or deleting (~) keys is not supported; use KEY=VALUE"
        )
    return parsed


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def _apply_overrides(
    raw: dict, overrides: list[str]
) -> tuple[dict[str, str], list[Value], list[Axis]]:
    """Route command-line overrides: group choices, config values, spec fields, sweeps -> axes."""
    choices: dict[str, str] = {}
    values: list[Value] = []
    axes: list[Axis] = []
    for text in overrides:
        parsed = _parse_override(text)
        key = parsed.key_or_group
        head = key.split(".")[0]
        sweep = [v for v in parsed.sweep_iterator()] if parsed.is_sweep_override() else None
        origin = f"command line {text!r}"
        if key == SCALE:
            if sweep:
                raise SpecError(f"override {text!r}: the scale cannot be swept; run each scale")
            choices[key] = str(parsed.value())
        elif head == SCALE:
            raise SpecError(f"override {text!r}: a scale is chosen whole (scale=NAME)")
        elif head in GROUPS:
            if head == "executor" and sweep:
                raise SpecError(
                    f"override {text!r}: the executor cannot be swept (it does not change results)"
                )
            if "." not in key:
                if sweep:
                    axes.append(Axis(key, tuple(sweep), True, key))
                else:
                    choices[key] = str(parsed.value())
            elif sweep:
                axes.append(Axis(key, tuple(sweep), False, key.split(".")[-1]))
            else:
                values.append(Value(key, parsed.value(), origin))
        elif head in schema.SPEC_FIELDS:
            if sweep:
                raise SpecError(
                    f"override {text!r}: {head} is a list already; write {head}=[a,b] instead of a sweep"
                )
            _set_dotted(raw, key, parsed.value())
        else:
            raise SpecError(
                f"override {text!r}: unknown key {head!r}{schema.suggest(head, CHOICE_GROUPS + schema.SPEC_FIELDS)}"
            )
    return choices, values, axes


def _check_option(spec_file: str, path: str, group: str, option: Any, conf_dir: Path) -> str:
    options = group_options(group, conf_dir)
    if not isinstance(option, str) or option not in options:
        raise SpecError(
            f"{spec_file}: {path}: unknown {group} option {option!r}{schema.suggest(str(option), options)}"
        )
    return option


def load_spec(
    path: str | Path,
    overrides: list[str] | None = None,
    root: Path | None = None,
    conf_dir: Path = CONF_DIR,
) -> Spec:
    """Read and check spec ``path`` with command-line ``overrides`` (nothing is written)."""
    path = Path(path)
    root = Path(root or Path.cwd())
    shown = display_path(path, root)
    raw = read_yaml(path, shown)
    if not isinstance(raw, dict):
        raise SpecError(f"{shown}: a spec must be a mapping of keys (name, defaults, ablate, ...)")
    raw = copy.deepcopy(raw)
    for key in raw:
        if key not in schema.SPEC_FIELDS and key not in GROUPS:
            err = schema.unknown_key("", str(key), schema.SPEC_FIELDS + GROUPS)
            raise SpecError(f"{shown}: {err}")
    if "name" not in raw:
        raise SpecError(
            f"{shown}: name: missing key (expected a name of lower-case letters, digits, '_' or '-')"
        )
    overrides = list(overrides or [])
    cli_choices, cli_values, cli_axes = _apply_overrides(raw, overrides)
    for key, default in schema.SPEC_DEFAULTS.items():
        raw.setdefault(key, copy.deepcopy(default))
    if raw["report"] is None:
        raw["report"] = {}
    spec_part = {k: v for k, v in raw.items() if k not in GROUPS}
    try:
        schema.SPEC.check(spec_part, "")
    except Invalid as exc:
        raise SpecError(f"{shown}: {exc}") from None

    # the defaults list: one group option per entry
    groups = base_choices(conf_dir)
    seen: set[str] = set()
    for i, entry in enumerate(raw["defaults"]):
        if len(entry) != 1:
            raise SpecError(
                f"{shown}: defaults[{i}]: expected one 'group: option' entry, got {entry!r}"
            )
        ((group, option),) = entry.items()
        if group not in CHOICE_GROUPS:
            raise SpecError(
                f"{shown}: defaults[{i}]: unknown config group {group!r}{schema.suggest(group, CHOICE_GROUPS)}"
            )
        if group in seen:
            raise SpecError(f"{shown}: defaults[{i}]: group {group!r} is chosen twice")
        seen.add(group)
        groups[group] = _check_option(shown, f"defaults[{i}].{group}", group, option, conf_dir)
    if SCALE in cli_choices:
        groups[SCALE] = _check_option(
            shown, f"command line {SCALE}={cli_choices[SCALE]}", SCALE, cli_choices[SCALE], conf_dir
        )
    groups.update(scale_choices(groups[SCALE], conf_dir))  # the scale beats the spec's choices
    for group, option in cli_choices.items():
        groups[group] = _check_option(
            shown, f"command line {group}={option}", group, option, conf_dir
        )

    # value overrides: the spec's group mappings, then the command line
    values: list[Value] = []
    for group in GROUPS:
        if group not in raw:
            continue
        if not isinstance(raw[group], dict):
            raise SpecError(
                f"{shown}: {group}: expected a mapping of value overrides, got {raw[group]!r}"
            )
        values.extend(Value(k, v, k) for k, v in flatten(group, raw[group]))
    values.extend(cli_values)
    for value in values:
        _check_key(shown, value.key, value.origin)

    axes = _axes(shown, raw["ablate"], conf_dir) + cli_axes
    for axis in cli_axes:
        if axis.is_group:
            for option in axis.values:
                _check_option(shown, f"command line {axis.key}", axis.key, option, conf_dir)
        else:
            _check_key(shown, axis.key, f"command line sweep {axis.key}")
    labels = [a.label for a in axes]
    if len(set(labels)) != len(labels):
        raise SpecError(
            f"{shown}: ablate: two axes share the name {next(x for x in labels if labels.count(x) > 1)!r}"
        )
    if raw["seed_scope"] == "pretrain" and any(a.key == "pretrain.seed" for a in axes):
        raise SpecError(
            f"{shown}: ablate.pretrain.seed: the seeds already set pretrain.seed (seed_scope: pretrain)"
        )

    baselines = _baselines(shown, raw["baselines"], conf_dir)
    report = {**schema.REPORT_DEFAULTS, **raw["report"]}
    allowed = list(schema.LABEL_KEYS) + labels
    for part in ("rows", "columns"):
        for key in report[part]:
            if key not in allowed:
                raise SpecError(
                    f"{shown}: report.{part}: unknown label {key!r}{schema.suggest(key, allowed)}"
                )
    if set(report["rows"]) & set(report["columns"]):
        raise SpecError(
            f"{shown}: report: {sorted(set(report['rows']) & set(report['columns']))} are both rows and columns"
        )
    return Spec(
        name=raw["name"],
        file=shown,
        description=raw["description"] or "",
        groups=groups,
        values=values,
        seeds=list(raw["seeds"]),
        seed_scope=raw["seed_scope"],
        tasks=list(raw["tasks"]),
        label_fractions=[float(f) for f in raw["label_fractions"]],
        axes=axes,
        baselines=baselines,
        report=report,
        overrides=overrides,
    )


def _check_key(shown: str, key: str, origin: str) -> None:
    """A value override must name a key the config schema knows."""
    try:
        schema.lookup(schema.CONFIG, key)
    except Invalid as exc:
        at = "" if exc.path == key or origin.endswith(exc.path) else f" (at {exc.path})"
        raise SpecError(f"{shown}: {origin}: {exc.message}{at}") from None


def _axes(shown: str, ablate: dict[str, list], conf_dir: Path) -> list[Axis]:
    axes = []
    for key, values in ablate.items():
        head = key.split(".")[0]
        if head == SCALE:
            raise SpecError(f"{shown}: ablate.{key}: the scale cannot be ablated; run each scale")
        if key in GROUPS:
            if key == "executor":
                raise SpecError(
                    f"{shown}: ablate.executor: the executor cannot be ablated (it does not change results)"
                )
            for i, option in enumerate(values):
                _check_option(shown, f"ablate.{key}[{i}]", key, option, conf_dir)
            axes.append(Axis(key, tuple(values), True, key))
        elif head in GROUPS:
            if head == "executor":
                raise SpecError(
                    f"{shown}: ablate.{key}: the executor cannot be ablated (it does not change results)"
                )
            _check_key(shown, key, f"ablate.{key}")
            axes.append(Axis(key, tuple(values), False, key.split(".")[-1]))
        elif head in schema.SPEC_FIELDS:
            raise SpecError(
                f"{shown}: ablate.{key}: {head!r} is a spec field, not a config key; list its values there"
            )
        else:
            options = list(GROUPS) + [f"{g}.x" for g in GROUPS]
            raise SpecError(
                f"{shown}: ablate.{key}: unknown config key{schema.suggest(head, options[: len(GROUPS)])}"
            )
    return axes


def _baselines(shown: str, baselines: dict[str, dict], conf_dir: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for name, entry in baselines.items():
        entry = {"encoder": "random", "path": None, "model": None, **(entry or {})}
        if entry["encoder"] == "official" and not entry["path"]:
            raise SpecError(
                f"{shown}: baselines.{name}.path: an official baseline needs a checkpoint path"
            )
        if entry["encoder"] == "random" and entry["path"]:
            raise SpecError(f"{shown}: baselines.{name}.path: a random-init baseline takes no path")
        if entry["model"] is not None:
            _check_option(shown, f"baselines.{name}.model", "model", entry["model"], conf_dir)
        out[name] = entry
    return out
