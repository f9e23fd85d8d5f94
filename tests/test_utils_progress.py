"""The progress channel: throttled, atomic ``progress.json`` records with a rate and an ETA."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vjepa.utils.progress import PROGRESS_FILE, ProgressWriter, read_progress


class Clock:
    """A hand-driven clock: ``now`` is what ``time.time`` would say."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def strict_json(path: Path) -> dict:
    """Parse as strict JSON: NaN and Infinity tokens are an error."""

    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_writes_at_most_once_a_second_and_always_at_the_end(tmp_path):
    clock = Clock()
    writer = ProgressWriter(tmp_path, "extract train", "clip", clock=clock)
    writer.update(0, 10)
    assert read_progress(tmp_path)["done"] == 0  # the first report is written at once
    clock.now += 0.5
    writer.update(3, 10)
    assert read_progress(tmp_path)["done"] == 0  # throttled
    clock.now += 0.5
    writer.update(5, 10)
    assert read_progress(tmp_path)["done"] == 5  # a second since the last write
    clock.now += 0.1
    writer.update(10, 10)
    record = read_progress(tmp_path)
    assert record["done"] == record["total"] == 10  # the end of a phase is never throttled
    assert record["phase"] == "extract train" and record["unit"] == "clip"
    assert record["updated"] == pytest.approx(1001.1) and record["started"] == 1000.0


def test_rate_and_eta_count_only_what_this_process_did(tmp_path):
    clock = Clock()
    writer = ProgressWriter(tmp_path, "pretrain", "step", clock=clock)
    clock.now += 30.0  # models built, resume state loaded: not throughput
    writer.update(40, 100)  # resumed at step 40
    first = read_progress(tmp_path)
    assert first["rate"] is None and first["eta_s"] is None  # nothing counted yet
    clock.now += 10.0
    writer.update(60, 100)
    record = read_progress(tmp_path)
    assert record["rate"] == pytest.approx(2.0)  # 20 steps in 10 s, not 60 in 40 s
    assert record["eta_s"] == pytest.approx(20.0)  # 40 steps left at 2 a second
    assert record["started"] == 1000.0


def test_unknown_total_has_no_eta(tmp_path):
    clock = Clock()
    writer = ProgressWriter(tmp_path, "index", "file", clock=clock)
    writer.update(0, 0)
    clock.now += 2.0
    writer.update(7, 0)
    record = read_progress(tmp_path)
    assert record["done"] == 7 and record["rate"] == pytest.approx(3.5)
    assert record["eta_s"] is None


def test_nan_and_non_numbers_are_dropped_from_the_figures(tmp_path):
    writer = ProgressWriter(tmp_path, "probe", "epoch", min_interval=0.0)
    figures = {"loss": math.nan, "best_val": 62.5, "lr": 1e-3, "grad": math.inf, "name": "x"}
    writer.update(1, 5, figures)
    record = strict_json(tmp_path / PROGRESS_FILE)
    assert record["figures"] == {"best_val": 62.5, "lr": 1e-3}


def test_replaced_by_rename_and_unreadable_is_none(tmp_path):
    assert read_progress(tmp_path) is None
    writer = ProgressWriter(tmp_path / "stage", "sweep", "trial", min_interval=0.0)
    for done in range(4):
        writer.update(done, 3)
    assert read_progress(tmp_path / "stage")["done"] == 3
    assert [p.name for p in (tmp_path / "stage").iterdir()] == [PROGRESS_FILE]  # no temp file
    (tmp_path / "stage" / PROGRESS_FILE).write_text('{"phase": "swe')  # a torn file
    assert read_progress(tmp_path / "stage") is None
