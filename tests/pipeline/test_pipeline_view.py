"""The live view of a run and ``status``: real stage folders with ``progress.json`` written by the
real writer, a real rich Console at 80 columns, the real CLI in-process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cli.main import app
from vjepa.errors import UserError
from vjepa.pipeline import status
from vjepa.pipeline.cancel import interrupt_runners, live_runners
from vjepa.pipeline.compiler import compile_spec
from vjepa.pipeline.eta import run_eta
from vjepa.pipeline.executors.base import JobState
from vjepa.pipeline.executors.local import LocalExecutor
from vjepa.pipeline.follow import follow
from vjepa.pipeline.graph import out_dir
from vjepa.pipeline.runner import Runner
from vjepa.pipeline.view import RunPanel, RunView, eta_text, shorten, status_view
from vjepa.pipeline.watch import (
    Progress,
    RunSnap,
    StageSnap,
    from_runner,
    from_status,
    stage_progress,
)
from vjepa.utils.progress import ProgressWriter

SPEC = """\
name: tiny
defaults:
  - data: synth_tiny
seeds: [0]
tasks: [motion]
ablate:
  pretrain.target: [feature, pixel]
baselines:
  random_init: {encoder: random}
report: {rows: [target], columns: [task], metric: top1, baseline: random_init}
"""
WIDTH = 80
NOW = 1_700_000_000.0


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Any]:
    """A project folder holding the tiny spec, compiled (the CLI finds it from the cwd)."""
    root = tmp_path / "proj"
    (root / "experiments").mkdir(parents=True)
    (root / "experiments" / "tiny.yaml").write_text(textwrap.dedent(SPEC))
    monkeypatch.chdir(root)
    return root, compile_spec(Path("experiments/tiny.yaml"), [], root, check_paths=False)


def stage(compiled: Any, kind: str, *words: str) -> str:
    """The one stage of ``kind`` whose name holds every word."""
    (name,) = [
        s.name for s in compiled.stages if s.kind == kind and all(w in s.name for w in words)
    ]
    return name


def write_progress(
    root: Path,
    name: str,
    phase: str,
    unit: str,
    done: int,
    total: int,
    figures: dict[str, float],
    elapsed: float = 60.0,
    now: float = NOW,
) -> None:
    """What a stage running for ``elapsed`` seconds at a steady rate has written by ``now``."""
    times = iter([now - elapsed, now - elapsed, now])
    writer = ProgressWriter(root / out_dir(name), phase, unit, clock=lambda: next(times))
    writer.update(0, total)
    writer.update(done, total, figures)


def render(renderable: Any, width: int = WIDTH) -> str:
    console = Console(width=width, record=True, force_terminal=True, color_system="truecolor")
    console.print(renderable)
    return console.export_text()


def assert_fits(text: str, width: int = WIDTH) -> None:
    wide = [line for line in text.splitlines() if len(line) > width]
    assert not wide, f"lines over {width} columns: {wide}"


def bar_fraction(line: str) -> float:
    done, rest = line.count("━"), line.count("─")
    assert done + rest >= 10, line
    return done / (done + rest)


def live_runner(root: Path, compiled: Any) -> Runner:
    """A runner in the middle of the tiny run, as its loop leaves its attributes: two stages
    running (with progress files), five done, one failed, the rest pending."""
    runner = Runner(root, compiled, compiled.stages, LocalExecutor(jobs=2), False, None)
    runner.states = {s.name: JobState.PENDING for s in compiled.stages}
    done = [stage(compiled, "data")] + [s.name for s in compiled.stages if s.kind == "extract"][:4]
    for i, name in enumerate(done):
        runner.states[name] = JobState.DONE
        runner.started[name], runner.ended[name] = NOW - 500 + 40 * i, NOW - 470 + 40 * i
    failed = stage(compiled, "pretrain", "pixel")
    runner.states[failed] = JobState.FAILED
    runner.started[failed], runner.ended[failed] = NOW - 300, NOW - 290
    pretrain = stage(compiled, "pretrain", "feature")
    probe = stage(compiled, "probe", "feature")
    for name in (pretrain, probe):
        runner.states[name] = JobState.RUNNING
        runner.started[name] = NOW - 61
    figures = {"loss": 0.41234, "lr": 6.25e-4, "clips_per_s": 85.23}
    write_progress(root, pretrain, "pretrain", "step", 120, 300, figures)  # 2 steps/s: 90 s left
    write_progress(root, probe, "probe", "epoch", 6, 20, {"loss": 1.1, "best_val": 0.634})
    return runner


def test_live_view_at_80_columns_shows_bars_figures_and_etas(project) -> None:
    root, compiled = project
    runner = live_runner(root, compiled)
    text = render(RunPanel(from_runner(runner, now=NOW)))
    assert_fits(text)
    lines = text.splitlines()
    # the pretrain stage: its bar at 120/300, its figures, its own ETA (180 steps at 2/s)
    step = next(line for line in lines if "120/300 step" in line)
    assert "ETA 1m30s" in step and abs(bar_fraction(step) - 0.4) < 0.05
    assert "loss 0.412  lr 6.25e-04  clips/s 85.2" in text
    epoch = next(line for line in lines if "6/20 epoch" in line)
    assert "ETA 2m20s" in epoch and abs(bar_fraction(epoch) - 0.3) < 0.05  # 14 epochs at 0.1/s
    assert "best val 0.634" in text
    # the probe's 80-character name is cut in the middle: its kind and its uid stay
    probe = stage(compiled, "probe", "feature")
    assert len(probe) > WIDTH - 10 and probe not in text
    short = next(line for line in lines if line.startswith("▸ probe-"))
    assert "…" in short and probe[-11:] in short and short[2:].startswith(probe[:20])
    # finished stages are one summary line and the last three, not one row each
    assert "finished: 5 done, 1 failed, 0 cancelled" in text
    last = [line for line in lines if line.startswith(("  done ", "  failed "))]
    assert len(last) == 3 and all(line.endswith(("30.0s", "10.0s")) for line in last), last
    assert "pending: 5 (2 extract, 2 probe, 1 report)" in text
    # the report has no finished or running stage of its kind: the run's ETA is a lower bound
    header = lines[0]
    assert header.startswith("tiny: 6/13 stages · 2 running · 5 pending · 1 failed · ETA >")
    overall = lines[1]
    assert abs(bar_fraction(overall) - (6 + 0.4 + 0.3) / 13) < 0.03


def test_the_live_view_draws_on_a_terminal_and_prints_events_elsewhere(project) -> None:
    root, compiled = project
    runner = live_runner(root, compiled)
    terminal = Console(width=WIDTH, record=True, force_terminal=True)
    view = RunView(terminal)
    view.start(runner)
    view.update(runner)
    view.stop()
    drawn = terminal.export_text()
    assert "120/300 step" in drawn and "clips/s 85.2" in drawn
    piped = Console(width=WIDTH, record=True, force_terminal=False, file=open(os.devnull, "w"))
    view = RunView(piped)
    view.start(runner)
    view.update(runner)
    view.event("data-synth-d2de4a7892", "done", 3.0)
    view.stop()
    assert piped.export_text().splitlines() == [
        "tiny: running 13 stages",
        "done: data-synth-d2de4a7892 (3.0s)",
    ]


def snap(stages: list[StageSnap], slots: int | None) -> RunSnap:
    return RunSnap("t", tuple(stages), NOW, slots)


def test_run_eta_from_measured_rates_and_finished_stages_of_a_kind() -> None:
    probe = StageSnap("probe-a-0000000001", "probe", "done", NOW - 30, NOW - 10, 20.0)
    pending = [StageSnap(f"probe-b{i}-000000000{i}", "probe", "pending") for i in (2, 3)]
    # two probes of 20 s each: one after the other on one slot, side by side on two
    assert run_eta(snap([probe, *pending], 1)).seconds == pytest.approx(40.0)
    assert run_eta(snap([probe, *pending], 2)).seconds == pytest.approx(20.0)
    # a chain: the extraction waits for the pretraining's 90 s, then takes its kind's 30 s
    pre_name = "pretrain-p-0000000004"
    ext = StageSnap("extract-e-0000000005", "extract", "done", None, None, 30.0)
    running = StageSnap(
        pre_name,
        "pretrain",
        "running",
        NOW - 60,
        None,
        60.0,
        Progress("pretrain", "step", 120, 300, {}, 2.0, 90.0, NOW),
    )
    after = StageSnap("extract-f-0000000006", "extract", "pending", inputs=(pre_name,))
    eta = run_eta(snap([ext, running, after], None))
    assert eta.seconds == pytest.approx(120.0) and eta.unknown == 0
    assert eta_text(eta) == "ETA 2m00s"
    # nothing of the kind known: no estimate at all
    blind = run_eta(snap([StageSnap("report-r-0000000007", "report", "pending")], 1))
    assert eta_text(blind) == "ETA ?"


def test_a_record_left_by_an_earlier_attempt_is_not_shown(tmp_path: Path) -> None:
    name = "pretrain-p-0123456789"
    write_progress(tmp_path, name, "pretrain", "step", 50, 100, {"loss": 1.0}, now=NOW - 600)
    assert stage_progress(tmp_path, name, started=NOW - 700).done == 50
    assert stage_progress(tmp_path, name, started=NOW - 100) is None  # resumed since
    (tmp_path / out_dir(name) / "progress.json").write_text('{"done": "half"')
    assert stage_progress(tmp_path, name, started=None) is None  # torn or foreign: ignored


def test_a_crowd_of_running_stages_is_counted_not_drawn() -> None:
    stages = [StageSnap(f"extract-e{i}-00000000{i:02d}", "extract", "running") for i in range(12)]
    text = render(RunPanel(snap(stages, None)))
    assert sum(line.startswith("▸ extract-") for line in text.splitlines()) == 8
    assert "+ 4 more running" in text and "12 running" in text.splitlines()[0]


def test_shorten_keeps_kind_and_uid() -> None:
    name = "probe-vit_micro_multiblock_small_feature_s0-motion-attentive-f100-s0-b7ae1b6abc"
    for width in (20, 40, 78):
        short = shorten(name, width)
        assert len(short) == width and short.startswith("probe-") and "…" in short
    assert shorten(name, 40).endswith("-b7ae1b6abc")
    assert shorten(name, len(name)) == name


def mark_running(root: Path, name: str, started: float, pid: int | None = None) -> None:
    """The state file a live runner writes for a stage it started (another terminal's runner)."""
    status.write_state(root, name, state="running", started=started, runner_pid=pid or os.getpid())


def mark_done(root: Path, name: str) -> None:
    (root / out_dir(name)).mkdir(parents=True, exist_ok=True)
    (root / out_dir(name) / "metrics.json").write_text("{}")
    status.write_state(root, name, state="done", ended=time.time())


def test_status_shows_the_progress_of_a_run_started_elsewhere(project) -> None:
    root, compiled = project
    pretrain = stage(compiled, "pretrain", "feature")
    probe = stage(compiled, "probe", "feature")
    now = time.time()
    for name in (pretrain, probe):
        mark_running(root, name, started=now - 61)
    write_progress(root, pretrain, "pretrain", "step", 120, 300, {"loss": 0.41234}, now=now)
    write_progress(root, probe, "probe", "epoch", 6, 20, {"best_val": 0.634}, now=now)
    out = CliRunner().invoke(app, ["status", "experiments/tiny.yaml"])
    assert out.exit_code == 0, out.output
    step = next(line for line in out.output.splitlines() if "120/300 step" in line)
    assert re.search(r"ETA 1m[23]\ds", step) and abs(bar_fraction(step) - 0.4) < 0.05
    assert "loss 0.412" in out.output and "best val 0.634" in out.output
    assert probe in out.output  # the table keeps full names
    # the same view at 80 columns: every line fits, the panel names are shortened
    rows = status.stage_statuses(root, compiled.stages, {s.name for s in compiled.stages})
    text = render(status_view(root, "tiny", rows, "", from_status(root, compiled, rows)))
    assert_fits(text)
    assert "120/300 step" in text and "6/20 epoch" in text and "best val 0.634" in text
    assert any(line.startswith("▸ probe-") and "…" in line for line in text.splitlines())


def test_status_of_a_detached_slurm_stage_names_its_job(project) -> None:
    root, compiled = project
    pretrain = stage(compiled, "pretrain", "feature")
    handle = {"executor": "slurm", "job_id": "4242", "stage": pretrain, "log": "x", "extra": {}}
    status.write_state(root, pretrain, state="running", started=NOW - 61, handle=handle)
    write_progress(root, pretrain, "pretrain", "step", 120, 300, {"loss": 0.5})
    rows = status.stage_statuses(root, compiled.stages, {s.name for s in compiled.stages})
    text = render(RunPanel(from_status(root, compiled, rows, now=NOW), summary=False))
    assert_fits(text)
    running = next(line for line in text.splitlines() if line.startswith("▸ pretrain-"))
    assert "job 4242" in running
    assert "ETA 1m30s" in text  # a SLURM run has no slot limit: its ETA is this stage's


def finish_later(root: Path, names: list[str], delay: float) -> threading.Thread:
    """A stand-in for the stages of a run started elsewhere: they end after ``delay``."""

    def finish() -> None:
        time.sleep(delay)
        for name in names:
            mark_done(root, name)

    thread = threading.Thread(target=finish, daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(120)
def test_follow_moves_the_bars_and_ends_with_the_run(project) -> None:
    root, compiled = project
    pretrain = stage(compiled, "pretrain", "feature")
    mark_running(root, pretrain, started=time.time() - 1)
    write_progress(root, pretrain, "pretrain", "step", 100, 300, {"loss": 0.9}, now=time.time())
    seen: list[int | None] = []

    def show(rows: list[Any], note: str, snapshot: RunSnap) -> None:
        (s,) = [s for s in snapshot.stages if s.name == pretrain]
        seen.append(s.progress.done if s.progress else None)
        if len(seen) == 2:  # the stage moves on between two full looks
            write_progress(root, pretrain, "pretrain", "step", 200, 300, {}, now=time.time())
        if len(seen) == 4:
            mark_done(root, pretrain)

    started = time.monotonic()
    rows = follow(root, compiled, show, every=30.0, tick=0.2)
    assert time.monotonic() - started < 20  # a stage that ends brings the next full look forward
    assert seen[0] == 100 and 200 in seen and seen[-1] is None
    assert not any(r.state in ("running", "pending") for r in rows)


@pytest.mark.timeout(120)
def test_status_follow_ends_when_the_run_ends(project) -> None:
    root, compiled = project
    names = [stage(compiled, "pretrain", "feature"), stage(compiled, "pretrain", "pixel")]
    for name in names:
        mark_running(root, name, started=time.time())
        write_progress(root, name, "pretrain", "step", 10, 300, {"loss": 2.0}, now=time.time())
    thread = finish_later(root, names, delay=2.0)
    started = time.monotonic()
    out = CliRunner().invoke(app, ["status", "experiments/tiny.yaml", "--follow", "--every", "1"])
    thread.join()
    assert out.exit_code == 0, out.output
    assert time.monotonic() - started >= 2.0  # it followed until the stages ended
    assert "running" not in out.output and "0/13 up to date" in out.output


def test_results_plot_prints_the_paths_of_the_spec_plots(project, monkeypatch) -> None:
    root, compiled = project
    from vjepa.pipeline import plots

    calls = []

    def write_spec_plots(where: Path, spec: Any) -> list[Path]:
        calls.append((where, spec.spec.name))
        return [where / "plots" / "tiny" / "bars.png"]

    monkeypatch.setattr(plots, "write_spec_plots", write_spec_plots, raising=False)
    out = CliRunner().invoke(app, ["results", "experiments/tiny.yaml", "--plot"])
    assert out.exit_code == 0, out.output
    assert calls == [(root, "tiny")]
    assert out.output.splitlines()[-1] == str(root / "plots" / "tiny" / "bars.png")
    plain = CliRunner().invoke(app, ["results", "experiments/tiny.yaml"])
    assert len(calls) == 1 and "bars.png" not in plain.output


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_compare_with_a_git_revision(project) -> None:
    from vjepa.pipeline.compare import compare_specs
    from vjepa.pipeline.graph import metrics_path
    from vjepa.pipeline.runner import publish

    root, compiled = project
    publish(root, [compiled])
    probes = [s.name for s in compiled.stages if s.kind == "probe"]

    def write_metrics(shift: float) -> None:
        for i, name in enumerate(probes):
            path = root / metrics_path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"top1": 0.5 + 0.1 * i + shift, "label_fraction": 1.0}))

    write_metrics(0.0)
    git(root, "init", "-q")
    git(root, "add", "params.yaml", "metrics")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "results")
    write_metrics(0.05)
    found = compare_specs(root, [Path("experiments/tiny.yaml")], [], "HEAD")
    assert found.names == ("HEAD", "now") and found.metric == "top1" and found.scale == 100.0
    assert len(found.rows) == 3 and all(r["diff"] == pytest.approx(0.05) for r in found.rows)
    out = CliRunner().invoke(
        app, ["compare", "experiments/tiny.yaml", "--rev", "HEAD", "-f", "json"]
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == found.rows
    with pytest.raises(UserError, match=r"^git show nope:params.yaml: "):
        compare_specs(root, [Path("experiments/tiny.yaml")], [], "nope")
    with pytest.raises(UserError, match="give SPEC_A SPEC_B, or SPEC --rev GIT_REV"):
        compare_specs(root, [Path("experiments/tiny.yaml")], [], None)


def test_cancel_sends_sigterm_to_the_live_runner_only(project) -> None:
    root, compiled = project
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mark_running(root, stage(compiled, "data"), started=time.time(), pid=child.pid)
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        mark_running(root, stage(compiled, "pretrain", "pixel"), time.time(), pid=dead.pid)
        assert live_runners(root, compiled) == [child.pid]
        assert interrupt_runners(root, compiled) == [child.pid]
        assert child.wait(timeout=30) == -signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
