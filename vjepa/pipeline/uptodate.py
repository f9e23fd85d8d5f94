"""DVC's last "up to date" verdict, reused while nothing it read has changed.

A no-op ``vjepa-exp run`` or ``status`` asked DVC about the spec's stages every time, and DVC
builds every stage of the merged dvc.yaml (225 in the committed one) and re-walks each dependency
folder to answer: seconds for the quickstart's 31 stages. When DVC finds a set of stages up to
date, we keep a fingerprint of everything its answer rested on: the bytes of dvc.yaml,
params.yaml and dvc.lock, DVC's settings and version, and the size, modification time and inode
of every file under the stages' dependencies and outputs. The next question with the same
fingerprint gets the same answer without DVC (and without parsing the ~0.5 MB of YAML); any
change (an edited source file, a touched or deleted output, a recompiled spec, a new lock entry)
changes the fingerprint and DVC is asked again.

This trusts file stats exactly as far as DVC's own state database does (a rewrite that keeps the
size and lands within one mtime tick is invisible to both).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from vjepa.utils.io import atomic_write_json, read_json_object

VERDICTS = Path(".vjepa") / "uptodate.json"
KEEP = 16  # verdicts kept: one per set of stages asked about (a spec, a spec with overrides)
FILES = ("dvc.yaml", "params.yaml", "dvc.lock", ".dvc/config", ".dvc/config.local", ".dvcignore")


def _key(names: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]


def files_digest(root: Path) -> str:
    """DVC's version and the bytes of the files its status reads (pipeline, params, lock, config)."""
    digest = hashlib.sha256(f"dvc {metadata.version('dvc')}".encode())
    for rel in FILES:
        file = root / rel
        digest.update(f"\n{rel} ".encode())
        digest.update(file.read_bytes() if file.is_file() else b"-")
    return digest.hexdigest()


def _stats(root: Path, rel: str) -> list[str]:
    """One line per file under ``rel``: path, size, mtime (ns), inode; "missing" when absent."""
    top = os.path.join(root, rel)
    try:
        st = os.stat(top)
    except OSError:
        return [f"{rel} missing"]
    if not os.path.isdir(top):
        return [f"{rel} {st.st_size} {st.st_mtime_ns} {st.st_ino}"]
    lines = []
    for folder, dirs, files in os.walk(top):
        dirs.sort()
        base = os.path.relpath(folder, root)
        for name in sorted(files):
            try:
                st = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            lines.append(f"{base}/{name} {st.st_size} {st.st_mtime_ns} {st.st_ino}")
    return lines


def stats_digest(root: Path, paths: Iterable[str]) -> str:
    """A hash of the stats of every file under ``paths``."""
    digest = hashlib.sha256()
    for rel in sorted(set(paths)):
        digest.update(f"{rel}\n".encode())
        for line in _stats(root, rel):
            digest.update(f"{line}\n".encode())
    return digest.hexdigest()


def stage_paths(entries: Iterable[dict[str, Any]]) -> list[str]:
    """The dependency, output and metrics paths of dvc.yaml entries."""
    paths: set[str] = set()
    for entry in entries:
        paths.update(entry.get("deps") or [])
        for section in ("outs", "metrics", "plots"):
            for item in entry.get(section) or []:
                paths.update(item if isinstance(item, dict) else [item])
    return sorted(paths)


def known_up_to_date(root: Path, names: Iterable[str]) -> bool:
    """True when DVC found exactly ``names`` up to date and nothing it read has changed since."""
    verdict = read_json_object(root / VERDICTS).get(_key(names))
    if not isinstance(verdict, dict) or verdict.get("files") != files_digest(root):
        return False
    return verdict.get("stats") == stats_digest(root, verdict.get("paths") or [])


def remember_up_to_date(
    root: Path, names: Iterable[str], files: str, paths: list[str], stats: str
) -> None:
    """Record that DVC found ``names`` up to date with the files at digest ``files`` and the
    files under the stages' ``paths`` at digest ``stats`` (the newest KEEP verdicts are kept)."""
    verdicts = read_json_object(root / VERDICTS)
    verdicts[_key(names)] = {"files": files, "paths": paths, "stats": stats, "at": time.time()}
    newest = sorted(
        verdicts.items(), key=lambda kv: kv[1].get("at", 0) if isinstance(kv[1], dict) else 0
    )
    atomic_write_json(root / VERDICTS, dict(newest[-KEEP:]))
