"""Tidy table and pivot: cells must equal an independent mean/stdev computation."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import polars as pl

from vjepa.report import results, tables
from vjepa.report.plots import SUMMARY, save_plots
from vjepa.stages import report as report_stage

VALUES = {
    ("feature", "motion"): [0.61, 0.64, 0.58],
    ("feature", "appearance"): [0.80, 0.83, 0.79],
    ("pixel", "motion"): [0.41, 0.47, 0.45],
    ("pixel", "appearance"): [0.85, 0.84, 0.88],
    ("random_init", "motion"): [0.20, 0.22, 0.19],
    ("random_init", "appearance"): [0.50, 0.55, 0.52],
}


def _report() -> tuple[dict, dict]:
    probes, metrics = [], {}
    for (target, task), vals in VALUES.items():
        for seed, value in enumerate(vals):
            folder = f"runs/probe/{target}-{task}-s{seed}-0123456789"
            variant = target if target == "random_init" else "vjepa"
            probes.append(
                {
                    "dir": folder,
                    "labels": {
                        "variant": variant,
                        "target": target,
                        "task": task,
                        "label_fraction": 1.0,
                        "seed": seed,
                    },
                }
            )
            metrics[folder] = {"top1": value, "top5": min(1.0, value + 0.1)}
    probes.append(
        {
            "dir": "runs/probe/missing-0123456789",
            "labels": {
                "variant": "vjepa",
                "target": "pixel",
                "task": "motion",
                "label_fraction": 1.0,
                "seed": 9,
            },
        }
    )
    config = {
        "name": "t",
        "probes": probes,
        "report": {
            "rows": ["target"],
            "columns": ["task"],
            "metric": "top1",
            "baseline": "random_init",
        },
    }
    return config, metrics


def test_pivot_matches_statistics() -> None:
    config, metrics = _report()
    df, pv = results.pivot_report(config, metrics.get)
    assert isinstance(df, pl.DataFrame) and df.height == 19
    assert (pv.total, pv.missing) == (19, 1)
    for (target, task), vals in VALUES.items():
        cell = pv.cells[((target,), (task,))]
        assert abs(cell.mean - statistics.mean(vals)) < 1e-12
        assert abs(cell.std - statistics.stdev(vals)) < 1e-12
        assert cell.n == 3
        if target != "random_init":
            assert (
                abs(
                    cell.delta
                    - (statistics.mean(vals) - statistics.mean(VALUES[("random_init", task)]))
                )
                < 1e-12
            )
    assert pv.rows[-1] == ("random_init",)
    assert pv.best[("motion",)] == ("feature",) and pv.best[("appearance",)] == ("pixel",)


def test_formats() -> None:
    config, metrics = _report()
    _, pv = results.pivot_report(config, metrics.get)
    md = tables.markdown(pv, "t")
    mean = statistics.mean(VALUES[("feature", "motion")]) * 100
    assert f"**{mean:.1f} ± " in md and "(n=3)" in md and "1 of 19 probes missing" in md
    recs = json.loads(tables.to_json(pv))
    assert len(recs) == 6 and sum(r["best"] for r in recs) == 2
    assert tables.to_csv(pv).splitlines()[0] == "target,task,metric,mean,std,n,delta,best,baseline"
    rows = results.compare(pv, pv)
    assert all(r["diff"] == 0 for r in rows)


def test_report_stage_writes_parquet_table_and_plot(tmp_path: Path, monkeypatch) -> None:
    config, metrics = _report()
    config["report"]["rows"] = ["variant"]
    config["report"]["baseline"] = None
    for folder, m in metrics.items():
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "metrics.json").write_text(json.dumps(m))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs" / "report" / "t-0123456789"
    out.mkdir(parents=True)
    m = report_stage.run(config, out)
    assert m["n_probes"] == 19 and m["n_missing"] == 1 and m["plots"] == ["bars.png"]
    assert pl.read_parquet(out / "results.parquet").height == 19
    assert "| variant |" in (out / "table.md").read_text()
    assert (out / SUMMARY).read_text().startswith("label,mean,std,n,chance\n")
    df = pl.DataFrame(
        [
            {"variant": "a", "task": "motion", "label_fraction": f, "top1": f / 2, "done": True}
            for f in (0.05, 0.1, 1.0)
        ]
    )
    pv = results.pivot(df, ["variant", "label_fraction"], ["task"], "top1")
    assert save_plots(df, pv, tmp_path / "curve", "t") == ["label_efficiency.png"]
    assert (tmp_path / "curve" / "label_efficiency.png").stat().st_size > 1000


def test_baseline_delta_matches_the_other_row_keys() -> None:
    # label-efficiency tables: each fraction is compared with random init at the same fraction
    rows = []
    for target, offset in (("feature", 0.1), ("random_init", 0.0)):
        for fraction, base in ((0.05, 0.2), (0.5, 0.4), (1.0, 0.6)):
            for seed in range(2):
                rows.append(
                    {"target": target, "label_fraction": fraction, "task": "motion",
                     "seed": seed, "top1": base + offset + 0.01 * seed, "done": True}
                )  # fmt: skip
    pv = results.pivot(
        pl.DataFrame(rows), ["target", "label_fraction"], ["task"], "top1", "random_init"
    )
    for fraction in (0.05, 0.5, 1.0):
        assert abs(pv.cells[(("feature", fraction), ("motion",))].delta - 0.1) < 1e-12
        assert pv.cells[(("random_init", fraction), ("motion",))].delta is None
    assert [r[0] for r in pv.rows] == ["feature"] * 3 + ["random_init"] * 3
    assert [r[1] for r in pv.rows[3:]] == [0.05, 0.5, 1.0]
