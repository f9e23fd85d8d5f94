"""The ``executor: slurm`` config group: defaults, per-kind merging, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vjepa.errors import SpecError
from vjepa.pipeline.executors.slurm.config import parse_slurm_config

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "vjepa" / "conf" / "executor" / "slurm_paper.yaml"
SMALL_CONF = REPO / "vjepa" / "conf" / "executor" / "slurm.yaml"

pytestmark = pytest.mark.filterwarnings("ignore")


def test_shipped_group_parses_and_merges_kinds():
    cfg = parse_slurm_config(yaml.safe_load(CONF.read_text()))
    pre, probe, report = cfg.for_kind("pretrain"), cfg.for_kind("probe"), cfg.for_kind("report")
    assert pre.nodes == 2 and pre.gpus_per_node == 8 and pre.tasks == 8
    assert probe.gpus_per_node == 1 and probe.time == 120
    assert report.gpus_per_node == 0 and report.tasks == 1
    assert report.array_parallelism == 32  # inherited from default


def test_small_group_asks_no_gpu_and_little():
    cfg = parse_slurm_config(yaml.safe_load(SMALL_CONF.read_text()))
    for kind in ("data", "pretrain", "extract", "probe", "stream", "report"):
        res = cfg.for_kind(kind)
        assert res.gpus_per_node == 0 and res.nodes == 1 and res.cpus_per_task <= 2
        assert res.mem_gb <= 4 and res.time <= 240


def _compiled_resources(*overrides: str) -> dict:
    from vjepa.pipeline.compiler import compile_spec

    spec = REPO / "experiments" / "paper_vitl16.yaml"
    return compile_spec(spec, list(overrides), REPO, check_paths=False).executor["resources"]


def test_default_from_the_command_line_beats_the_groups_kinds():
    res = _compiled_resources("executor.resources.default.cpus_per_task=3")
    assert {k: v["cpus_per_task"] for k, v in res.items() if v} == dict.fromkeys(res, 3)
    # a kind's own key on the command line still beats default there
    res = _compiled_resources(
        "executor.resources.default.cpus_per_task=3", "executor.resources.pretrain.cpus_per_task=9"
    )
    assert res["pretrain"]["cpus_per_task"] == 9 and res["extract"]["cpus_per_task"] == 3
    # keys the command line does not touch keep the group's per-kind values
    assert res["pretrain"]["gpus_per_node"] == 8 and res["default"]["gpus_per_node"] == 0


def test_a_kind_section_can_be_dropped_whole():
    res = _compiled_resources("executor.resources.pretrain=null")
    cfg = parse_slurm_config({"resources": res})
    assert res["pretrain"] is None and cfg.for_kind("pretrain") == cfg.for_kind("default")


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("executor.resources.pretrain.gpus=1", "executor.resources.pretrain.gpus: unknown key"),
        ("executor.resources.probe.cpus_per_task=0", "executor.resources.probe.cpus_per_task: "),
        ("executor.resources.gpu.time=5", "executor.resources.gpu: unknown stage kind"),
        ("executor.max_num_timeout=-1", "executor.max_num_timeout: expected an integer >= 0"),
    ],
)
def test_executor_settings_are_checked_at_compile_time(tmp_path, override, fragment):
    """Checked by compile (and so by --dry-run), before anything is written."""
    from vjepa.pipeline.compiler import compile_spec

    spec = REPO / "experiments" / "paper_vitl16.yaml"
    with pytest.raises(SpecError) as info:
        compile_spec(spec, [override], tmp_path, check_paths=False)
    assert fragment in str(info.value) and "paper_vitl16.yaml" in str(info.value)
    assert not list(tmp_path.iterdir())


def test_partition_limits_are_read_from_scontrol_lines():
    from vjepa.pipeline.executors.slurm.limits import misfit, parse_partitions

    partitions = (
        "PartitionName=debug AllowGroups=ALL Default=YES MaxNodes=UNLIMITED MaxTime=UNLIMITED "
        "Nodes=vm TotalCPUs=4 TotalNodes=1\n"
        "PartitionName=gpu Default=NO MaxNodes=2 MaxTime=2-00:00:00 Nodes=g[1-4] TotalNodes=4\n"
    )
    nodes = (
        "NodeName=vm Arch=x86_64 CPUTot=4 RealMemory=20489 Gres=(null) OS=Linux 6.1 #1 SMP "
        "Partitions=debug\n"
        "NodeName=g1 CPUTot=64 RealMemory=512000 Gres=gpu:a100:8(S:0-1) Partitions=gpu\n"
    )
    parts = parse_partitions(partitions, nodes)
    assert parts["debug"].cpus == 4 and parts["debug"].gpus == 0 and parts["debug"].default
    assert parts["gpu"].gpus == 8 and parts["gpu"].nodes == 2 and parts["gpu"].max_time == 2880
    ok = {"partition": "gpu", "nodes": 2, "tasks": 8, "cpus_per_task": 8, "gpus_per_node": 8}
    assert misfit("x", "s", {**ok, "mem_gb": 480, "time": 2880}, parts) is None
    assert "x.time: stage s asks 2881 minutes" in misfit("x", "s", {**ok, "time": 2881}, parts)
    assert "x.nodes: stage s asks 3 nodes" in misfit("x", "s", {**ok, "nodes": 3}, parts)
    small = {"cpus_per_task": 4, "gpus_per_node": 1}
    assert "partition debug has at most 0 GPUs" in misfit("x", "s", small, parts)


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
