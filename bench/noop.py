"""Benchmark: `vjepa-exp run SPEC` and `vjepa-exp status SPEC` when nothing is stale (goal <= 2 s).

Run it in a checkout where the spec has run to the end (``make quickstart`` first); a stale
stage would make ``run`` work, so the script stops if ``run`` does anything. Each command runs
``--rounds`` times, alternating with the CLI's bare start-up (``vjepa-exp --help``) as the
baseline; it prints the median wall and CPU seconds (children included) and the ratio to the
start-up.

    python bench/noop.py                                  # experiments/quickstart.yaml
    python bench/noop.py --spec experiments/ablation_targets.yaml --rounds 7
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "vjepa-exp"


def timed(args: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s of the command and its children, stdout) of one ``vjepa-exp`` call."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run([str(BIN), *args], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="experiments/quickstart.yaml")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    commands = {"start-up": ["--help"], "run": ["run", args.spec], "status": ["status", args.spec]}
    seen: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, cmd in commands.items():
            wall, cpu, out = timed(cmd)
            if name == "run" and "nothing to do" not in out:
                raise SystemExit(f"{args.spec} has stale stages: run it to the end first\n{out}")
            seen[name].append((wall, cpu))
    base = statistics.median(w for w, _ in seen["start-up"])
    print(f"{args.spec}, {args.rounds} rounds, median of each:")
    for name, rows in seen.items():
        wall = statistics.median(w for w, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        spread = max(w for w, _ in rows) - min(w for w, _ in rows)
        print(
            f"  {name:9s} wall {wall:5.2f} s (spread {spread:4.2f})  CPU {cpu:5.2f} s  "
            f"{wall / base:4.1f}x start-up"
        )


if __name__ == "__main__":
    main()
