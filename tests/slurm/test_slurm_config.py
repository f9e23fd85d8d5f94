"""The ``executor: slurm`` config group: defaults, per-kind merging, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vjepa.errors import SpecError
from vjepa.pipeline.executors.slurm import parse_slurm_config

CONF = Path(__file__).resolve().parents[2] / "vjepa" / "conf" / "executor" / "slurm.yaml"

pytestmark = pytest.mark.filterwarnings("ignore")


def test_shipped_group_parses_and_merges_kinds():
    cfg = parse_slurm_config(yaml.safe_load(CONF.read_text()))
    pre, probe, report = cfg.for_kind("pretrain"), cfg.for_kind("probe"), cfg.for_kind("report")
    assert pre.nodes == 2 and pre.gpus_per_node == 8 and pre.tasks == 8
    assert probe.gpus_per_node == 1 and probe.time == 120
    assert report.gpus_per_node == 0 and report.tasks == 1
    assert report.array_parallelism == 32  # inherited from default


def test_default_applies_to_every_kind():
    cfg = parse_slurm_config(
        {
            "resources": {
                "default": {"partition": "gpu", "account": "lab"},
                "probe": {"partition": "cpu"},
            }
        }
    )
    assert cfg.for_kind("extract").partition == "gpu"
    assert cfg.for_kind("probe").partition == "cpu"
    assert cfg.for_kind("probe").account == "lab"


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"partitoin": "x"}, "executor.partitoin: unknown key"),
        ({"resources": {"pretrain": {"gpus": 8}}}, "executor.resources.pretrain.gpus: unknown key"),
        ({"resources": {"train": {}}}, "executor.resources.train: unknown stage kind"),
        (
            {"resources": {"default": {"nodes": 0}}},
            "executor.resources.default.nodes: expected an integer >= 1",
        ),
        ({"resources": {"probe": {"mem_gb": "lots"}}}, "executor.resources.probe.mem_gb"),
        ({"resources": {"data": {"setup": "module load x"}}}, "executor.resources.data.setup"),
        ({"resources": {"data": {"partition": 3}}}, "executor.resources.data.partition"),
    ],
)
def test_bad_values_stop_with_one_line(cfg, message):
    with pytest.raises(SpecError) as err:
        parse_slurm_config(cfg)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
