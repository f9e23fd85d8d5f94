"""Indexing benchmark at paper scale: a 1M-row K400-format dataset indexed with ``probe="none"``.

    .venv/bin/python bench/index_scale.py                    # 1M rows (900k train, 100k val)
    .venv/bin/python bench/index_scale.py --rows 2000000 --json out.json

Writes a few real small videos (PyAV) and, in a temporary folder, ``train.csv`` and ``val.csv`` in
the reference format (``/abs/path label``; the videos repeated, or with ``--distinct``
K400-like names, one per row). Each step runs in a fresh subprocess, which reports its own wall time
and peak RSS (``getrusage``): ``inspect_source`` of ``train.csv`` cold and cached,
``build_dataset_index(..., probe="none")`` of both splits, and ``read_index`` of each split.
Goals: index <= 60 s and <= 1 GiB at 1M rows; reading one split back <= 5 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

STEPS = ("inspect cold", "inspect cached", "build", "read val", "read train")
GOAL_ROWS = 1_000_000
GOALS = {"build": (60.0, 1024.0), "read val": (5.0, None), "read train": (5.0, None)}

STEP = r"""
import json, resource, sys, time
from vjepa.data.index import build_dataset_index, read_index
from vjepa.data.sources import inspect_source
step, work = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if step.startswith("inspect"):
    info = inspect_source(f"{work}/train.csv", cache_dir=f"{work}/cache")
    extra = {"rows": info.rows, "max_label": info.max_label}
elif step == "build":
    s = build_dataset_index("k400", {"train": [f"{work}/train.csv"], "val": [f"{work}/val.csv"]},
                            f"{work}/index", probe="none")
    extra = {"rows": s.rows, "splits": s.splits}
else:
    rows = read_index(f"{work}/index/index.parquet", task="k400", split=step.split()[1])
    extra = {"rows": len(rows)}
wall = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall_s": round(wall, 2), "peak_rss_mib": round(rss), **extra}))
"""


def make_videos(folder: Path, count: int) -> list[Path]:
    """``count`` real 16-frame 32x32 H.264 files."""
    import numpy as np

    from vjepa.data.video import write_video

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"clip{i}.mp4"
        write_video(path, rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8), fps=8)
        paths.append(path)
    return paths


def write_csv(
    path: Path, videos: list[Path], rows: int, start: int, distinct: bool, classes: int = 400
) -> None:
    """``rows`` reference-format lines, labels cycling over ``classes``.

    By default every line names one of the real ``videos`` (paths repeat). ``distinct`` writes
    K400-like names instead, one per line (``.../class_017/00000001234_000010_000020.mp4``),
    which do not exist: probe "none" opens nothing, and distinct paths are the realistic cost of
    the path column (repeated ones compress to a few bytes).
    """
    root = videos[0].parent
    with open(path, "w") as fh:
        for i in range(start, start + rows):
            label = i % classes
            if distinct:
                fh.write(f"{root}/class_{label:03d}/{i:011d}_000010_000020.mp4 {label}\n")
            else:
                fh.write(f"{videos[i % len(videos)]} {label}\n")


def run_step(step: str, work: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", STEP, step, str(work)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"step {step!r} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_all(args: argparse.Namespace) -> dict:
    """Write the dataset in a temporary folder and time every step on it."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        videos = make_videos(work / "videos", args.videos)
        val = int(args.rows * args.val_fraction)
        write_csv(work / "train.csv", videos, args.rows - val, 0, args.distinct)
        write_csv(work / "val.csv", videos, val, args.rows - val, args.distinct)
        results: dict = {"rows": args.rows, "train": args.rows - val, "val": val}
        results["distinct"] = args.distinct
        results["csv_mb"] = round((work / "train.csv").stat().st_size / 1e6, 1)
        for step in STEPS:
            results[step] = run_step(step, work)
        results["index_mb"] = round((work / "index" / "index.parquet").stat().st_size / 1e6, 1)
    return results


def goal_text(step: str, r: dict, rows: int) -> str:
    """The step's goals and whether it met them (goals are for 1M rows only)."""
    wall_goal, rss_goal = GOALS.get(step, (None, None)) if rows == GOAL_ROWS else (None, None)
    goal = []
    if wall_goal is not None:
        goal.append(f"<= {wall_goal:g} s {'ok' if r['wall_s'] <= wall_goal else 'MISSED'}")
    if rss_goal is not None:
        goal.append(f"<= {rss_goal:g} MiB {'ok' if r['peak_rss_mib'] <= rss_goal else 'MISSED'}")
    return ", ".join(goal)


def print_table(results: dict, videos: int) -> None:
    rows = results["rows"]
    paths = "distinct paths" if results["distinct"] else f"paths of {videos} real videos repeated"
    print(f"{rows} rows ({results['train']} train, {results['val']} val, {paths}); "
          f"train.csv {results['csv_mb']:.0f} MB")  # fmt: skip
    goals = "goal" if rows == GOAL_ROWS else f"(goals are for {GOAL_ROWS} rows)"
    print(f"{'step':<16}{'rows':>10}{'wall s':>9}{'peak RSS MiB':>14}  {goals}")
    for step in STEPS:
        r = results[step]
        line = f"{step:<16}{r['rows']:>10}{r['wall_s']:>9.2f}{r['peak_rss_mib']:>14}"
        print(f"{line}  {goal_text(step, r, rows)}")
    print(f"index.parquet {results['index_mb']} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the dataset in all")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--videos", type=int, default=4, help="real video files the rows repeat")
    ap.add_argument("--distinct", action="store_true", help="K400-like distinct paths")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    results = run_all(args)
    print_table(results, args.videos)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
