"""Credentials stay out of pipeline files: find them in configs, mask them for display, and resolve
``env:NAME`` references at run time only.

Everything a spec, a config group or an override holds ends up in git-tracked files
(``params.yaml``), in each stage's ``meta.json`` and logs, which DVC caches and pushes. So a value
that carries a credential is refused there; the credential comes from the environment or from the
tool's own credential file (PostgreSQL: ``PGPASSWORD`` or ``~/.pgpass`` with a password-less URL),
or the whole URL comes from an environment variable that the config names (``env:NAME``), read by
the process that opens it and never written back. Torch-free: the compiler and the workers use it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from vjepa.errors import UserError

ENV_PREFIX = "env:"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MASK = "***"

# scheme://user:password@host: the password is what sits between the first ':' and '@'
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)(?P<password>[^\s/@]+)(?P<tail>@)"
)
# words of a key that name a credential (key parts split at '_', '-', '.', or camel case)
_SECRET_WORDS = {"password", "passwd", "pwd", "token", "secret", "apikey", "credential"}
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key")}
_SECRET_SUFFIXES = ("password", "passwd", "token", "secret", "apikey")
# KEY=VALUE inside a text (a setup line, an sbatch option): PGPASSWORD=..., API_TOKEN=...
_ASSIGNMENT = re.compile(r"(?P<key>\b[A-Za-z_][A-Za-z0-9_\-]*)\s*=\s*(?P<value>[^\s;&|]+)")

HOW = (
    "credentials come from the environment instead: for a sweep database `sweep.storage: "
    "env:VJEPA_OPTUNA_URL` with the URL in that variable, or a URL without its password plus "
    "PGPASSWORD or a ~/.pgpass file"
)


def secret_key(key: str) -> bool:
    """True for a key that names a credential: ``password``, ``db_password``, ``api_key``,
    ``authToken``, ``PGPASSWORD``; not ``tokens`` or ``max_tokens`` (counts, not credentials)."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)
    parts = [p.lower() for p in re.split(r"[_\-.\s]+", words) if p]
    if any(p in _SECRET_WORDS for p in parts):
        return True
    if any(pair in _SECRET_PAIRS for pair in zip(parts, parts[1:], strict=False)):
        return True
    return bool(parts) and parts[-1].endswith(_SECRET_SUFFIXES)


def is_reference(value: Any) -> bool:
    """A value that names where a credential lives instead of holding it (``env:NAME``,
    ``$NAME``, ``${NAME}``), or no value at all."""
    if value is None or value == "":
        return True
    return isinstance(value, str) and (value.startswith((ENV_PREFIX, "$")))


def text_problem(text: str) -> str | None:
    """What credential ``text`` carries (a URL with a password, ``KEY=VALUE`` with a credential
    key), or None."""
    if _URL_PASSWORD.search(text):
        return "a URL with a password"
    for match in _ASSIGNMENT.finditer(text):
        if secret_key(match["key"]) and not is_reference(match["value"]):
            return f"a credential ({match['key']}=...)"
    return None


def find_secret(value: Any, path: str = "") -> tuple[str, str] | None:
    """(key path, what) of the first credential inside a config value (keys and strings, nested
    mappings and lists), or None."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and secret_key(key) and not is_reference(item):
                if not isinstance(item, Mapping | list | tuple):
                    return where, f"a credential (key {key!r})"
            found = find_secret(item, where)
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = find_secret(item, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(value, str):
        problem = text_problem(value)
        return (path, problem) if problem else None
    return None


def mask(text: str) -> str:
    """``text`` with every URL password and credential assignment replaced by ``***``."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", text)

    def hide(m: re.Match[str]) -> str:
        if secret_key(m["key"]) and not is_reference(m["value"]):
            return m.group(0).replace(m["value"], MASK)
        return m.group(0)

    return _ASSIGNMENT.sub(hide, text)


def env_name(value: str) -> str | None:
    """``NAME`` of an ``env:NAME`` reference (None when ``value`` is not one)."""
    if not isinstance(value, str) or not value.startswith(ENV_PREFIX):
        return None
    return value[len(ENV_PREFIX) :]


def env_problem(value: Any) -> str | None:
    """What is wrong with an ``env:NAME`` reference's syntax, or None (also for other values)."""
    name = env_name(value)
    if name is None or ENV_NAME.fullmatch(name):
        return None
    return f"env:{name}: expected env:NAME with NAME an environment variable name"


def resolve(value: str | None, what: str) -> str | None:
    """The value behind an ``env:NAME`` reference, read from this process's environment now
    (``value`` itself when it is not a reference). A missing variable is a one-line error."""
    name = env_name(value) if value is not None else None
    if name is None:
        return value
    problem = env_problem(value)
    if problem:
        raise UserError(f"{what}: {problem}")
    found = os.environ.get(name)
    if not found:
        raise UserError(
            f"{what}: env:{name}: the environment variable {name} is not set (export it where "
            "the stage runs: the shell of `vjepa-exp run` / `dvc repro`, or the SLURM job's setup)"
        )
    return found
