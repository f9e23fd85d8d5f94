"""Clip records as a few numpy columns: a table that forked DataLoader workers share, not copy.

A list of a million ``read_index`` dicts is ~0.6 GiB of Python objects, and a forked worker that
reads one writes its refcount: copy-on-write gives every worker its own copy of the pages of each
object it reads (~180 MiB per 1M rows per worker that reads every path and label;
``bench/clip_records.py``). ``ClipRecords`` keeps the fields ``ClipDataset`` reads in numpy
arrays (paths as one UTF-8 buffer plus offsets, ~100 bytes a row), so a table is a handful of
objects and reading a row writes none of its pages; a row becomes a small dict only when asked.
"""

from __future__ import annotations

import math
import operator
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, overload

import numpy as np

from vjepa.errors import DataError

FIELDS = ("path", "label", "media", "num_frames", "fps", "group")
NO_LABEL = -1  # a record without a label key: what ``ClipDataset`` has always read it as
_NULL_INT = np.iinfo(np.int64).min  # a null label or frame count (a real one never gets there)
_UTF8 = ("utf-8", "surrogateescape")  # a file name that is not UTF-8 round-trips unchanged


class Strings:
    """Read-only strings (or None) in one UTF-8 buffer: no Python object per string."""

    def __init__(self, values: Iterable[str | None]) -> None:
        encoded = [None if v is None else v.encode(*_UTF8) for v in values]
        self.valid = np.fromiter((e is not None for e in encoded), bool, len(encoded))
        lengths = np.fromiter((len(e) if e is not None else 0 for e in encoded), np.int64)
        self._set(np.frombuffer(b"".join(e for e in encoded if e is not None), np.uint8), lengths)

    @classmethod
    def from_arrow(cls, column: Any) -> Strings:
        """From an Arrow string column, through its buffers (no Python string is made)."""
        import pyarrow as pa

        arr = column.combine_chunks() if hasattr(column, "combine_chunks") else column
        arr = arr.cast(pa.large_string())
        n = len(arr)
        _, offsets_buf, data_buf = arr.buffers()
        offsets = np.frombuffer(offsets_buf, np.int64)[arr.offset : arr.offset + n + 1]
        data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.empty(0, np.uint8)
        self = cls.__new__(cls)
        self.valid = arr.is_valid().to_numpy(zero_copy_only=False).astype(bool, copy=True)
        self._set(data[offsets[0] : offsets[-1]].copy(), np.diff(offsets))
        return self

    def _set(self, data: np.ndarray, lengths: np.ndarray) -> None:
        self.data = data
        self.offsets = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=self.offsets[1:])

    def __len__(self) -> int:
        return len(self.valid)

    def __getitem__(self, i: int) -> str | None:
        if not self.valid[i]:
            return None
        return self.data[self.offsets[i] : self.offsets[i + 1]].tobytes().decode(*_UTF8)

    @property
    def nbytes(self) -> int:
        return self.data.nbytes + self.offsets.nbytes + self.valid.nbytes


class ClipRecords(Sequence):
    """The rows ``ClipDataset`` reads (``read_index`` rows), as columns; read-only.

    ``records[i]`` is a new dict with the keys of ``FIELDS`` and the row's values: None where
    the row had None or lacked the key, except a lacking label, which reads ``NO_LABEL``.
    """

    def __init__(
        self,
        path: Strings,
        label: np.ndarray,
        media: tuple[np.ndarray, tuple[str | None, ...]],
        num_frames: np.ndarray,
        fps: np.ndarray,
        group: Strings,
    ) -> None:
        self.path, self.label, self.num_frames, self.fps, self.group = (
            path, label, num_frames, fps, group,
        )  # fmt: skip
        self.media_codes, self.media_names = media
        n = len(path)
        if n and not path.valid.all():
            raise DataError(f"records: row {int(np.argmin(path.valid))} has no path")
        for name in ("label", "num_frames", "fps", "group", "media_codes"):
            if len(getattr(self, name)) != n:
                raise DataError(f"records: column {name} is not {n} rows long")
        for arr in (label, num_frames, fps, self.media_codes):
            arr.flags.writeable = False

    @classmethod
    def of(cls, records: Any) -> ClipRecords:
        """The table of any records ``ClipDataset`` accepts: a table, an Arrow table, or dicts."""
        if isinstance(records, ClipRecords):
            return records
        if _is_arrow_table(records):
            return cls.from_arrow(records)
        return cls.from_rows(records)

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> ClipRecords:
        """From dicts (``read_index`` rows, or any with a ``path``).

        Each field is gathered in one pass and converted by Arrow (~1.5 s per 1M rows); paths are
        encoded here, so a name that is not UTF-8 (``os.fsdecode``) survives.
        """
        import pyarrow as pa

        rows = rows if isinstance(rows, Sequence) else list(rows)
        paths = [r.get("path") for r in rows]
        if None in paths:  # fail here, not in a DataLoader worker an epoch later
            raise DataError(f"records: row {paths.index(None)} has no path")

        def column(name: str, kind: Any) -> Any:
            default = NO_LABEL if name == "label" else None
            try:
                return pa.chunked_array([pa.array([r.get(name, default) for r in rows], kind)])
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise DataError(f"records: column {name}: {exc}") from None

        return cls._build(Strings(paths), column)

    @classmethod
    def from_arrow(cls, table: Any) -> ClipRecords:
        """From an Arrow table with ``read_index``'s columns (others ignored; missing = null)."""
        import pyarrow as pa

        def column(name: str, kind: Any) -> Any:
            if name in table.column_names:
                return table.column(name).cast(kind)
            if name == "label":
                return pa.chunked_array([pa.array(np.full(table.num_rows, NO_LABEL))])
            return pa.chunked_array([pa.nulls(table.num_rows, kind)], kind)

        return cls._build(Strings.from_arrow(column("path", pa.string())), column)

    @classmethod
    def _build(cls, path: Strings, column: Callable[[str, Any], Any]) -> ClipRecords:
        """The table from its paths and ``column(name, arrow type)``, a field's Arrow column."""
        import pyarrow as pa
        import pyarrow.compute as pc

        def ints(name: str) -> np.ndarray:
            return pc.fill_null(column(name, pa.int64()), _NULL_INT).to_numpy().astype(np.int64)

        media = column("media", pa.string()).combine_chunks().dictionary_encode()
        names = (*media.dictionary.to_pylist(), None)
        if len(names) > 256:
            raise DataError(f"records: {len(names) - 1} distinct media values (expected a few)")
        codes = media.indices.fill_null(len(names) - 1).to_numpy(zero_copy_only=False)
        fps = pc.fill_null(column("fps", pa.float64()), np.nan).to_numpy()
        return cls(
            path,
            ints("label"),
            (codes.astype(np.uint8), names),
            ints("num_frames"),
            fps.astype(np.float64),
            Strings.from_arrow(column("group", pa.string())),
        )

    def __len__(self) -> int:
        return len(self.label)

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n, i = len(self), operator.index(i)
        if not -n <= i < n:
            raise IndexError(f"record {i} of {n}")
        i %= n
        label, frames, fps = int(self.label[i]), int(self.num_frames[i]), float(self.fps[i])
        return {
            "path": self.path[i],
            "label": None if label == _NULL_INT else label,
            "media": self.media_names[self.media_codes[i]],
            "num_frames": None if frames == _NULL_INT else frames,
            "fps": None if math.isnan(fps) else fps,
            "group": self.group[i],
        }

    @property
    def nbytes(self) -> int:
        """Bytes of the columns (what a worker would copy if it wrote every page)."""
        arrays = (self.label, self.num_frames, self.fps, self.media_codes)
        return self.path.nbytes + self.group.nbytes + sum(a.nbytes for a in arrays)


def _is_arrow_table(obj: Any) -> bool:
    pa = sys.modules.get("pyarrow")  # an Arrow table means pyarrow is already imported
    return pa is not None and isinstance(obj, pa.Table)
