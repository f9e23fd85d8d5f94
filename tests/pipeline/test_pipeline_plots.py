"""The report's pictures (chance lines, seeds as points, spread) and their DVC plots on a real run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
import yaml
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.container import ErrorbarContainer

from vjepa.pipeline.plots import dvc_plots, write_spec_plots
from vjepa.report import plots, results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSES = {"motion": 8, "appearance": 6}
BIN = Path(sys.executable).parent


def _df(fractions=(1.0,), seeds=(0, 1, 2), classes=True) -> pl.DataFrame:
    rows = []
    for target, base in (("feature", 0.5), ("pixel", 0.4), ("random_init", 0.2)):
        for task, n in CLASSES.items():
            for fraction in fractions:
                for seed in seeds:
                    row = {"variant": target, "target": target, "task": task,
                           "label_fraction": fraction, "seed": seed, "dir": f"{target}{seed}",
                           "done": True, "top1": base * fraction ** 0.3 + 0.02 * seed}  # fmt: skip
                    if classes:
                        row["num_classes"] = float(n)
                    rows.append(row)
    return pl.DataFrame(rows)


def _pivot(df: pl.DataFrame, rows: list[str]) -> results.Pivot:
    return results.pivot(df, rows, ["task"], "top1", "random_init")


def _chance_lines(ax) -> list[float]:
    return [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]


def _points(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))


def _save_png(fig, path: Path) -> None:
    fig.savefig(path, format="png", dpi=plots.DPI)
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_bars_show_chance_seeds_and_spread(tmp_path: Path) -> None:
    df = _df()
    fig, name = plots.figure(df, _pivot(df, ["target"]), "tiny")
    assert name == plots.BARS
    assert fig.get_suptitle().startswith("tiny: top1 (%)")
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["appearance", "motion"]
    for ax in axes:
        task = ax.get_title()
        assert _chance_lines(ax) == [pytest.approx(100 / CLASSES[task])]
        assert _points(ax) == 3 * 3  # three rows, one point per seed
        bars = [c for c in ax.containers if not isinstance(c, ErrorbarContainer)]
        assert sum(len(b) for b in bars) == 3
        assert sum(isinstance(c, ErrorbarContainer) for c in ax.containers) == 3
        assert ax.get_ylabel() == "top1 (%)" and ax.get_xlabel() == "target"
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels == ["feature", "pixel", "random_init"]  # the baseline last
        heights = [b.get_height() for b in bars[0]]
        assert heights[0] == pytest.approx(100 * (0.5 + 0.02))  # the mean, in percent
    _save_png(fig, tmp_path / "bars.png")


def test_one_seed_has_no_error_bar_and_unknown_classes_no_chance() -> None:
    df = _df(seeds=(0,), classes=False)
    fig, _ = plots.figure(df, _pivot(df, ["target"]), "tiny")
    for ax in fig.get_axes():
        assert not any(isinstance(c, ErrorbarContainer) for c in ax.containers)
        assert _chance_lines(ax) == [] and _points(ax) == 3


def test_label_efficiency_bands_points_chance_log_x(tmp_path: Path) -> None:
    fractions = (0.05, 0.1, 0.5, 1.0)
    df = _df(fractions=fractions)
    fig, name = plots.figure(df, _pivot(df, ["target", "label_fraction"]), "le")
    assert name == plots.CURVE and fig.get_suptitle().startswith("le: top1 (%)")
    for ax in fig.get_axes():
        assert ax.get_xscale() == "log"
        assert [t for t in ax.get_xticks()] == [f * 100 for f in fractions]
        assert _chance_lines(ax) == [pytest.approx(100 / CLASSES[ax.get_title()])]
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bands) == 3  # one mean +- std band per row
        assert _points(ax) == 3 * len(fractions) * 3
        assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"feature", "random_init"}
        assert "labelled" in ax.get_xlabel()
    _save_png(fig, tmp_path / "curve.png")


def test_summary_csv_is_the_cells_with_chance() -> None:
    df = _df()
    text = plots.summary_csv(df, _pivot(df, ["target"]))
    lines = text.splitlines()
    assert lines[0] == "label,mean,std,n,chance" and len(lines) == 1 + 6
    assert lines[1].startswith("feature · appearance,52,2,3,16.67")


def test_tidy_carries_the_class_count(tmp_path: Path) -> None:
    import torch

    probe = tmp_path / "runs" / "probe" / "a-0123456789"
    probe.mkdir(parents=True)
    (probe / "metrics.json").write_text(json.dumps({"top1": 0.5}))
    torch.save({"classifier": {"w": torch.zeros(2)}, "num_classes": 8}, probe / "probe.pt")
    other = tmp_path / "runs" / "probe" / "b-0123456789"
    other.mkdir(parents=True)
    (other / "metrics.json").write_text(json.dumps({"top1": 0.7, "num_classes": 6}))
    config = {
        "probes": [
            {"dir": "runs/probe/a-0123456789", "labels": {"task": "motion", "seed": 0}},
            {"dir": "runs/probe/b-0123456789", "labels": {"task": "image", "seed": 0}},
        ]
    }
    read = results.read_folders(tmp_path)
    df = results.tidy(config, read, lambda d: results.probe_classes(tmp_path / d))
    assert dict(zip(df["task"], df["num_classes"], strict=True)) == {"motion": 8.0, "image": 6.0}
    assert plots.chance_levels(df.iter_rows(named=True), "top5") == {
        "motion": pytest.approx(62.5),
        "image": pytest.approx(500 / 6),
    }
    plain = results.tidy(config, read)  # no lookup: only what the metrics say
    assert dict(zip(plain["task"], plain["num_classes"], strict=True)) == {
        "motion": None,
        "image": 6.0,
    }
    assert results.probe_classes(tmp_path / "nowhere") is None


def test_loss_png_is_titled_labelled_and_smoothed(tmp_path: Path, monkeypatch) -> None:
    from matplotlib.figure import Figure

    from vjepa.train.plots import plot_losses

    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"step": i, "loss": 1 / (1 + i)}) + "\n" for i in range(60)))
    seen, original = [], Figure.savefig

    def savefig(self, *args, **kwargs):  # the figure as it is saved
        seen.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    plot_losses({"feature target": log}, tmp_path / "loss.png")
    (fig,) = seen
    (ax,) = fig.get_axes()
    assert fig._suptitle.get_text() == "pretraining loss" and ax.get_title() == "feature target"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("step", "loss")
    raw, mean = ax.get_lines()
    assert raw.get_alpha() < 0.5 and mean.get_linewidth() > raw.get_linewidth()
    assert (tmp_path / "loss.png").read_bytes()[:8] == PNG_MAGIC


def test_dvc_plots_section_keeps_hand_written_and_is_idempotent() -> None:
    names = ["pretrain-feature-0123456789", "probe-x-0123456789", "report-tiny-0123456789"]
    hand = [{"my plots": {"x": "a"}}, "notes/curve.csv"]
    section = dvc_plots(names, hand)
    assert section[:2] == hand
    assert section[2] == "runs/pretrain/feature-0123456789/loss.png"
    assert list(section[3]) == ["runs/report/tiny-0123456789/summary.csv"]
    assert dvc_plots(names, section) == section
    assert dvc_plots(names[:1], section) == [*hand, section[2]]


# ------------------------------------------------------------------------------------------
# a tiny finished run with real DVC: stand-in stage bodies, the real report stage

FAKE = """
import os, sys, types, json
if os.environ.get("VJEPA_FAKE_STAGES") == "1":
    def data(config, out):
        (out / "index.parquet").write_text("index"); return {"videos": 4}
    def pretrain(config, out):
        from vjepa.train.plots import plot_losses
        (out / "ckpt").mkdir(exist_ok=True); (out / "ckpt" / "latest.pt").write_text("resume")
        (out / "checkpoint.pt").write_text("c")
        with open(out / "log.jsonl", "w") as fh:
            for i in range(40):
                fh.write(json.dumps({"step": i, "loss": 1.0 / (1 + i)}) + "\\n")
        plot_losses({"target": out / "log.jsonl"}, out / "loss.png"); return {"loss": 0.1}
    def extract(config, out):
        (out / "features").mkdir(); (out / "features" / "manifest.json").write_text("{}")
        return {"n": 4}
    def probe(config, out):
        (out / "probe.pt").write_text("p")
        seed = config["seed"]
        return {"top1": 0.3 + 0.05 * seed, "top5": 0.9, "num_classes": 8,
                "label_fraction": config["label_fraction"]}
    for _name, _fn in (("data", data), ("pretrain", pretrain), ("extract", extract), ("probe", probe)):
        _m = types.ModuleType(f"vjepa.stages.{_name}"); _m.run = _fn
        sys.modules[f"vjepa.stages.{_name}"] = _m
"""

SPEC = """\
name: tiny
defaults:
  - data: synth_tiny
seeds: [0, 1]
seed_scope: probe
tasks: [motion]
ablate:
  pretrain.target: [feature, pixel]
report: {rows: [target], columns: [task], metric: top1}
"""


def _run(args: list[str], root: Path, env: dict[str, str]) -> str:
    out = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{' '.join(args)}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def test_a_finished_run_shows_its_dvc_plots_and_redraws(tmp_path: Path, monkeypatch) -> None:
    root, fake = tmp_path / "proj", tmp_path / "fake"
    root.mkdir()
    fake.mkdir()
    (fake / "sitecustomize.py").write_text(FAKE)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(fake),
        "VJEPA_FAKE_STAGES": "1",
        "DVC_NO_ANALYTICS": "1",
    }
    _run(["git", "init", "-q"], root, env)
    _run([str(BIN / "dvc"), "init", "-q"], root, env)
    (root / "experiments").mkdir()
    (root / "experiments" / "tiny.yaml").write_text(textwrap.dedent(SPEC))
    _run([str(BIN / "vjepa-exp"), "run", "experiments/tiny.yaml", "-j", "2"], root, env)

    dvc_yaml = yaml.safe_load((root / "dvc.yaml").read_text())
    # the section render writes (set here too, so the check holds before and after it is wired)
    dvc_yaml["plots"] = dvc_plots(dvc_yaml["stages"], dvc_yaml.get("plots"))
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    shown = json.loads(_run([str(BIN / "dvc"), "plots", "show", "--json"], root, env))
    assert not shown.get("errors"), shown["errors"]
    report = next(k for k in shown["data"] if k.endswith("/summary.csv"))
    values = shown["data"][report][0]["content"]["data"]["values"]
    assert sorted(v["label"] for v in values) == ["feature · motion", "pixel · motion"]
    assert [float(v["mean"]) for v in values] == [32.5, 32.5]
    assert {float(v["chance"]) for v in values} == {12.5}
    losses = [k for k in shown["data"] if k.endswith("/loss.png")]
    assert len(losses) == 2 and all(shown["data"][k][0]["type"] == "image" for k in losses)

    report_dir = next((root / "runs" / "report").iterdir())
    assert (report_dir / plots.BARS).read_bytes()[:8] == PNG_MAGIC

    from vjepa.pipeline.compiler import compile_spec

    monkeypatch.chdir(root)
    compiled = compile_spec("experiments/tiny.yaml", [], root, check_paths=False)
    paths = write_spec_plots(root, compiled)
    assert [p.name for p in paths] == [plots.BARS, "loss.png", "loss.png"]
    assert paths[0].parent == root / "runs" / "plots" / "tiny"
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in paths)
    # the stage's own picture is the same drawing as the redrawn one
    assert paths[0].read_bytes() == (report_dir / plots.BARS).read_bytes()


def test_the_report_stage_runs_nothing_of_the_platform() -> None:
    from vjepa.pipeline.code_deps import SOURCE_ROOT, _imported_modules, modules_run_by

    run = modules_run_by("report")
    assert "vjepa.report.plots" in run and "vjepa.report.tables" in run
    assert not [m for m in run if m.startswith(("vjepa.pipeline", "cli"))], sorted(run)
    for path in sorted((SOURCE_ROOT / "vjepa" / "report").glob("*.py")):
        imported = _imported_modules(path, f"vjepa.report.{path.stem}")
        assert not [m for m in imported if m.startswith(("vjepa.pipeline", "vjepa.stages"))], path
