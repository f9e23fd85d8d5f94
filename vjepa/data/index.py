"""The data index: one Parquet row per (file, task) with stream facts and a health status.

Sources: a synthetic benchmark folder (``synth.json``), a reference-format CSV (``path label``
per line), or a class-per-folder tree (``ROOT/<class>/<file>`` or ``ROOT/<split>/<class>/<file>``).
Every file is probed with PyAV in worker processes; files that cannot be decoded become rows with
``status="bad"`` and the reason, so one broken file never stops a build of millions.

Entries stream through in chunks and each chunk is one Parquet row group, so memory stays bounded
by the chunk size (plus the cache of a previous index). A previous index at the output path is
reused: a file whose (path, bytes, mtime) are unchanged is not probed again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vjepa.errors import DataError

COLUMNS = (
    ("path", "string"),
    ("task", "string"),
    ("label", "int64"),
    ("label_name", "string"),
    ("split", "string"),
    ("media", "string"),
    ("num_frames", "int64"),
    ("fps", "float64"),
    ("duration_s", "float64"),
    ("width", "int64"),
    ("height", "int64"),
    ("codec", "string"),
    ("bytes", "int64"),
    ("mtime", "float64"),
    ("status", "string"),
    ("error", "string"),
    # clips that must stay on one side of a train/validation carve-out (a synthetic clip and its
    # time-reversed partner share the frames); null = the file is its own group
    ("group", "string"),
)
OPTIONAL = ("group",)  # absent in indexes written before it existed: read as null
PROBED = ("media", "num_frames", "fps", "duration_s", "width", "height", "codec", "status", "error")
CHUNK = 2048  # entries per row group
_SPLIT_WORD = re.compile(r"(?:^|[_\-.])(train|val|test)(?:$|[_\-.])")


@dataclass
class Entry:
    """A file to index under one task, before probing."""

    path: str
    task: str
    label: int
    label_name: str | None
    split: str
    group: str | None = None


@dataclass
class IndexSummary:
    """What ``build_index`` did."""

    out: Path
    rows: int = 0
    ok: int = 0
    bad: int = 0
    files: int = 0
    probed: int = 0  # files probed now
    reused: int = 0  # files whose probe came from the previous index
    bad_files: list[tuple[str, str]] = field(default_factory=list)  # first 100 (path, error)


def schema():
    import pyarrow as pa

    return pa.schema([(name, pa.type_for_alias(kind)) for name, kind in COLUMNS])


# ---------------------------------------------------------------------------------------------
# sources


def split_from_name(name: str) -> str | None:
    """``train``/``val``/``test`` when a file or folder name says so (``motion_train.csv``)."""
    m = _SPLIT_WORD.search(name.lower())
    return m.group(1) if m else None


def iter_source(source: str | os.PathLike[str], split: str | None = None) -> Iterator[Entry]:
    """Entries of a source (synthetic folder, CSV, class-per-folder tree), lazily."""
    src = Path(source)
    if not src.exists():
        raise DataError(f"{source}: data source not found")
    if src.is_file():
        if src.suffix.lower() != ".csv":
            raise DataError(f"{source}: expected a CSV file, a synthetic folder or a folder tree")
        yield from _iter_csv(src, split)
    elif (src / "synth.json").is_file():
        yield from _iter_synth(src)
    else:
        yield from _iter_tree(src, split)


def _iter_synth(src: Path) -> Iterator[Entry]:
    import pyarrow.parquet as pq

    from vjepa.data.synth import load_synth_meta

    classes = load_synth_meta(src)["classes"]
    labels = src / "labels.parquet"
    if not labels.is_file():
        raise DataError(f"{labels}: synthetic dataset without labels")
    for batch in pq.ParquetFile(labels).iter_batches(batch_size=CHUNK):
        for r in batch.to_pylist():
            path = str((src / r["path"]).absolute())
            tasks = ("motion", "appearance") if r["kind"] == "video" else ("image",)
            for task in tasks:
                label = r["appearance"] if task != "motion" else r["motion"]
                group = r["reversed_of"] or r["id"]  # a time-reversed pair is one group
                yield Entry(path, task, label, classes[task][label], r["split"], group)


def _iter_csv(src: Path, split: str | None) -> Iterator[Entry]:
    name_split = split_from_name(src.stem)
    task = (
        re.sub(rf"[_\-.]?{name_split}$|^{name_split}[_\-.]?", "", src.stem)
        if name_split
        else src.stem
    )
    task = task or "default"
    with open(src) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            path, _, label = line.strip().rpartition(" ")
            try:
                value = int(label)
            except ValueError:
                raise DataError(f"{src}:{lineno}: expected '<path> <int label>'") from None
            if not path:
                raise DataError(f"{src}:{lineno}: expected '<path> <int label>'")
            full = Path(path) if Path(path).is_absolute() else src.parent / path
            yield Entry(str(full.absolute()), task, value, None, name_split or split or "train")


def _iter_tree(root: Path, split: str | None) -> Iterator[Entry]:
    from vjepa.data.video import IMAGE_EXTS, VIDEO_EXTS

    exts = IMAGE_EXTS | VIDEO_EXTS
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    split_dirs = [p for p in subdirs if p.name in ("train", "val", "test")]
    if split_dirs:
        pairs = [(p, p.name) for p in split_dirs]
        classes = sorted({c.name for p in split_dirs for c in p.iterdir() if c.is_dir()})
    else:
        pairs = [(root, split_from_name(root.name) or split or "train")]
        classes = [p.name for p in subdirs]
    if not classes:
        raise DataError(f"{root}: no class folders (expected ROOT/<class>/<file>)")
    for folder, split_name in pairs:
        for label, name in enumerate(classes):
            cdir = folder / name
            if not cdir.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(cdir):
                dirnames.sort()
                for fname in sorted(filenames):
                    if Path(fname).suffix.lower() in exts:
                        path = str((Path(dirpath) / fname).absolute())
                        yield Entry(path, "default", label, name, split_name)


# ---------------------------------------------------------------------------------------------
# probing


def probe_file(path: str) -> dict[str, Any]:
    """Probe one file; never raises: a failure is ``status="bad"`` with the reason."""
    from vjepa.data.video import probe

    try:
        return {**probe(path), "status": "ok", "error": None}
    except Exception as exc:  # any decoder or OS failure is a property of the file
        reason = str(exc).replace(f": {path!r}", "").replace(path, "<file>")
        reason = re.sub(r"\[Errno -?\d+\] ", "", " ".join(reason.split())) or type(exc).__name__
        return {"status": "bad", "error": f"{type(exc).__name__}: {reason}"[:300]}


def _stat(path: str) -> tuple[int, float] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime


def _load_cache(out: Path) -> dict[str, dict]:
    """Probe results of a previous index at ``out``, keyed by path (empty if none or unreadable)."""
    import pyarrow.parquet as pq

    if not out.is_file():
        return {}
    try:
        table = pq.read_table(out, columns=["path", "bytes", "mtime", *PROBED])
    except Exception:
        return {}
    return {r["path"]: r for r in table.to_pylist()}


# ---------------------------------------------------------------------------------------------
# build


def build_index(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    workers: int = 2,
    split: str | None = None,
    progress: bool = True,
) -> IndexSummary:
    """Index ``source`` into the Parquet file ``out`` (published atomically)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from rich.progress import Progress

    from vjepa.utils.io import atomic_path

    out = Path(out)
    entries = iter_source(source, split)
    first = next(entries, None)  # raises DataError early for a bad source
    if first is None:
        raise DataError(f"{source}: no files to index")
    cache = _load_cache(out)
    summary = IndexSummary(out)
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        with atomic_path(out) as tmp, Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("index", total=None)
            writer = pq.ParquetWriter(tmp, schema())
            for chunk in _chunks(_chain(first, entries), CHUNK):
                rows = _index_chunk(chunk, cache, pool, summary)
                writer.write_table(pa.Table.from_pylist(rows, schema=schema()))
                bar.advance(task, len(chunk))
            writer.close()
    finally:
        if pool is not None:
            pool.shutdown()
    return summary


def _chain(first: Entry, rest: Iterator[Entry]) -> Iterator[Entry]:
    yield first
    yield from rest


def _chunks(items: Iterator[Entry], size: int) -> Iterator[list[Entry]]:
    chunk: list[Entry] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _index_chunk(
    chunk: list[Entry],
    cache: dict[str, dict],
    pool: ProcessPoolExecutor | None,
    summary: IndexSummary,
) -> list[dict]:
    """Rows of one chunk: stat every file, reuse unchanged probes, probe the rest in parallel."""
    files = list(dict.fromkeys(e.path for e in chunk))
    stats = {p: _stat(p) for p in files}
    facts: dict[str, dict] = {}
    todo = []
    for p in files:
        old = cache.get(p)
        st = stats[p]
        if st is None:
            facts[p] = {"status": "bad", "error": "FileNotFoundError: file not found"}
        elif old is not None and (old["bytes"], old["mtime"]) == st:
            facts[p] = {k: old[k] for k in PROBED}
            summary.reused += 1
        else:
            todo.append(p)
    results = pool.map(probe_file, todo, chunksize=8) if pool else map(probe_file, todo)
    for p, res in zip(todo, results, strict=True):
        facts[p] = res
        summary.probed += 1
    summary.files += len(files)
    rows = []
    for e in chunk:
        st = stats[e.path]
        row = {
            "path": e.path, "task": e.task, "label": e.label, "label_name": e.label_name,
            "split": e.split, "bytes": st[0] if st else None, "mtime": st[1] if st else None,
            "group": e.group, **facts[e.path],
        }  # fmt: skip
        rows.append(row)
        summary.rows += 1
        if row["status"] == "ok":
            summary.ok += 1
        else:
            summary.bad += 1
            if len(summary.bad_files) < 100 and (e.path, row["error"]) not in summary.bad_files:
                summary.bad_files.append((e.path, row["error"]))
    return rows


# ---------------------------------------------------------------------------------------------
# reading


def read_index(
    path: str | os.PathLike[str],
    task: str | None = None,
    split: str | None = None,
    ok_only: bool = True,
) -> list[dict]:
    """Rows of an index as dicts, filtered by task, split and (by default) ``status == "ok"``."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: index not found")
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise DataError(f"{path}: not a readable Parquet index ({type(exc).__name__})") from None
    missing = [n for n, _ in COLUMNS if n not in table.column_names and n not in OPTIONAL]
    if missing:
        raise DataError(f"{path}: not a data index (missing columns {', '.join(missing)})")
    rows = table.to_pylist()
    for name in OPTIONAL:
        if name not in table.column_names:
            for r in rows:
                r[name] = None
    if task is not None:
        tasks = {r["task"] for r in rows}
        if task not in tasks:
            raise DataError(f"{path}: no task {task!r} (has {', '.join(sorted(tasks))})")
    return [
        r
        for r in rows
        if (task is None or r["task"] == task)
        and (split is None or r["split"] == split)
        and (not ok_only or r["status"] == "ok")
    ]


def index_report(path: str | os.PathLike[str]) -> dict:
    """Counts per (task, split, label) of ok rows, and the bad files, for ``data show``."""
    rows = read_index(path, ok_only=False)
    counts: dict[tuple[str, str], dict[tuple[int, str | None], int]] = {}
    bad: dict[str, str] = {}
    for r in rows:
        if r["status"] != "ok":
            bad[r["path"]] = r["error"]
            continue
        key = (r["task"], r["split"])
        label = (r["label"], r["label_name"])
        counts.setdefault(key, {})
        counts[key][label] = counts[key].get(label, 0) + 1
    return {"rows": len(rows), "counts": counts, "bad": bad}
