"""Benchmark: the quickstart under the SLURM executor against the local one, on the same machine.

Each arm runs ``vjepa-exp run experiments/quickstart.yaml`` from scratch in its own fresh clone of
this repository (git + DVC, no stage outputs), one after the other, and records the wall time;
the SLURM arm adds ``executor=slurm`` (attached: the runner follows the jobs to the end) on the
cluster the environment points at (``scripts/slurm-up.sh``'s ``env.sh``). Both arms must print the
same result table. The ratio SLURM / local is the figure of interest (issue goal: <= 1.5x): what
SLURM costs over local subprocesses is scheduling latency (afterok chains, the scheduler's
interval) and any oversubscription (each job's threads follow its ``cpus_per_task``).

    source .vjepa/slurm-cluster/env.sh
    python bench/slurm_vs_local.py                 # ~2 x 3-5 min on 2 cores
    python bench/slurm_vs_local.py --arms slurm    # one arm
    python bench/slurm_vs_local.py --keep          # then: cd .vjepa/bench-slurm-vs-local/local
                                                   #       && python ../../../bench/noop.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def clone(base: Path, name: str) -> Path:
    root = base / name
    subprocess.run(["git", "clone", "-q", str(REPO), str(root)], check=True)
    return root


def table(text: str) -> list[str]:
    """The result table's rows (what both arms must agree on)."""
    return [ln for ln in text.splitlines() if ln.startswith("│")]


def run_arm(root: Path, extra: list[str]) -> tuple[float, str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "COLUMNS": "200"}
    env.pop("OMP_NUM_THREADS", None)  # each executor sets its own thread caps
    started = time.perf_counter()
    out = subprocess.run(
        [str(BIN / "vjepa-exp"), "run", "experiments/quickstart.yaml", *extra],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(
            f"{' '.join(extra) or 'local'}: failed\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        )
    return wall, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arms", nargs="+", default=["local", "slurm"], choices=["local", "slurm"])
    ap.add_argument(
        "--keep",
        action="store_true",
        help="keep the clones in .vjepa/bench-slurm-vs-local/ (e.g. for bench/noop.py there)",
    )
    args = ap.parse_args()
    cpus = os.cpu_count()
    load = os.getloadavg()
    print(f"{cpus} CPUs; load average at start {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}")
    results: dict[str, tuple[float, str]] = {}
    kept = REPO / ".vjepa" / "bench-slurm-vs-local"
    if args.keep:
        shutil.rmtree(kept, ignore_errors=True)
        kept.mkdir(parents=True)
    folder = (
        contextlib.nullcontext(str(kept))
        if args.keep
        else tempfile.TemporaryDirectory(prefix="slurm-vs-local-", dir=REPO / ".vjepa")
    )
    with folder as tmp:
        for arm in args.arms:
            root = clone(Path(tmp), arm)
            extra = ["executor=slurm"] if arm == "slurm" else []
            results[arm] = run_arm(root, extra)
            ran = re.search(r"ran (\d+) stages", results[arm][1])
            print(f"{arm:6s} {results[arm][0]:7.1f} s  ({ran[1] if ran else '?'} stages)")
    if len(results) == 2:
        (t_local, out_local), (t_slurm, out_slurm) = results["local"], results["slurm"]
        print(f"slurm / local: {t_slurm / t_local:.2f}x")
        same = table(out_local) == table(out_slurm)
        print(f"same result table: {same}")
        if not same:
            print("\n".join(table(out_local)), "\n---\n", "\n".join(table(out_slurm)))


if __name__ == "__main__":
    main()
