"""Byte sizes as people write them (``200GB``, ``1.5TiB``, ``50%`` of a disk) and print them."""

from __future__ import annotations

import re
from typing import Any

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKMGTP]?)(i?)B\s*$")
_SHARE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_POWERS = {"": 0, "k": 1, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}


def parse_size(value: Any) -> tuple[int | None, float | None]:
    """Bytes, ``200GB`` or ``50%`` -> (bytes, None) or (None, share of a disk); ValueError else."""
    if isinstance(value, bool):
        raise ValueError(f"expected bytes, a size like 200GB or a share like 50%, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must be >= 0 bytes, got {value}")
        return value, None
    if isinstance(value, str):
        if m := _SHARE.match(value):
            share = float(m[1]) / 100
            if not 0 < share <= 1:
                raise ValueError(f"a share of the free disk must be in (0%, 100%], got {value!r}")
            return None, share
        if m := _SIZE.match(value):
            base = 1024 if m[3] else 1000
            return int(float(m[1]) * base ** _POWERS[m[2]]), None
    raise ValueError(f"expected bytes, a size like 200GB or a share like 50%, got {value!r}")


def human_bytes(n: float) -> str:
    """``18.5 TB``: decimal units, as disks are sold and ``df -H`` prints."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
