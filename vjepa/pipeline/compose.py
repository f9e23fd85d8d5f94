"""Compose one variant's config with Hydra (group choices), then apply value overrides and check it.

Hydra's compose API picks the group files; values are set afterwards with OmegaConf so that a
value from a spec keeps its YAML type, and interpolations (``${model.img_size}``) resolve last.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from vjepa.errors import SpecError
from vjepa.eval.sweep import range_problem
from vjepa.models.sizes import PRESETS
from vjepa.pipeline import schema
from vjepa.pipeline.executors.slurm.config import RESOURCE_KEYS as _RESOURCE_KEYS
from vjepa.pipeline.schema import Invalid
from vjepa.pipeline.spec import CONF_DIR, GROUPS, SCALE, Spec, Value, display_path
from vjepa.utils import secrets
from vjepa.utils.units import parse_size


class Composer:
    """A Hydra compose session over ``conf_dir``; composes are cached by group choices."""

    def __init__(self, conf_dir: Path = CONF_DIR) -> None:
        self.conf_dir = Path(conf_dir)
        self._ctx: Any = None
        self._cache: dict[tuple, Any] = {}

    def __enter__(self) -> Composer:
        from hydra import initialize_config_dir

        self._ctx = initialize_config_dir(config_dir=str(self.conf_dir), version_base="1.3")
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)

    def _base(self, choices: dict[str, str]) -> Any:
        from hydra import compose

        key = tuple(sorted(choices.items()))
        if key not in self._cache:
            self._cache[key] = compose(
                "config", overrides=[f"{g}={o}" for g, o in sorted(choices.items())]
            )
        return self._cache[key]

    def compose(self, spec: Spec, choices: dict[str, str], values: list[Value]) -> dict[str, Any]:
        """The resolved, checked config (plain dict) of one variant."""
        from omegaconf import DictConfig, ListConfig, OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        cfg = copy.deepcopy(self._base(choices))
        OmegaConf.set_struct(cfg, False)
        for value in values:
            try:
                # a list replaces a mapping and a mapping a list (a mixture's two forms); else merge
                current = OmegaConf.select(cfg, value.key, default=None)
                merge = not (
                    isinstance(current, ListConfig) != isinstance(value.value, list | ListConfig)
                    or isinstance(current, DictConfig) != isinstance(value.value, dict | DictConfig)
                )
                OmegaConf.update(cfg, value.key, value.value, merge=merge)
            except OmegaConfBaseException as exc:
                raise spec.error(
                    value.origin, f"cannot set {value.key} ({_first_line(exc)})"
                ) from None
        try:
            resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as exc:
            raise spec.error("", f"cannot resolve the config ({_first_line(exc)})") from None
        assert isinstance(resolved, dict)
        resolved = {k: resolved[k] for k in GROUPS}
        check_secrets(spec, choices, values, resolved, self.conf_dir)
        try:
            schema.CONFIG.check(resolved, "")
            spread_default_resources(resolved["executor"], values)
            check_combinations(resolved)
        except Invalid as exc:
            raise spec.error(exc.path, exc.message + _origin_note(exc.path, values)) from None
        return resolved


def _refusal(what: str, where: str) -> str:
    """Why a credential is refused, where it came from and how to pass it instead (one line)."""
    return (
        f"holds {what} (set by {where}), which would reach tracked and cached files (params.yaml, "
        f"meta.json, logs, job files); {secrets.HOW}"
    )


def check_overrides(spec_path: str | Path, overrides: list[str], root: Path) -> None:
    """Refuse a command-line override that carries a credential, before it is parsed (a parse
    error would echo it) or recorded (.vjepa/runs, the spec registry of params.yaml)."""
    shown = display_path(Path(spec_path), root)
    for text in overrides:
        key, _, value = text.partition("=")
        key = key.strip()
        last = key.lstrip("+~").split(".")[-1]
        secret = value and secrets.secret_key(last) and not secrets.is_reference(value)
        what = f"a credential (key {last!r})" if secret else secrets.text_problem(value)
        if what:
            origin = f"the command line {secrets.mask(text)!r}"
            raise SpecError(f"{shown}: {key}: {_refusal(what, origin)}")


def _origin(path: str, choices: dict[str, str], values: list[Value], conf_dir: Path) -> str:
    """Where the value at ``path`` came from: an override or axis, the scale, or a group file."""
    import yaml

    from vjepa.pipeline.spec import flatten

    for value in reversed(values):
        if path == value.key or path.startswith((value.key + ".", value.key + "[")):
            return f"the spec's {value.key}" if value.origin == value.key else value.origin
    scale = choices.get(SCALE)
    if scale:
        data = yaml.safe_load((conf_dir / SCALE / f"{scale}.yaml").read_text()) or {}
        data.pop("defaults", None)
        for key, _ in flatten("", data) if data else ():
            key = key.lstrip(".")
            if path == key or path.startswith(key + ".") or key.startswith(path + "."):
                return f"config group {SCALE}/{scale}.yaml"
    group = path.split(".")[0]
    return f"config group {group}/{choices.get(group, '?')}.yaml"


def check_secrets(
    spec: Spec,
    choices: dict[str, str],
    values: list[Value],
    resolved: dict[str, Any],
    conf_dir: Path,
) -> None:
    """No credential in a composed config (whatever set it: a group file, the scale, the spec,
    an override or an ablation axis), and ``env:NAME`` references well formed."""
    found = secrets.find_secret(resolved)
    if found:
        path, what = found
        where = secrets.mask(_origin(path.split("[")[0], choices, values, conf_dir))
        raise spec.error(path, _refusal(what, where))
    problem = secrets.env_problem(resolved["sweep"]["storage"])
    if problem:
        raise spec.error("sweep.storage", problem)


def spread_default_resources(executor: dict[str, Any], values: list[Value]) -> None:
    """Resources precedence: the command line over the spec over the executor group, and at the
    same level a kind's own key over ``default``. So a ``resources.default.KEY`` given on the
    command line beats a kind's KEY from the spec or the group, and one in the spec beats the
    group's: ``executor.resources.default.cpus_per_task=2`` means every stage."""
    resources = executor.get("resources") or {}
    prefix = "executor.resources."
    level: dict[tuple[str, str], int] = {}  # (kind, key) -> highest level that set it (group: 0)
    for value in values:
        rank = 2 if value.origin.startswith("command line") else 1
        if value.key in ("executor", "executor.resources"):
            return  # the whole section came from one override: nothing to arbitrate
        if not value.key.startswith(prefix):
            continue
        kind, _, key = value.key[len(prefix) :].partition(".")
        if key:
            keys = {key.split(".")[0]}
        elif isinstance(value.value, dict):
            keys = set(value.value)
        else:
            keys = set(_RESOURCE_KEYS)  # the section set whole (or dropped with null)
        for k in keys:
            level[kind, k] = max(level.get((kind, k), 0), rank)
    default = resources.get("default") or {}
    for kind, section in resources.items():
        if kind == "default" or not isinstance(section, dict):
            continue
        for key in list(section):
            if key in default and level.get(("default", key), 0) > level.get((kind, key), 0):
                section[key] = default[key]


def check_executor(executor: dict[str, Any]) -> None:
    """The executor's own settings, parsed as the executor will parse them (no job is built)."""
    if executor["kind"] != "slurm":
        return
    from vjepa.errors import SpecError
    from vjepa.pipeline.executors.slurm.config import parse_slurm_config

    try:
        parse_slurm_config(executor)
    except SpecError as exc:
        path, _, message = str(exc).partition(": ")
        raise Invalid(path, message) from None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _origin_note(path: str, values: list[Value]) -> str:
    """`` (set by ...)`` when a value override from elsewhere than the spec's own key set ``path``."""
    for value in reversed(values):
        if (
            path == value.key
            or path.startswith(value.key + ".")
            or path.startswith(value.key + "[")
        ):
            return "" if value.origin == value.key else f" (set by {value.origin})"
    return ""


def _divisible(path: str, value: int, by_path: str, by: int) -> None:
    if value % by:
        raise Invalid(path, f"{value} is not divisible by {by_path} {by}")


def check_combinations(cfg: dict[str, Any]) -> None:
    """Facts that need several keys at once (geometry, data source, sweep ranges)."""
    model = cfg["model"]
    _divisible("model.img_size", model["img_size"], "model.patch_size", model["patch_size"])
    _divisible("model.num_frames", model["num_frames"], "model.tubelet_size", model["tubelet_size"])
    heads = model.get("pred_num_heads") or PRESETS[model["name"]].num_heads
    heads_of = "model.pred_num_heads" if model.get("pred_num_heads") else f"the {model['name']}"
    _divisible("model.pred_embed_dim", model["pred_embed_dim"], f"{heads_of} head count", heads)
    clip = cfg["pretrain"]["clip"]
    _divisible(
        "pretrain.clip.crop_size", clip["crop_size"], "model.patch_size", model["patch_size"]
    )
    if clip["frames_per_clip"] != model["num_frames"]:
        raise Invalid(
            "pretrain.clip.frames_per_clip",
            f"{clip['frames_per_clip']} must equal model.num_frames {model['num_frames']}",
        )
    for task, proto in cfg["eval"]["protocols"].items():
        _divisible(
            f"eval.protocols.{task}.crop_size",
            proto["crop_size"],
            "model.patch_size",
            model["patch_size"],
        )
        _divisible(
            f"eval.protocols.{task}.frames_per_clip",
            proto["frames_per_clip"],
            "model.tubelet_size",
            model["tubelet_size"],
        )
    check_executor(cfg["executor"])
    try:
        parse_size(cfg["eval"]["store_budget"])
    except ValueError as exc:
        raise Invalid("eval.store_budget", str(exc)) from None
    data = cfg["data"]
    if data["synth"] is not None and data["source"] is not None:
        raise Invalid("data", "set one of data.synth (generate) and data.source (index a dataset)")
    if data["synth"] is None and data["source"] is None and not data["datasets"]:
        raise Invalid(
            "data", "no data: set data.datasets (named datasets), data.synth or data.source"
        )
    for name, param in cfg["sweep"]["space"].items():
        problem = range_problem(param)
        if problem:
            raise Invalid(f"sweep.space.{name}", problem)
    if cfg["sweep"]["n_trials"] > 0:
        for name in cfg["sweep"]["space"]:
            if name not in cfg["probe"]:
                raise Invalid(
                    f"sweep.space.{name}",
                    f"not a probe setting{schema.suggest(name, cfg['probe'])}",
                )
