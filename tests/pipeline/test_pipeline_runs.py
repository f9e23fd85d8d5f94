"""Run records: `status`/`cancel`/`results` of a spec alone act on its latest run's overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from vjepa.errors import UserError
from vjepa.pipeline.runs import overrides_for, pick_run, record_run, runs_of


def test_latest_run_and_prefixes(tmp_path: Path) -> None:
    spec = Path("experiments/tiny.yaml")
    first = record_run(tmp_path, spec, ["pretrain.lr=0.1"], "slurm", ["a", "b"])
    second = record_run(tmp_path, spec, ["executor=slurm", "pretrain.epochs=3"], "slurm", ["a"])
    assert [r.id for r in runs_of(tmp_path, spec)] == [first.id, second.id]
    assert pick_run(tmp_path, spec, None) == second
    assert pick_run(tmp_path, spec, first.id) == first
    # the same spec named another way is the same record file
    assert pick_run(tmp_path, tmp_path / spec, None) == second
    assert overrides_for(tmp_path, spec, [], None) == (second.overrides, second)
    # overrides on the command line win; with --run they are added after the run's
    assert overrides_for(tmp_path, spec, ["x=1"], None) == (["x=1"], None)
    assert overrides_for(tmp_path, spec, ["x=1"], first.id)[0] == ["pretrain.lr=0.1", "x=1"]
    with pytest.raises(UserError, match="--run nope: no run of experiments/tiny.yaml match"):
        pick_run(tmp_path, spec, "nope")
    with pytest.raises(UserError, match="2 runs of"):
        pick_run(tmp_path, spec, first.id[:4])  # both ids start with the date


def test_a_torn_record_is_skipped(tmp_path: Path) -> None:
    spec = Path("s.yaml")
    kept = record_run(tmp_path, spec, [], "local", [])
    path = next((tmp_path / ".vjepa" / "runs").glob("*.jsonl"))
    with open(path, "a") as fh:
        fh.write('{"id": "torn", "spec"')  # a writer killed mid-line
    assert runs_of(tmp_path, spec) == [kept]
    assert pick_run(tmp_path, Path("other.yaml"), None) is None


@pytest.mark.parametrize(
    "word, fragment",
    [
        ("pretrain.lr", "'pretrain.lr': neither a spec file (.yaml) nor an override (KEY=VALUE)"),
        ("~pretrain.lr", "override '~pretrain.lr': removing or adding keys is not supported"),
    ],
)
def test_a_word_that_is_no_override_is_named(word: str, fragment: str) -> None:
    """`run SPEC pretrain.lr` (no `=`) is an override error, not 'spec file not found'."""
    from cli.pipeline import _split
    from vjepa.errors import SpecError

    with pytest.raises(SpecError) as info:
        _split(["experiments/quickstart.yaml", word])
    assert fragment in str(info.value)
    assert _split(["experiments/quickstart.yaml", "pretrain.lr=1"])[1] == ["pretrain.lr=1"]
