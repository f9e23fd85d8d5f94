"""Typed schemas for specs and resolved configs: small checkers that name the key path on failure.

Hand-written instead of dataclasses so that one message can say what was expected, at which key
path, with a did-you-mean for unknown keys; nothing here imports a heavy library.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vjepa.eval.modes import FEATURE_MODES, PARAM_TYPES, PRUNERS, SAMPLERS
from vjepa.models.sizes import ARCHS, POS_KINDS, PRESETS, PROBE_KINDS, ROPE_LAYOUTS
from vjepa.train.config import DTYPES as PRETRAIN_DTYPES


class Invalid(Exception):
    """One validation failure: ``path`` (dotted keys) and a message saying what was expected."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def join(path: str, key: str | int) -> str:
    """``a.b`` + ``c`` -> ``a.b.c``; list indices become ``a.b[0]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def suggest(word: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest option, or the known options when none is close."""
    options = sorted(str(o) for o in options)
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (expected one of: {', '.join(options)})" if options else ""


def unknown_key(path: str, key: str, options: Iterable[str]) -> Invalid:
    """The error for a key the schema does not know."""
    return Invalid(join(path, key), f"unknown key {key!r}{suggest(key, options)}")


SHOWN_CHARS = 80  # a value quoted in an error (an expanded alias can be megabytes)


def shown(value: Any) -> str:
    """``repr(value)``, cut to ``SHOWN_CHARS`` characters."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _got(value: Any) -> str:
    return f"got {type(value).__name__} {shown(value)}"


class Schema:
    """A checker for one value."""

    expected: str = "a value"

    def check(self, value: Any, path: str) -> None:
        """Raise ``Invalid`` when ``value`` does not fit."""

    def child(self, key: str, path: str) -> Schema:
        """The schema of ``key`` inside this value (for override key checks)."""
        raise Invalid(path, f"{self.expected} has no key {key!r}")


@dataclass
class AnyValue(Schema):
    expected: str = "any value"


@dataclass
class Bool(Schema):
    expected: str = "true or false"

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            raise Invalid(path, f"expected {self.expected}, {_got(value)}")


@dataclass
class Num(Schema):
    """An int (``integer=True``) or a float within bounds; ``lo_open`` excludes the lower bound."""

    integer: bool = False
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False

    @property
    def expected(self) -> str:  # type: ignore[override]
        word = "an integer" if self.integer else "a number"
        if self.lo is not None and self.hi is not None:
            return f"{word} in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}]"
        if self.lo is not None:
            return f"{word} {'>' if self.lo_open else '>='} {self.lo:g}"
        return word

    def check(self, value: Any, path: str) -> None:
        ok_type = isinstance(value, int) if self.integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type or math.isnan(value):
            raise Invalid(path, f"expected {self.expected}, {_got(value)}")
        low_bad = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        if low_bad or (self.hi is not None and value > self.hi):
            raise Invalid(path, f"expected {self.expected}, got {value!r}")


def Int(lo: float | None = None, hi: float | None = None) -> Num:  # noqa: N802
    return Num(integer=True, lo=lo, hi=hi)


def Float(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> Num:  # noqa: N802
    return Num(integer=False, lo=lo, hi=hi, lo_open=lo_open)


@dataclass
class Str(Schema):
    choices: Sequence[str] | None = None
    pattern: str | None = None
    hint: str = ""

    @property
    def expected(self) -> str:  # type: ignore[override]
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return self.hint or "a string"

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise Invalid(path, f"expected {self.expected}, {_got(value)}")
        if self.choices and value not in self.choices:
            raise Invalid(path, f"unknown value {value!r}{suggest(value, self.choices)}")
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise Invalid(path, f"expected {self.expected}, got {value!r}")


@dataclass
class Optional(Schema):
    inner: Schema = field(default_factory=AnyValue)

    @property
    def expected(self) -> str:  # type: ignore[override]
        return f"{self.inner.expected} or null"

    def check(self, value: Any, path: str) -> None:
        if value is not None:
            self.inner.check(value, path)

    def child(self, key: str, path: str) -> Schema:
        return self.inner.child(key, path)


@dataclass
class OneOf(Schema):
    options: Sequence[Schema] = ()

    @property
    def expected(self) -> str:  # type: ignore[override]
        return " or ".join(o.expected for o in self.options)

    def check(self, value: Any, path: str) -> None:
        deeper: list[Invalid] = []  # failures inside the value: the option its shape matched
        for option in self.options:
            try:
                option.check(value, path)
                return
            except Invalid as exc:
                if exc.path != path:
                    deeper.append(exc)
        if deeper:
            raise max(deeper, key=lambda exc: len(exc.path))
        raise Invalid(path, f"expected {self.expected}, {_got(value)}")

    def child(self, key: str, path: str) -> Schema:
        """The child schema of the first option that has ``key`` (a mapping's name, a list index)."""
        errors = []
        for option in self.options:
            try:
                return option.child(key, path)
            except Invalid as exc:
                errors.append(exc)
        raise errors[-1] if errors else Invalid(path, f"{self.expected} has no key {key!r}")


@dataclass
class ListOf(Schema):
    """A list of ``inner`` values; ``length`` fixes its size, ``unique`` forbids duplicates."""

    inner: Schema = field(default_factory=AnyValue)
    min_len: int = 0
    length: int | None = None
    unique: bool = False

    @property
    def expected(self) -> str:  # type: ignore[override]
        size = f"{self.length} " if self.length else ("a non-empty " if self.min_len else "a ")
        return f"{size}list of {self.inner.expected}".replace("a  ", "a ")

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, list | tuple):
            raise Invalid(path, f"expected {self.expected}, {_got(value)}")
        if self.length is not None and len(value) != self.length:
            raise Invalid(path, f"expected {self.length} values, got {len(value)}")
        if len(value) < self.min_len:
            raise Invalid(path, f"expected at least {self.min_len} value(s), got an empty list")
        for i, item in enumerate(value):
            self.inner.check(item, join(path, i))
        if self.unique:
            seen: list[Any] = []
            for item in value:
                if item in seen:
                    raise Invalid(path, f"duplicate value {item!r}")
                seen.append(item)

    def child(self, key: str, path: str) -> Schema:
        if not key.isdigit():
            raise Invalid(path, f"a list is indexed by numbers, got key {key!r}")
        return self.inner


def Pair(inner: Schema) -> ListOf:  # noqa: N802
    return ListOf(inner=inner, length=2)


@dataclass
class Map(Schema):
    """A mapping with known keys; ``open_keys`` lets any other key through (checked elsewhere)."""

    fields: Mapping[str, Schema] = field(default_factory=dict)
    required: bool = True
    open_keys: bool = False
    expected: str = "a mapping"

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise Invalid(path, f"expected a mapping, {_got(value)}")
        for key in value:
            if not isinstance(key, str):
                raise Invalid(path, f"keys must be strings, got {key!r}")
            if key not in self.fields and not self.open_keys:
                raise unknown_key(path, key, self.fields)
        for key, schema in self.fields.items():
            if key not in value:
                if self.required and not isinstance(schema, Optional):
                    raise Invalid(join(path, key), f"missing key (expected {schema.expected})")
                continue
            schema.check(value[key], join(path, key))

    def child(self, key: str, path: str) -> Schema:
        if key in self.fields:
            return self.fields[key]
        if self.open_keys:
            return AnyValue()
        raise unknown_key(path, key, self.fields)


@dataclass
class DictOf(Schema):
    """A mapping from free names to ``inner`` values."""

    inner: Schema = field(default_factory=AnyValue)
    key_pattern: str | None = None
    expected: str = "a mapping"

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise Invalid(path, f"expected a mapping, {_got(value)}")
        for key, item in value.items():
            if not isinstance(key, str) or (
                self.key_pattern and not re.fullmatch(self.key_pattern, key)
            ):
                raise Invalid(
                    join(path, str(key)), "expected a name of letters, digits, '_' or '-'"
                )
            self.inner.check(item, join(path, key))

    def child(self, key: str, path: str) -> Schema:
        return self.inner


def lookup(schema: Schema, dotted: str) -> Schema:
    """The schema at ``dotted`` (``a.b.0.c``); ``Invalid`` names the first unknown key."""
    path = ""
    for key in dotted.split("."):
        schema = schema.child(key, path)
        path = join(path, int(key)) if key.isdigit() else join(path, key)
    return schema


# ---------------------------------------------------------------------------------------------
# The resolved config (one variant, every group composed) and the spec file itself.

NAME = r"[a-z0-9][a-z0-9_-]*"
MODEL_NAMES = tuple(PRESETS)  # the encoder sizes (vjepa.models.sizes)
MASK_KINDS = ("multiblock", "random_tube")
METRICS = ("top1", "top5")
LABEL_KEYS = ("variant", "task", "label_fraction", "seed")

_unit = Float(0.0, 1.0)
_pos = Float(0.0, lo_open=True)
_nonneg = Float(0.0)

MASK_GENERATOR = Map(
    {
        "kind": Str(choices=MASK_KINDS),
        "num_blocks": Optional(Int(1)),
        "spatial_scale": Optional(Pair(_unit)),
        "temporal_scale": Optional(Pair(_unit)),
        "aspect_ratio": Optional(Pair(_pos)),
        "max_temporal_keep": Optional(_unit),
        "ratio": Optional(_unit),
    }
)

CLIP = Map(
    {
        "frames_per_clip": Int(1),
        "frame_step": Int(1),
        "crop_size": Int(1),
        "random_resize_scale": Pair(_pos),
        "random_resize_aspect_ratio": Pair(_pos),
        "hflip": _unit,
        "num_workers": Int(0),
    }
)

PROTOCOL = Map(
    {
        "frames_per_clip": Int(1),
        "frame_step": Int(1),
        "num_segments": Int(1),
        "num_views": Int(1),
        "crop_size": Int(1),
        "pool": Str(choices=("tokens", "mean")),
    }
)

SOURCE = Str(hint="a CSV file, a class-per-folder video tree or an ImageNet-style image folder")
SPLITS = ("train", "val", "test")
DATASET = Map(
    {
        **{split: Optional(OneOf([SOURCE, ListOf(SOURCE, min_len=1)])) for split in SPLITS},
        "num_classes": Optional(Int(1)),
    },
    required=False,
)
MIXTURE = OneOf(
    [
        ListOf(Str(pattern=NAME, hint="a dataset name"), min_len=1, unique=True),
        DictOf(Float(0.0, lo_open=True), key_pattern=NAME),
    ]
)

SWEEP_PARAM = Map(
    {
        "type": Str(choices=PARAM_TYPES),
        "low": Optional(Float()),
        "high": Optional(Float()),
        "log": Optional(Bool()),
        "choices": Optional(ListOf(min_len=1)),
    }
)

CONFIG = Map(
    {
        "data": Map(
            {
                "synth": Optional(Map(open_keys=True, expected="a mapping of SynthConfig fields")),
                "source": Optional(Str(hint="a dataset path")),
                "workers": Int(1),
                "root": Optional(Str(hint="a folder")),
                "probe": Str(choices=("full", "none")),
                "datasets": DictOf(DATASET, key_pattern=NAME),
            }
        ),
        "model": Map(
            {
                "name": Str(choices=MODEL_NAMES),
                "num_frames": Int(1),
                "img_size": Int(1),
                "patch_size": Int(1),
                "tubelet_size": Int(1),
                "uniform_power": Bool(),
                "pred_depth": Int(1),
                "pred_embed_dim": Int(1),
                # left out: V-JEPA's encoder (vjepa.models.sizes.MODEL_DEFAULTS)
                "pos": Optional(Str(choices=POS_KINDS)),
                "rope_layout": Optional(Str(choices=ROPE_LAYOUTS)),
                "arch": Optional(Str(choices=ARCHS)),
                "pred_num_heads": Optional(Int(1)),
            }
        ),
        "masking": Map(
            {
                "name": Str(pattern=NAME, hint="a name"),
                "generators": ListOf(MASK_GENERATOR, min_len=1),
            }
        ),
        "pretrain": Map(
            {
                "target": Str(choices=("feature", "pixel")),
                "seed": Int(0),
                "batch_size": Int(1),
                "epochs": Int(1),
                "iterations_per_epoch": Int(1),
                "start_lr": _nonneg,
                "lr": _pos,
                "final_lr": _nonneg,
                "warmup_epochs": _nonneg,
                "ipe_scale": _pos,
                "weight_decay": _nonneg,
                "final_weight_decay": _nonneg,
                "ema": Pair(_unit),
                "clip_grad": Optional(_pos),
                "accumulation_steps": Int(1),
                "dtype": Str(choices=PRETRAIN_DTYPES),
                "compile": Bool(),
                "checkpoint_every": Int(1),
                "log_every": Int(1),
                "max_loss": _pos,
                "clip": CLIP,
                "data": Map(
                    {
                        "split": Str(),
                        "tasks": Optional(ListOf(Str(), min_len=1)),
                        "datasets": Optional(MIXTURE),
                    }
                ),
            }
        ),
        "eval": Map(
            {
                "train_split": Str(),
                "eval_split": Str(),
                "val_fraction": Float(0.0, 0.9),
                "dtype": Str(choices=("float32", "bfloat16", "float16")),
                "batch_size": OneOf([Str(choices=("auto",)), Int(1)]),
                "protocols": DictOf(PROTOCOL, key_pattern=NAME),
                "default_protocol": PROTOCOL,
                "features": Str(choices=FEATURE_MODES),
                "store_budget": OneOf(
                    [Int(0), Str(hint="a size like 200GB or a share of the free disk like 50%")]
                ),
            }
        ),
        "probe": Map(
            {
                "kind": Str(choices=PROBE_KINDS),
                "num_heads": Optional(Int(1)),
                "depth": Int(1),
                "lr": _pos,
                "weight_decay": _nonneg,
                "epochs": Int(1),
                "batch_size": Int(1),
                "warmup_epochs": _nonneg,
                "clip_grad": Optional(_pos),
                "min_steps": Int(0),
                # K optimiser settings trained together on one pass (chosen on validation)
                "heads": Optional(
                    OneOf(
                        [
                            # a key left out takes probe.lr / probe.weight_decay
                            ListOf(
                                Map({"lr": _pos, "weight_decay": _nonneg}, required=False),
                                min_len=1,
                            ),
                            Map(
                                {
                                    "lr": ListOf(_pos, min_len=1, unique=True),
                                    "weight_decay": ListOf(_nonneg, min_len=1, unique=True),
                                },
                                required=False,
                            ),
                        ]
                    )
                ),
            }
        ),
        "sweep": Map(
            {
                "n_trials": Int(0),
                "sampler": Str(choices=SAMPLERS),
                "pruner": Str(choices=PRUNERS),
                "workers": Int(1),
                "storage": Optional(
                    Str(hint="a journal file path, a database URL without password, or env:NAME")
                ),
                "space": DictOf(SWEEP_PARAM),
                # streamed features: trials trained together as heads of one pass (None: 16)
                "heads_per_pass": Optional(Int(1)),
            }
        ),
        "executor": Map(
            {
                "kind": Str(choices=("local", "slurm")),
                "jobs": Int(1),
                "folder": Optional(Str()),
                "resources": DictOf(Optional(Map(open_keys=True))),  # null: the kind takes default
            },
            open_keys=True,
        ),
    }
)

SPEC_FIELDS = (
    "name",
    "description",
    "defaults",
    "seeds",
    "seed_scope",
    "tasks",
    "label_fractions",
    "ablate",
    "baselines",
    "report",
)

SPEC = Map(
    {
        "name": Str(pattern=NAME, hint="a name of lower-case letters, digits, '_' or '-'"),
        "description": Optional(Str()),
        "defaults": Optional(ListOf(DictOf(Str()))),
        "seeds": ListOf(Int(0), min_len=1, unique=True),
        "seed_scope": Str(choices=("pretrain", "probe")),
        "tasks": ListOf(Str(pattern=NAME, hint="a task name"), min_len=1, unique=True),
        "label_fractions": ListOf(Float(0.0, 1.0, lo_open=True), min_len=1, unique=True),
        "ablate": DictOf(ListOf(OneOf([Str(), Num(), Bool()]), min_len=1, unique=True)),
        "baselines": DictOf(
            Map(
                {
                    "encoder": Str(choices=("random", "official")),
                    "path": Optional(Str(hint="a checkpoint path")),
                    "model": Optional(Str(hint="a model option")),
                },
                required=False,
            ),
            key_pattern=NAME,
        ),
        "report": Map(
            {
                "rows": ListOf(Str(), min_len=1, unique=True),
                "columns": ListOf(Str(), min_len=1, unique=True),
                "metric": Str(choices=METRICS),
                "baseline": Optional(Str()),
            },
            required=False,
        ),
    },
    required=False,
    open_keys=True,  # group names carry value overrides; checked against CONFIG
)

SPEC_DEFAULTS: dict[str, Any] = {
    "description": "",
    "defaults": [],
    "seeds": [0],
    "seed_scope": "pretrain",
    "tasks": ["motion", "appearance"],
    "label_fractions": [1.0],
    "ablate": {},
    "baselines": {},
    "report": {},
}
REPORT_DEFAULTS: dict[str, Any] = {
    "rows": ["variant"],
    "columns": ["task"],
    "metric": "top1",
    "baseline": None,
}
