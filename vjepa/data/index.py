"""The data index: one Parquet row per (file, task) with stream facts and a health status.

Two builders. ``build_dataset_index`` indexes a named dataset whose splits are lists of sources
(reference-format CSVs or class-per-folder trees, ``vjepa/data/sources.py``). ``build_index``
indexes one source: a synthetic benchmark folder (``synth.json``), a CSV, or a tree
(``ROOT/<class>/<file>`` or ``ROOT/<split>/<class>/<file>``), taking task and split from names.

``probe="full"`` probes every file with PyAV in worker processes; files that cannot be decoded
become rows with ``status="bad"`` and the reason, so one broken file never stops a build of
millions. A previous index at the output path is reused: a file whose (path, bytes, mtime) are
unchanged is not probed again. Each probed chunk is also journalled (``index.parquet.partial/``)
until the index is published, so a killed build resumes where it stopped. ``probe="none"`` trusts the listing, as the reference does (a
million-file probe costs hours): rows are ``status="unprobed"`` with null stream facts, and a
broken file is found, skipped and counted when ``ClipDataset`` reads it.

Entries stream through in chunks and each chunk is one Parquet row group, so memory stays bounded
by the chunk size (plus the cache of a previous index). ``read_index`` scans lazily with the
task/split filter pushed down, so one split of a million-row index is read without the rest.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import operator
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vjepa.data.sources import (
    Entry,
    SourceInfo,
    inspect_source,
    iter_chunks,
    iter_entries,
    label_outside_error,
)
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
CHUNK = 2048  # entries per row group of a probed index
UNPROBED_CHUNK = 65536  # rows per row group of an unprobed index
USABLE = ("ok", "unprobed")  # the statuses ``read_index(ok_only=True)`` keeps
PROBES = ("full", "none")
SHARED = frozenset({"task", "label_name", "split", "media", "codec", "status", "error"})
_SPLIT_WORD = re.compile(r"(?:^|[_\-.])(train|val|test)(?:$|[_\-.])")


@dataclass
class IndexSummary:
    """What ``build_index`` / ``build_dataset_index`` did."""

    out: Path
    rows: int = 0
    ok: int = 0
    bad: int = 0
    files: int = 0  # distinct files per chunk, summed (probe "none": rows; it reads no file)
    probed: int = 0  # files probed now
    reused: int = 0  # files whose probe came from the previous index
    bad_files: list[tuple[str, str]] = field(default_factory=list)  # first 100 (path, error)
    unprobed: int = 0  # rows written with status "unprobed" (probe "none")
    splits: dict[str, int] = field(default_factory=dict)  # rows per split


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
    info = SourceInfo(str(src.absolute()), "csv", -1, None, ())  # the grammar of sources.py
    yield from iter_entries(info, task, name_split or split or "train")


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
    """Probe results of a previous index at ``out`` and of an interrupted build of it (its
    journal), keyed by path; unreadable files contribute nothing."""
    import pyarrow.parquet as pq

    files = ([out] if out.is_file() else []) + sorted(journal_dir(out).glob("*.parquet"))
    cache: dict[str, dict] = {}
    for path in files:
        try:  # unprobed rows have nothing to reuse
            table = pq.read_table(
                path,
                columns=["path", "bytes", "mtime", *PROBED],
                filters=[("status", "!=", "unprobed")],
            )
        except Exception:
            continue
        cache.update((r["path"], r) for r in table.to_pylist())
    return cache


def journal_dir(out: Path) -> Path:
    """Where a probing build of ``out`` keeps each finished chunk, so a killed build resumes."""
    return out.with_name(out.name + ".partial")


def _journal(out: Path, number: int, table: Any) -> None:
    import pyarrow.parquet as pq

    from vjepa.utils.io import atomic_path

    folder = journal_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / f"{number:06d}.parquet") as tmp:
        pq.write_table(table, tmp)


# ---------------------------------------------------------------------------------------------
# build


def build_index(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    workers: int = 2,
    split: str | None = None,
    progress: bool = True,
) -> IndexSummary:
    """Index one ``source`` into the Parquet file ``out`` (published atomically), probing all."""
    out = Path(out)
    entries = iter_source(source, split)
    first = next(entries, None)  # raises DataError early for a bad source
    if first is None:
        raise DataError(f"{source}: no files to index")
    summary = IndexSummary(out)
    with _writer(out, progress) as (writer, advance):
        _write_probed(writer, _chain(first, entries), out, workers, summary, advance)
    shutil.rmtree(journal_dir(out), ignore_errors=True)
    return summary


def build_dataset_index(
    name: str,
    splits: Mapping[str, Sequence[str | os.PathLike[str]]],
    out: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
    probe: str = "full",
    workers: int = 2,
    progress: bool = False,
) -> IndexSummary:
    """Index dataset ``name`` (split -> its sources, in order) into ``out/index.parquet``.

    ``out`` is the folder, or the index file itself when it ends in ``.parquet``.

    Every row gets ``task=name`` and its split; trees of the dataset share the sorted union of
    their class names. Every source is inspected (and the labels checked against
    ``num_classes``) before a row is written, so a bad line fails in seconds, not after a probe.
    """
    if probe not in PROBES:
        raise DataError(f"{name}: probe must be one of {', '.join(PROBES)}, got {probe!r}")
    if not splits:
        raise DataError(f"{name}: no splits to index")
    infos: dict[str, list[SourceInfo]] = {}
    for split, sources in splits.items():
        if not sources:
            raise DataError(f"{name}.{split}: no data sources")
        infos[split] = [inspect_source(src) for src in sources]
    _, classes = dataset_classes([i for group in infos.values() for i in group], num_classes, name)
    target = Path(out) if Path(out).suffix == ".parquet" else Path(out) / "index.parquet"
    summary = IndexSummary(target)
    with _writer(target, progress) as (writer, advance):
        if probe == "none":
            _write_unprobed(writer, name, infos, classes, summary, advance)
        else:
            entries = (
                entry
                for split, group in infos.items()
                for info in group
                for entry in iter_entries(info, name, split, classes)
            )
            _write_probed(writer, entries, target, workers, summary, advance)
    shutil.rmtree(journal_dir(target), ignore_errors=True)
    return summary


def dataset_classes(
    infos: Sequence[SourceInfo], num_classes: int | None, where: str
) -> tuple[int, tuple[str, ...]]:
    """``(num_classes, class_names)`` of a dataset's sources (all its splits).

    CSVs: the largest label + 1, or ``num_classes`` when given (a label outside it raises, naming
    its line); no names. Trees: the sorted union of their class folder names (so every split
    labels a class the same), and their count, or ``num_classes`` when given and not smaller.
    """
    if not infos:
        raise DataError(f"{where}: no data sources")
    if num_classes is not None and num_classes < 1:
        raise DataError(f"{where}: num_classes must be >= 1, got {num_classes}")
    csvs = [i for i in infos if i.kind == "csv"]
    if csvs and len(csvs) < len(infos):
        raise DataError(f"{where}: mixes CSV and folder sources (their labels would not agree)")
    if csvs:
        if num_classes is None:
            return max(int(i.max_label or 0) for i in csvs) + 1, ()
        for info in csvs:
            if info.max_label is not None and info.max_label >= num_classes:
                raise label_outside_error(info, num_classes)
        return num_classes, ()
    names = tuple(sorted({name for i in infos for name in i.classes}))
    if num_classes is not None and len(names) > num_classes:
        raise DataError(f"{where}: {len(names)} classes found, num_classes is {num_classes}")
    return (num_classes if num_classes is not None else len(names)), names


@contextlib.contextmanager
def _writer(out: Path, progress: bool) -> Iterator[tuple[Any, Any]]:
    """A Parquet writer on a temporary file published as ``out`` on success, and a progress step."""
    import pyarrow.parquet as pq
    from rich.progress import Progress

    from vjepa.utils.io import atomic_path

    with atomic_path(out) as tmp, Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("index", total=None)
        writer = pq.ParquetWriter(tmp, schema())
        try:
            yield writer, lambda n: bar.advance(task, n)
        finally:
            writer.close()


def _write_probed(
    writer: Any,
    entries: Iterator[Entry],
    out: Path,
    workers: int,
    summary: IndexSummary,
    advance: Any,
) -> None:
    """Probe ``entries`` (reusing unchanged probes of a previous or interrupted build of
    ``out``), one row group per chunk, each chunk also journalled until the index is published."""
    import pyarrow as pa

    cache = _load_cache(out)
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        for number, chunk in enumerate(_chunks(entries, CHUNK)):
            rows = _index_chunk(chunk, cache, pool, summary)
            table = pa.Table.from_pylist(rows, schema=schema())
            writer.write_table(table)
            _journal(out, number, table)
            advance(len(chunk))
    finally:
        if pool is not None:
            pool.shutdown()


def _write_unprobed(
    writer: Any,
    task: str,
    infos: Mapping[str, Sequence[SourceInfo]],
    classes: Sequence[str],
    summary: IndexSummary,
    advance: Any,
) -> None:
    """Rows of every source as they are listed, built as Arrow columns (no object per row)."""
    for split, group in infos.items():
        for info in group:
            for paths, labels, names in iter_chunks(info, classes, UNPROBED_CHUNK):
                writer.write_table(_unprobed_table(paths, labels, names, task, split))
                n = len(paths)
                summary.rows += n
                summary.files += n
                summary.unprobed += n
                summary.splits[split] = summary.splits.get(split, 0) + n
                advance(n)


def _unprobed_table(
    paths: list[str], labels: list[int], names: list[str] | None, task: str, split: str
) -> Any:
    import pyarrow as pa

    from vjepa.data.video import IMAGE_EXTS

    n = len(paths)
    # the text from the last dot: a folder's dot gives "...x/y", which no extension equals
    media = ["image" if p[p.rfind(".") :].lower() in IMAGE_EXTS else "video" for p in paths]
    given = {
        "path": pa.array(paths, pa.string()),
        "task": pa.array([task] * n, pa.string()),
        "label": pa.array(labels, pa.int64()),
        "label_name": pa.array(names, pa.string()) if names is not None else None,
        "split": pa.array([split] * n, pa.string()),
        "media": pa.array(media, pa.string()),
        "status": pa.array(["unprobed"] * n, pa.string()),
    }
    sch = schema()
    columns = [given[f.name] if given.get(f.name) is not None else pa.nulls(n, f.type) for f in sch]
    return pa.Table.from_arrays(columns, schema=sch)


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
        summary.splits[e.split] = summary.splits.get(e.split, 0) + 1
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
    """Rows of an index as dicts, filtered by task, split and (by default) a usable status.

    Usable: ``"ok"`` (probed) or ``"unprobed"`` (listed, checked when read). The filter is pushed
    into the Parquet scan: row groups of other tasks and splits are skipped by their statistics,
    and only the selected rows become Python objects.
    """
    table = _scan(Path(path), task, split, ok_only)
    names = table.column_names
    batches = table.to_batches(max_chunksize=CHUNK * 16)[::-1]
    del table  # each batch is freed once it is converted: peak memory is the dicts, not 2x
    rows: list[dict] = []
    with _gc_paused():  # a million new dicts would run the cycle collector over and over
        while batches:
            batch = batches.pop()
            columns = [_pylist(batch.column(i), n in SHARED) for i, n in enumerate(names)]
            rows.extend(map(dict, map(zip, itertools.repeat(names), zip(*columns, strict=True))))
            del batch, columns
    absent = [n for n in OPTIONAL if n not in names]
    for r in rows:
        for name in absent:
            r[name] = None
    return rows


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _pylist(column: Any, shared: bool) -> list:
    """A column as Python values; ``shared``: one str object per distinct value, not per row.

    Task, split, status and the like repeat on every row: sharing their strings saves ~200 MB
    and a second per million rows read.
    """
    if column.null_count == len(column):
        return [None] * len(column)
    if not shared:
        return column.to_pylist()
    encoded = column.dictionary_encode()
    lookup = [*encoded.dictionary.to_pylist(), None]
    codes = encoded.indices.fill_null(len(lookup) - 1).to_numpy(zero_copy_only=False)
    return list(map(lookup.__getitem__, codes.tolist()))


def _scan(path: Path, task: str | None, split: str | None, ok_only: bool) -> Any:
    """The selected rows of an index as an Arrow table (every column of the file)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    if not path.is_file():
        raise DataError(f"{path}: index not found")
    unreadable = f"{path}: not a readable Parquet index"
    try:
        data = ds.dataset(str(path), format="parquet")
    except Exception as exc:
        raise DataError(f"{unreadable} ({type(exc).__name__})") from None
    present = data.schema.names
    missing = [n for n, _ in COLUMNS if n not in present and n not in OPTIONAL]
    if missing:
        raise DataError(f"{path}: not a data index (missing columns {', '.join(missing)})")
    conditions = []
    if task is not None:
        conditions.append(pc.field("task") == task)
    if split is not None:
        conditions.append(pc.field("split") == split)
    if ok_only:
        conditions.append(pc.field("status").isin(list(USABLE)))
    where = functools.reduce(operator.and_, conditions) if conditions else None
    try:
        table = data.to_table(filter=where)
        if task is not None and table.num_rows == 0:
            tasks = set(pc.unique(data.to_table(columns=["task"]).column("task")).to_pylist())
            if task not in tasks:
                have = ", ".join(sorted(t for t in tasks if t is not None))
                raise DataError(f"{path}: no task {task!r} (has {have})")
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{unreadable} ({type(exc).__name__})") from None
    return table


def task_classes(path: str | os.PathLike[str], task: str | None) -> int:
    """Largest label + 1 over every split of ``task`` (reads the label column only)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    if not Path(path).is_file():
        raise DataError(f"{path}: index not found")
    where = pc.field("task") == task if task is not None else None
    labels = ds.dataset(str(path), format="parquet").to_table(columns=["label"], filter=where)
    top = pc.max(labels.column("label")).as_py()
    if top is None:
        raise DataError(f"{path}: no rows of task {task!r}")
    return int(top) + 1


def index_report(path: str | os.PathLike[str]) -> dict:
    """Counts per (task, split, label) of usable rows, and the bad files, for ``data show``."""
    import pyarrow.compute as pc

    table = _scan(Path(path), None, None, ok_only=False)
    usable = table.filter(pc.is_in(table.column("status"), value_set=_usable_set()))
    keys = ["task", "split", "label", "label_name"]
    grouped = usable.select([*keys, "path"]).group_by(keys, use_threads=False)
    counts: dict[tuple[str, str], dict[tuple[int, str | None], int]] = {}
    for r in grouped.aggregate([("path", "count")]).to_pylist():
        counts.setdefault((r["task"], r["split"]), {})[(r["label"], r["label_name"])] = r[
            "path_count"
        ]
    bad_rows = table.filter(pc.equal(table.column("status"), "bad")).select(["path", "error"])
    bad = dict(zip(*(bad_rows.column(n).to_pylist() for n in ("path", "error")), strict=True))
    return {"rows": table.num_rows, "counts": counts, "bad": bad}


def _usable_set() -> Any:
    import pyarrow as pa

    return pa.array(USABLE, pa.string())
