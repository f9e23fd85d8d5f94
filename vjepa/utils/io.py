"""Atomic file publication and run metadata.

Every stage publishes its outputs atomically (write a temporary file beside the target, fsync,
rename), so a killed process never leaves a half-written file that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it over ``target``.

    On any exception the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; publish like open() would
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(target: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as pretty, key-sorted JSON atomically (stable bytes for DVC)."""
    atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_save(target: str | os.PathLike[str], writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and publish its file atomically (e.g. ``torch.save``)."""
    with atomic_path(target) as tmp:
        writer(tmp)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file."""
    with open(path) as fh:
        return json.load(fh)


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON object from a cache or state file; {} when it is missing, torn or not an object."""
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# What ``torch.save`` files start with: a zip archive (the format since torch 1.6) or a pickle
# (the legacy format: protocol 2+ opcode). Read without torch, so the compiler stays light.
TORCH_FILE_MAGIC = (b"PK\x03\x04", b"\x80")


def is_torch_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a regular file that starts like a ``torch.save`` checkpoint."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except (IsADirectoryError, PermissionError, FileNotFoundError):
        return False
    return any(head.startswith(magic) for magic in TORCH_FILE_MAGIC)


def git_revision(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The current git commit of ``cwd`` (None outside a repository)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def package_versions(names: tuple[str, ...] = ("torch", "av", "numpy", "optuna", "dvc")) -> dict:
    """Versions of the packages that decide a result, for meta.json."""
    from importlib import metadata

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_meta(config: Any, uid: str | None, started: float, **extra: Any) -> dict:
    """The meta.json body every stage writes: config, uid, git rev, versions, host, timings."""
    from vjepa import __version__

    return {
        "uid": uid,
        "config": config,
        "git_rev": git_revision(),
        "vjepa_exp": __version__,
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "wall_s": round(time.time() - started, 3),
        **extra,
    }
