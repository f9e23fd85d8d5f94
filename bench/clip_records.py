"""Memory of ClipDataset's records at paper scale: a list of dicts vs the columnar ``ClipRecords``.

    .venv/bin/python bench/clip_records.py                  # 1M rows, 4 forked readers
    .venv/bin/python bench/clip_records.py --rows 2000000 --readers 10 --json out.json

Writes a K400-format CSV of ``--rows`` distinct K400-like paths (~63 characters:
``/data/kinetics400/train/class_017/<11-char id>_000010_000020.mp4``) and indexes it with
``build_dataset_index(..., probe="none")``. Then, for each way of holding the records, a fresh
subprocess loads them and reports its RSS growth, and forks ``--readers`` processes that each read
every record's path and label, as forked DataLoader workers of an epoch do. Memory of the
processes together is the sum of their ``Pss`` (``/proc/<pid>/smaps_rollup``: shared pages split
between their users), measured before the fork and once every reader has read everything; the
growth is what copy-on-write copied. Ways: ``dicts`` (``read_index`` rows, what ClipDataset
kept), ``table`` (``ClipRecords.from_arrow`` of the index's columns), ``table from dicts``
(``ClipRecords.from_rows`` of ``read_index`` rows, which are then dropped: what the trainer and
``extract`` pass today).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("dicts", "table", "table from dicts")
MIB = 1024 * 1024


def write_csv(path: Path, rows: int, classes: int = 400, seed: int = 0) -> None:
    """``rows`` reference-format lines (``/abs/path label``) of distinct K400-like names."""
    import numpy as np

    alphabet = np.frombuffer(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", np.uint8
    )
    ids = alphabet[np.random.default_rng(seed).integers(0, 64, (rows, 11))].view("S11")[:, 0]
    with open(path, "w") as fh:
        for i, yt in enumerate(ids.tolist()):
            label = i % classes
            fh.write(f"/data/kinetics400/train/class_{label:03d}/{yt.decode()}_000010_000020.mp4")
            fh.write(f" {label}\n")


def memory(pid: int | str = "self") -> dict[str, int]:
    """``Rss``, ``Pss`` and ``Private_Dirty`` of a process, in bytes."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss", "Private_Dirty"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def load(mode: str, index: Path):
    """The records of the index held the way ``mode`` says."""
    from vjepa.data.index import read_index
    from vjepa.data.records import FIELDS, ClipRecords

    if mode == "dicts":
        return read_index(index)
    if mode == "table":
        import pyarrow.parquet as pq

        return ClipRecords.from_arrow(pq.read_table(index, columns=list(FIELDS)))
    rows = read_index(index)
    records = ClipRecords.from_rows(rows)
    del rows
    return records


def return_freed_memory() -> None:
    """Hand freed memory back to the OS (Arrow's pool, glibc's heap): RSS is then what is held.

    Loading leaves freed temporaries in the allocators (the Arrow table read for ``table``, the
    dicts of ``table from dicts``), which a long-lived process would reuse, not hold twice.
    """
    import ctypes

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def read_all(records) -> int:
    """Every record's path and label, as the workers of one epoch read them between them."""
    total = 0
    for i in range(len(records)):
        rec = records[i]
        total += len(rec["path"]) + rec["label"]
    return total


def fork_readers(records, readers: int) -> dict:
    """Fork ``readers`` processes that each read every record; memory once all are done."""
    done_r, done_w = os.pipe()
    go_r, go_w = os.pipe()
    pids = []
    for _ in range(readers):
        pid = os.fork()
        if pid == 0:  # a reader: read, report its time, hold its pages until measured
            code = 1
            try:
                os.close(done_r), os.close(go_w)
                t0 = time.perf_counter()
                read_all(records)
                os.write(done_w, struct.pack("d", time.perf_counter() - t0))
                os.read(go_r, 1)  # EOF when the parent has measured
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(done_w), os.close(go_r)
    seconds = [struct.unpack("d", _read_exact(done_r, 8))[0] for _ in pids]
    parent, children = memory(), [memory(pid) for pid in pids]
    os.close(go_w)
    for pid in pids:
        os.waitpid(pid, 0)
    return {
        "pss_after_mib": (parent["Pss"] + sum(c["Pss"] for c in children)) / MIB,
        "reader_private_dirty_mib": [c["Private_Dirty"] / MIB for c in children],
        "read_s": max(seconds),
    }


def _read_exact(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise SystemExit("a reader died before reporting")
        data += chunk
    return data


def hold(mode: str, index: Path, readers: int) -> dict:
    """One subprocess's measurements (run by ``--hold``).

    The baseline is taken after loading a 100-row index the same way: imports, Arrow's and
    Parquet's first-use set-up (~40 MiB) are not counted as the records'.
    """
    read_all(load(mode, index.parent / "warmup.parquet"))
    gc.collect()
    return_freed_memory()
    base = memory()
    t0 = time.perf_counter()
    records = load(mode, index)
    gc.collect()
    load_s = time.perf_counter() - t0
    loaded = memory()
    return_freed_memory()
    held = memory()
    out = {
        "rows": len(records),
        "load_s": load_s,
        "rss_loaded_mib": (loaded["Rss"] - base["Rss"]) / MIB,
        "rss_mib": (held["Rss"] - base["Rss"]) / MIB,
        "pss_before_mib": held["Pss"] / MIB,
        "nbytes_mib": getattr(records, "nbytes", 0) / MIB,
    }
    out.update(fork_readers(records, readers))
    out["growth_mib"] = out["pss_after_mib"] - out["pss_before_mib"]
    return out


def run_mode(mode: str, index: Path, readers: int) -> dict:
    cmd = [sys.executable, __file__, "--hold", mode, "--index", str(index)]
    out = subprocess.run([*cmd, "--readers", str(readers)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{mode!r} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_all(rows: int, readers: int) -> dict:
    from vjepa.data.index import build_dataset_index

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_csv(work / "index.csv", rows)
        write_csv(work / "warmup.csv", 100, seed=1)
        for name in ("index", "warmup"):
            target = work / "index" / f"{name}.parquet"
            build_dataset_index("k400", {"train": [work / f"{name}.csv"]}, target, probe="none")
        index = work / "index" / "index.parquet"
        return {"rows": rows, "readers": readers, **{m: run_mode(m, index, readers) for m in MODES}}


def print_table(results: dict) -> None:
    n = results["readers"]
    print(f"{results['rows']} rows, {n} forked readers each reading every path and label")
    head = f"{'records':<18}{'load s':>7}{'RSS loaded':>11}{'held':>6}{'PSS before':>11}"
    print(f"{head}{'after':>7}{'growth':>7}{'per reader':>11}{'read s':>7}  (MiB)")
    for mode in MODES:
        r = results[mode]
        dirty = sum(r["reader_private_dirty_mib"]) / n
        print(
            f"{mode:<18}{r['load_s']:>7.2f}{r['rss_loaded_mib']:>11.0f}{r['rss_mib']:>6.0f}"
            f"{r['pss_before_mib']:>11.0f}{r['pss_after_mib']:>7.0f}{r['growth_mib']:>7.0f}"
            f"{dirty:>11.1f}{r['read_s']:>7.2f}"
        )
    d, t = results["dicts"], results["table"]
    print(f"table columns: {t['nbytes_mib']:.0f} MiB")
    print(
        f"dicts / table: RSS {d['rss_mib'] / t['rss_mib']:.1f}x, "
        f"growth with {n} readers {d['growth_mib'] / max(t['growth_mib'], 1e-9):.0f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--readers", type=int, default=4, help="forked processes reading every row")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--hold", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.hold:
        print(json.dumps(hold(args.hold, args.index, args.readers)))
        return
    results = run_all(args.rows, args.readers)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
