"""Data sources of a dataset split: a reference-format CSV or a class-per-folder tree.

A SOURCE is one of:

* a CSV in the reference format, ``<path> <int label>`` per line: one space before the label, no
  header, blank lines skipped. A path may hold spaces (the line splits on its last space);
  relative paths resolve against the CSV's folder.
* a class-per-folder tree of videos, ``ROOT/<class>/<file>`` (files found recursively below each
  class folder, sorted), or of images in the ImageNet layout, ``ROOT/<wnid>/*.JPEG``. A tree is
  ``"videos"`` when its first media files (up to 64, in the first class folder holding any)
  include a video (images in it read as still clips), else ``"images"``. Names starting with ``.`` (``.cache/``, ``._x.mp4``) are not part of a tree.

``inspect_source`` checks a source without listing or probing its files, so a check of a
paper-scale dataset takes seconds: a CSV is read once (a 2M-line CSV in about a second; results
can be cached per (path, size, mtime)), a tree lists its class folders and stops at the first
media files. ``iter_entries`` then yields its entries lazily, in a stable order.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePath

from vjepa.errors import DataError

KINDS = ("csv", "videos", "images")
CHUNK = 65536  # entries per chunk of ``iter_chunks``
_SPLIT_FOLDERS = frozenset({"train", "val", "test"})
_LINE_FORMAT = "expected '<path> <int label>'"


@dataclass
class Entry:
    """A file to index under one task, before probing."""

    path: str
    task: str
    label: int
    label_name: str | None
    split: str
    group: str | None = None


@dataclass(frozen=True)
class SourceInfo:
    """What ``inspect_source`` found: enough to label a dataset without listing its files."""

    path: str  # absolute path of the source
    kind: str  # "csv" | "videos" | "images"
    rows: int  # CSV: data lines; trees: -1 (not counted: listing 1.28M files is too slow)
    max_label: int | None  # CSV only
    classes: tuple[str, ...]  # trees: sorted class folder names; CSV: ()


def _media_exts() -> tuple[frozenset[str], frozenset[str]]:
    from vjepa.data.video import IMAGE_EXTS, VIDEO_EXTS  # lazily: video.py imports PyAV

    return IMAGE_EXTS, VIDEO_EXTS


# ---------------------------------------------------------------------------------------------
# inspecting


def inspect_source(
    path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
) -> SourceInfo:
    """Check one source; a bad one raises a one-line ``DataError`` naming the file (and line)."""
    src = Path(path).absolute()
    if not src.exists():
        raise DataError(f"{src}: data source not found")
    if src.is_dir():
        kind, classes = _scan_tree(src)
        return SourceInfo(str(src), kind, -1, None, classes)
    if src.suffix.lower() != ".csv":
        raise DataError(
            f"{src}: not a .csv file (a data source is a '<path> <label>' CSV "
            "or a ROOT/<class>/<file> folder)"
        )
    key = _stat_key(src)
    cached = _cache_get(cache_dir, key)
    if cached is not None:
        return cached
    rows, max_label = _scan_csv(str(src))
    info = SourceInfo(str(src), "csv", rows, max_label, ())
    if _stat_key(src) == key:  # not changed while it was read
        _cache_put(cache_dir, key, info)
    return info


def _stat_key(src: Path) -> list:
    try:
        st = src.stat()
    except OSError as exc:
        raise DataError(f"{src}: cannot read ({exc.strerror})") from None
    return [str(src), st.st_size, st.st_mtime_ns]


def _scan_csv(csv: str) -> tuple[int, int]:
    """(data lines, largest label) of a CSV; the first bad line raises."""
    rows, top = 0, -1
    for _, value in csv_rows(csv):
        rows += 1
        if value > top:
            top = value
    if rows == 0:
        raise DataError(f"{csv}: no rows (an empty CSV, {_LINE_FORMAT} per line)")
    return rows, top


def csv_rows(csv: str) -> Iterator[tuple[str, int]]:
    """``(path as written, label)`` of every non-blank line; a bad line raises naming it."""
    try:
        with open(csv, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                text = line.strip()
                if not text:
                    continue
                path, _, label = text.rpartition(" ")
                try:
                    value = int(label)
                except ValueError:
                    value = -1
                if value < 0 or not path:
                    raise _line_error(csv, lineno, text)
                yield path, value
    except UnicodeDecodeError:
        raise DataError(f"{csv}:{_undecodable_line(csv)}: not UTF-8 text") from None
    except OSError as exc:
        raise DataError(f"{csv}: cannot read ({exc.strerror})") from None


def _line_error(csv: str, lineno: int, text: str) -> DataError:
    """The precise reason a stripped, non-blank line is not ``<path> <int label>``."""
    path, sep, label = text.rpartition(" ")
    if not sep or not path:
        return DataError(f"{csv}:{lineno}: {_LINE_FORMAT}, got {text[:80]!r}")
    try:
        value = int(label)
    except ValueError:
        return DataError(f"{csv}:{lineno}: label {label[:40]!r} is not an integer ({_LINE_FORMAT})")
    return DataError(f"{csv}:{lineno}: label {value} is negative")


def _undecodable_line(csv: str) -> int:
    with open(csv, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return lineno
    return 0


def _scan_tree(root: Path) -> tuple[str, tuple[str, ...]]:
    """(kind, sorted class folder names) of a tree; reads as little of it as it can."""
    try:
        with os.scandir(root) as it:
            classes = tuple(sorted(e.name for e in it if e.is_dir() and not e.name.startswith(".")))
    except OSError as exc:
        raise DataError(f"{root}: cannot read ({exc.strerror})") from None
    if not classes:
        raise DataError(f"{root}: no class folders (expected ROOT/<class>/<file>)")
    if set(classes) <= _SPLIT_FOLDERS:
        raise DataError(
            f"{root}: holds split folders ({', '.join(classes)}), not class folders; "
            f"give each split its own source ({root / classes[0]})"
        )
    images, videos = _media_exts()
    for name in classes:
        kind = _folder_kind(root / name, images, videos)
        if kind is not None:
            return kind, classes
    raise DataError(f"{root}: no video or image files under its class folders")


def _folder_kind(
    folder: Path, images: frozenset[str], videos: frozenset[str], look: int = 64
) -> str | None:
    """``"videos"`` if one of the first ``look`` media files below ``folder`` is a video,
    ``"images"`` if they are all images, None if it holds none (it reads no more than that)."""
    seen = 0
    for _, _, filenames in _walk(str(folder)):
        for fname in filenames:
            ext = os.path.splitext(fname)[1].lower()
            if ext in videos:
                return "videos"
            if ext in images:
                seen += 1
                if seen == look:
                    return "images"
    return "images" if seen else None


def _walk(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` in sorted order, without names starting with a dot."""
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield dirpath, dirnames, sorted(f for f in filenames if not f.startswith("."))


def count_tree(
    path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
) -> int:
    """Media files under a class-per-folder tree: the clips its index will hold.

    A full listing (1.28M files for ImageNet), so it is cached, keyed by the class folders'
    modification times (adding or removing a file in a class folder changes its folder's).
    """
    root = Path(path).absolute()
    try:
        with os.scandir(root) as it:
            folders = sorted(
                (e.name, e.stat().st_mtime_ns)
                for e in it
                if e.is_dir() and not e.name.startswith(".")
            )
    except OSError as exc:
        raise DataError(f"{root}: cannot read ({exc.strerror})") from None
    key = ["tree", str(root), [list(f) for f in folders]]
    cache = _cache_file(cache_dir, f"tree:{root}") if cache_dir is not None else None
    try:
        body = json.loads(cache.read_text()) if cache is not None else None
        if body is not None and body["key"] == key and type(body["files"]) is int:
            return body["files"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    images, videos = _media_exts()
    exts = images | videos
    files = sum(
        os.path.splitext(f)[1].lower() in exts
        for name, _ in folders
        for _, _, filenames in _walk(str(root / name))
        for f in filenames
    )
    if cache is not None:
        from vjepa.utils.io import atomic_write_json

        try:
            atomic_write_json(cache, {"key": key, "files": files})
        except OSError:
            pass
    return files


# ---------------------------------------------------------------------------------------------
# the cache of CSV inspections


def _cache_file(cache_dir: str | os.PathLike[str], path: str) -> Path:
    return Path(cache_dir) / f"{hashlib.sha256(path.encode()).hexdigest()[:24]}.json"


def _cache_get(cache_dir: str | os.PathLike[str] | None, key: list) -> SourceInfo | None:
    """The cached inspection of an unchanged CSV; None if absent, stale or unreadable."""
    if cache_dir is None:
        return None
    try:
        body = json.loads(_cache_file(cache_dir, key[0]).read_text())
        info = body["info"]
        if body["key"] != key or info["kind"] != "csv" or info["path"] != key[0]:
            return None
        rows, top = info["rows"], info["max_label"]
        if not (type(rows) is int and type(top) is int and rows > 0 and top >= 0):
            return None
        return SourceInfo(key[0], "csv", rows, top, ())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _cache_put(cache_dir: str | os.PathLike[str] | None, key: list, info: SourceInfo) -> None:
    """Cache an inspection; a cache that cannot be written only costs a re-read later."""
    from vjepa.utils.io import atomic_write_json

    if cache_dir is None:
        return
    try:
        atomic_write_json(_cache_file(cache_dir, key[0]), {"key": key, "info": asdict(info)})
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------
# entries


def iter_entries(
    info: SourceInfo, task: str, split: str, classes: Sequence[str] = ()
) -> Iterator[Entry]:
    """Entries of an inspected source, lazily.

    A tree's labels index ``classes`` (the sorted class names of every split of the dataset, so
    that ``train/`` and ``val/`` agree), or its own classes when ``classes`` is empty.
    """
    for paths, labels, names in iter_chunks(info, classes):
        if names is None:
            for path, label in zip(paths, labels, strict=True):
                yield Entry(path, task, label, None, split)
        else:
            for path, label, name in zip(paths, labels, names, strict=True):
                yield Entry(path, task, label, name, split)


def iter_chunks(
    info: SourceInfo, classes: Sequence[str] = (), size: int = CHUNK
) -> Iterator[tuple[list[str], list[int], list[str] | None]]:
    """(absolute paths, labels, label names or None) of a source, ``size`` entries at a time.

    Columns rather than entries: a paper-scale index is built from these without a Python object
    per row.
    """
    if info.kind == "csv":
        yield from _csv_chunks(info.path, size)
    elif info.kind in KINDS:
        yield from _tree_chunks(info, classes or info.classes, size)
    else:
        raise DataError(f"{info.path}: unknown source kind {info.kind!r}")


def _csv_chunks(csv: str, size: int) -> Iterator[tuple[list[str], list[int], None]]:
    base = os.path.dirname(csv)
    paths: list[str] = []
    labels: list[int] = []
    for path, value in csv_rows(csv):
        paths.append(resolve(base, path))
        labels.append(value)
        if len(paths) == size:
            yield paths, labels, None
            paths, labels = [], []
    if paths:
        yield paths, labels, None


def resolve(base: str, path: str) -> str:
    """``path`` made absolute against ``base``, spelled as ``pathlib`` would (``..`` is kept).

    Plain string joining for the common case; pathlib only for paths it would respell (``.``
    components, doubled or trailing slashes): it costs microseconds per row at 2M rows.
    """
    full = path if os.path.isabs(path) else os.path.join(base, path)
    if "//" in full or "/." in full or full.endswith("/"):
        return str(PurePath(full))
    return full


def _tree_chunks(
    info: SourceInfo, classes: Sequence[str], size: int
) -> Iterator[tuple[list[str], list[int], list[str]]]:
    images, videos = _media_exts()
    exts = images | videos
    label_of = {name: i for i, name in enumerate(classes)}
    paths: list[str] = []
    labels: list[int] = []
    names: list[str] = []
    for name in info.classes:
        if name not in label_of:
            raise DataError(f"{info.path}: class folder {name!r} is not among the given classes")
        label = label_of[name]
        for dirpath, _, filenames in _walk(os.path.join(info.path, name)):
            for fname in filenames:
                if os.path.splitext(fname)[1].lower() in exts:
                    paths.append(os.path.join(dirpath, fname))
                    labels.append(label)
                    names.append(name)
                    if len(paths) == size:
                        yield paths, labels, names
                        paths, labels, names = [], [], []
    if paths:
        yield paths, labels, names


# ---------------------------------------------------------------------------------------------
# labels


def label_outside_error(info: SourceInfo, num_classes: int) -> DataError:
    """The error naming the first line of a CSV whose label is >= ``num_classes``."""
    with open(info.path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            _, _, label = line.strip().rpartition(" ")
            try:
                value = int(label)
            except ValueError:
                continue
            if value >= num_classes:
                return DataError(
                    f"{info.path}:{lineno}: label {value} is outside num_classes {num_classes}"
                )
    return DataError(f"{info.path}: label {info.max_label} is outside num_classes {num_classes}")
