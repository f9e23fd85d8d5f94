"""The shared unknown-key check: one line naming the key path, with a did-you-mean."""

from __future__ import annotations

import pytest

from vjepa.errors import DataError, UserError
from vjepa.stages import run_stage
from vjepa.utils.keys import reject_unknown


def test_close_typo_gets_did_you_mean() -> None:
    with pytest.raises(UserError, match=r"^probe\.lrr: unknown setting \(did you mean 'lr'\?\)$"):
        reject_unknown({"lr": 1, "lrr": 2}, ("lr", "epochs"), "probe")


def test_far_key_lists_the_known_ones_and_keeps_the_error_class() -> None:
    with pytest.raises(DataError, match=r"^data\.zzz: unknown setting \(known: source, synth\)$"):
        reject_unknown({"zzz": 1}, ("synth", "source"), "data", DataError)


def test_known_keys_pass() -> None:
    reject_unknown({"synth": {}}, ("synth", "source"), "data")


def test_stage_refuses_a_typo_before_writing(tmp_path) -> None:
    out = tmp_path / "stage"
    with pytest.raises(
        UserError, match=r"extract\.protocoll: unknown setting \(did you mean 'protocol'\?\)"
    ):
        run_stage("extract", {"protocoll": {}}, out)
    assert not (out / "metrics.json").exists()
