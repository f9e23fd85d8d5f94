"""Print the calibration results (runs/science/results.jsonl) one line per run."""

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "runs" / "science" / "results.jsonl"

for line in RESULTS.read_text().splitlines():
    r = json.loads(line)
    acc = {
        k: f"{v['val']:.1f} (train {v['train']:.1f}, ep {v['best_epoch']})"
        for k, v in r.items()
        if "/" in k
    }
    loss = r.get("loss", [[None, None]])[-1][1]
    print(
        r["mode"],
        r["design"],
        r.get("target", "-"),
        r.get("steps", "-"),
        f"seed={r['seed']}",
        r["tag"] or "-",
        f"wall={r.get('pretrain_s', '-')}",
        f"loss={loss}",
        acc,
    )
