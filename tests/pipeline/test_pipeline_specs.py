"""Spec validation, composition and compilation (in-process, no DVC runs)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from vjepa.errors import SpecError
from vjepa.pipeline import schema
from vjepa.pipeline.compiler import compile_spec
from vjepa.pipeline.runner import publish

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
name: tiny
defaults:
  - data: synth_tiny
  - model: vit_micro
seeds: [0]
tasks: [motion]
ablate:
  pretrain.target: [feature, pixel]
baselines:
  random_init: {encoder: random}
report: {rows: [target], columns: [task], metric: top1, baseline: random_init}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / "experiments" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def compile_and_publish(root: Path, spec: Path, overrides: list[str] | None = None, **kw) -> object:
    compiled = compile_spec(spec, overrides or [], root, **kw)
    publish(root, [compiled])
    return compiled


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / ".dvc").mkdir()
    return tmp_path


def test_compile_twice_is_byte_identical(project: Path) -> None:
    spec = write(project, "tiny", GOOD)
    compile_and_publish(project, spec)
    first = (project / "dvc.yaml").read_bytes(), (project / "params.yaml").read_bytes()
    compile_and_publish(project, spec)
    assert ((project / "dvc.yaml").read_bytes(), (project / "params.yaml").read_bytes()) == first
    dvc = yaml.safe_load(first[0])["stages"]
    names = list(dvc)
    kinds = [n.split("-")[0] for n in names]
    assert kinds == sorted(kinds, key=("data", "pretrain", "extract", "probe", "report").index)
    pre = next(v for k, v in dvc.items() if k.startswith("pretrain-"))
    assert pre["cmd"].startswith("vjepa-exp exec pretrain-")
    assert pre["outs"][0][next(iter(pre["outs"][0]))] == {"persist": True}
    assert all("cli" not in d and "docs" not in d for d in pre["deps"])
    assert list(pre["metrics"][0].values())[0] == {"cache": False}


def test_stage_configs_have_the_documented_shape(project: Path) -> None:
    compiled = compile_spec(write(project, "tiny", GOOD), [], project)
    by_kind = {}
    for stage in compiled.stages:
        by_kind.setdefault(stage.kind, stage.config)
    assert set(by_kind["data"]) == {"synth", "source"}  # workers: placement, not params
    assert set(by_kind["pretrain"]) == {"data", "clip", "model", "masking", "pretrain"}
    assert (
        by_kind["pretrain"]["clip"]["crop_size"] == by_kind["pretrain"]["model"]["img_size"] == 32
    )
    assert set(by_kind["extract"]) == {
        "encoder",
        "model",
        "data",
        "protocol",
        "dtype",
        "batch_size",
    }
    assert set(by_kind["probe"]) == {
        "features",
        "task",
        "probe",
        "label_fraction",
        "split_seed",
        "val_fraction",
        "seed",
        "sweep",
    }
    assert set(by_kind["report"]) == {"name", "probes", "report"}
    assert len(compiled.stages) == 1 + 2 + 6 + 3 + 1


def test_probe_change_touches_only_probes_and_report(project: Path) -> None:
    spec = write(project, "tiny", GOOD)
    a = {s.name for s in compile_spec(spec, [], project).stages}
    b = {s.name for s in compile_spec(spec, ["probe.lr=0.002"], project).stages}
    changed = {n.split("-")[0] for n in a ^ b}
    assert changed == {"probe", "report"}
    assert len(a - b) == 3 + 1


def test_probe_heads_reach_only_the_probes_and_no_heads_keeps_their_uids(project: Path) -> None:
    spec = write(project, "tiny", GOOD)
    plain = {s.name: s for s in compile_spec(spec, [], project).stages}
    heads = "probe.heads={lr:[0.001,0.003],weight_decay:[0.0,0.05]}"
    multi = {s.name: s for s in compile_spec(spec, [heads], project).stages}
    assert {n.split("-")[0] for n in plain.keys() ^ multi.keys()} == {"probe", "report"}
    assert all("heads" not in s.config["probe"] for s in plain.values() if s.kind == "probe")
    probe = next(s for s in multi.values() if s.kind == "probe")
    assert probe.config["probe"]["heads"] == {"lr": [0.001, 0.003], "weight_decay": [0.0, 0.05]}


def test_two_specs_share_one_pretrain(project: Path) -> None:
    a = write(project, "a", GOOD)
    b = write(
        project,
        "b",
        GOOD.replace("name: tiny", "name: other").replace("[feature, pixel]", "[feature]"),
    )
    ca, cb = compile_spec(a, [], project), compile_spec(b, [], project)
    publish(project, [ca, cb])
    pre_a = {s.name for s in ca.stages if s.kind == "pretrain"}
    pre_b = {s.name for s in cb.stages if s.kind == "pretrain"}
    assert pre_b < pre_a
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert sum(k.startswith("pretrain-") for k in stages) == 2
    registry = yaml.safe_load((project / "params.yaml").read_text())["vjepa-specs"]
    assert set(registry) == {"tiny", "other"}


def test_prune_drops_stages_no_spec_needs(project: Path) -> None:
    spec = write(project, "tiny", GOOD)
    compile_and_publish(project, spec)
    old = set(yaml.safe_load((project / "dvc.yaml").read_text())["stages"])
    compiled = compile_spec(spec, ["probe.epochs=3"], project)
    _, pruned = publish(project, [compiled], prune=True)
    new = set(yaml.safe_load((project / "dvc.yaml").read_text())["stages"])
    assert (
        set(pruned) == old - new
        and pruned
        and all(p.split("-")[0] in ("probe", "report") for p in pruned)
    )
    assert not (set(yaml.safe_load((project / "params.yaml").read_text())) & set(pruned))


def test_overrides_groups_sweeps_and_seeds(project: Path) -> None:
    spec = write(project, "tiny", GOOD)
    c = compile_spec(spec, ["model=vit_mini", "seeds=[0,1]", "pretrain.lr=1e-4,3e-4"], project)
    pretrains = [s for s in c.stages if s.kind == "pretrain"]
    assert len(pretrains) == 2 * 2 * 2  # target x lr x seed
    assert {s.config["model"]["name"] for s in pretrains} == {"vit_mini"}
    assert {s.config["pretrain"]["lr"] for s in pretrains} == {1e-4, 3e-4}
    assert {s.config["pretrain"]["seed"] for s in pretrains} == {0, 1}
    labels = {
        p["labels"]["lr"]
        for p in c.report.config["probes"]
        if p["labels"]["variant"] != "random_init"
    }
    assert labels == {1e-4, 3e-4}


def test_group_axis_swaps_the_group(project: Path) -> None:
    text = GOOD.replace("pretrain.target: [feature, pixel]", "masking: [random_tube_90, causal_6]")
    text = text.replace("rows: [target]", "rows: [masking]")
    c = compile_spec(write(project, "m", text), [], project)
    names = {s.config["masking"]["name"] for s in c.stages if s.kind == "pretrain"}
    assert names == {"random_tube_90", "causal_6"}


def test_shipped_experiments_compile() -> None:
    for spec in sorted((REPO / "experiments").glob("*.yaml")):
        check = spec.stem != "paper_vitl16"
        c = compile_spec(spec, [], REPO, check_paths=check)
        assert c.report.config["probes"], spec


def test_paper_spec_needs_deferred_path_checks() -> None:
    spec = REPO / "experiments" / "paper_vitl16.yaml"
    with pytest.raises(
        SpecError,
        match=r"paper_vitl16.yaml: data.datasets.k400.train: file not found: /datasets/vjepa/k400/train.csv \(set data.root=DIR",
    ):
        compile_spec(spec, [], REPO)
    c = compile_spec(spec, [], REPO, check_paths=False)
    assert any("not checked" in w for w in c.warnings)
    assert c.executor["kind"] == "slurm"
    pre = next(s for s in c.stages if s.kind == "pretrain")
    assert (
        pre.config["model"]["name"] == "vit_large" and pre.config["pretrain"]["dtype"] == "bfloat16"
    )
    # K400's tokens at the paper's protocol (~18.5 TB for train) are streamed, whatever the disk
    k400 = next(s for s in c.stages if s.kind == "stream" and s.config["task"] == "k400")
    protocol = k400.config["stream"]["protocol"]
    assert (protocol["num_segments"], protocol["num_views"]) == (8, 3)
    assert not [s for s in c.stages if s.kind == "extract"]
    choice = next(e for e in c.evaluation if e.task == "k400")
    train = next(s for s in choice.stores if s.split == "train")
    assert choice.mode == "stream" and train.counted_from == "published size"
    assert train.bytes == 240_000 * 8 * 3 * 1568 * 1024 * 2  # 18.5 TB


# (spec text or None for GOOD, overrides, expected message fragment)
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}]\n"
    for i in range(20)
)
BAD: list[tuple[str | None, list[str], str]] = [
    (
        GOOD + "seeds: [1]\n",
        [],
        "not valid YAML at line 12: duplicate key 'seeds' (first at line 5)",
    ),
    (GOOD.replace("seeds: [0]", "seeds: [0]\noff: 1"), [], "unknown key 'off'"),
    (GOOD + BOMB, [], "more than 100 aliases (refused)"),
    (None, ["masking.name=" + "m" * 250], "bytes, over the file system's 255; shorten"),
    (None, ["pretrain.target=" + "[1," * 40 + "1" + "]" * 40], "[1, [... (set by command line"),
    ("name: [unclosed\n", [], "tiny.yaml: not valid YAML at line"),
    ("- just\n- a list\n", [], "a spec must be a mapping"),
    ("seeds: [0]\n", [], "name: missing key"),
    (GOOD + "ablations: {}\n", [], "unknown key 'ablations' (did you mean 'ablate'?)"),
    (
        GOOD.replace("- model: vit_micro", "- modle: vit_micro"),
        [],
        "defaults[1]: unknown config group 'modle' (did you mean 'model'?)",
    ),
    (
        GOOD.replace("- model: vit_micro", "- model: vit_micr"),
        [],
        "defaults[1].model: unknown model option 'vit_micr' (did you mean 'vit_micro'?)",
    ),
    (GOOD + "pretrain: {lrr: 0.1}\n", [], "pretrain.lrr: unknown key 'lrr' (did you mean 'lr'?)"),
    (
        GOOD + "pretrain: {batch_size: big}\n",
        [],
        "pretrain.batch_size: expected an integer >= 1, got str 'big'",
    ),
    (
        GOOD.replace("seeds: [0]", "label_fractions: [0.0]\nseeds: [0]"),
        [],
        "label_fractions[0]: expected a number in (0, 1], got 0.0",
    ),
    (
        GOOD.replace("seeds: [0]", "label_fractions: [1.5]\nseeds: [0]"),
        [],
        "label_fractions[0]: expected a number in (0, 1], got 1.5",
    ),
    (
        GOOD + "model: {img_size: 30}\n",
        [],
        "model.img_size: 30 is not divisible by model.patch_size 8",
    ),
    (
        GOOD + "model: {num_frames: 15}\n",
        [],
        "model.num_frames: 15 is not divisible by model.tubelet_size 2",
    ),
    (
        GOOD + "model: {pred_embed_dim: 64}\n",
        [],
        "model.pred_embed_dim: 64 is not divisible by the vit_micro head count 3",
    ),
    (GOOD.replace("seeds: [0]", "seeds: [0, 0]"), [], "seeds: duplicate value 0"),
    (
        GOOD.replace("tasks: [motion]", "tasks: [motoin]"),
        [],
        "tasks[0]: 'motoin' is not a dataset in data.datasets or a task of the synthetic benchmark (did you mean 'motion'?)",
    ),
    (
        GOOD.replace("[feature, pixel]", "[feature, pixels]"),
        [],
        "pretrain.target: unknown value 'pixels' (did you mean 'pixel'?) (set by ablate.pretrain.target)",
    ),
    (
        GOOD.replace("[feature, pixel]", "[]"),
        [],
        "ablate.pretrain.target: expected at least 1 value(s)",
    ),
    (
        GOOD.replace("pretrain.target:", "pretrain.tgt:"),
        [],
        "ablate.pretrain.tgt: unknown key 'tgt' (did you mean 'target'?)",
    ),
    (
        GOOD.replace("rows: [target]", "rows: [traget]"),
        [],
        "report.rows: unknown label 'traget' (did you mean 'target'?)",
    ),
    (GOOD.replace("metric: top1", "metric: acc"), [], "report.metric: unknown value 'acc'"),
    (
        GOOD.replace("baseline: random_init", "baseline: random"),
        [],
        "report.baseline: no row has target='random' (did you mean 'random_init'?)",
    ),
    (
        GOOD.replace("{encoder: random}", "{encoder: official}"),
        [],
        "baselines.random_init.path: an official baseline needs a checkpoint path",
    ),
    (
        GOOD.replace("{encoder: random}", "{encoder: official, path: ckpt/missing.pt}"),
        [],
        "baselines.random_init.path: file not found: ckpt/missing.pt",
    ),
    (
        GOOD + "data: {synth: null, source: data/none.csv}\n",
        [],
        "data.source: file not found: data/none.csv",
    ),
    (GOOD + "data: {source: data/x.csv}\n", [], "data: set one of data.synth"),
    # file kinds (the files are made by the test: FILE_KINDS)
    (
        GOOD.replace("{encoder: random}", "{encoder: official, path: ckpt}"),
        [],
        "baselines.random_init.path: ckpt is a directory",
    ),
    (
        GOOD.replace("{encoder: random}", "{encoder: official, path: ckpt/notes.txt}"),
        [],
        "baselines.random_init.path: ckpt/notes.txt is not a torch checkpoint",
    ),
    (GOOD + "data: {synth: null, source: data/x.txt}\n", [], "x.txt: not a .csv file"),
    (GOOD + "data: {synth: null, source: data/empty.csv}\n", [], "empty.csv: no rows"),
    (GOOD + "data: {synth: null, source: data/tree}\n", [], "tree: no video or image files"),
    (GOOD + "probe: {heads: [{lr: 0}]}\n", [], "probe.heads[0].lr: expected a number > 0"),
    (GOOD, ["probe.heads={lr:[0.1],wd:[0.0]}"], "probe.heads.wd: unknown key 'wd'"),
    (GOOD.replace("name: tiny", "name: My Exp"), [], "name: expected a name of lower-case letters"),
    (
        GOOD.replace("random_init: {encoder: random}", "feature: {encoder: random}").replace(
            "baseline: random_init", "baseline: null"
        ),
        [],
        "baselines.feature: the name clashes with the variant 'feature'",
    ),
    (
        GOOD + "pretrain: {clip: {frames_per_clip: 8}}\n",
        [],
        "pretrain.clip.frames_per_clip: 8 must equal model.num_frames 16",
    ),
    (
        GOOD
        + "sweep: {n_trials: 4, space: {lr: {type: float, low: 0.1, high: 0.01, log: true}}}\n",
        [],
        "sweep.space.lr: low 0.1 must be below high 0.01",
    ),
    (None, ["pretrain.lr"], "override 'pretrain.lr': expected KEY=VALUE"),
    (
        None,
        ["modle=vit_small"],
        "override 'modle=vit_small': unknown key 'modle' (did you mean 'model'?)",
    ),
    (
        None,
        ["model=vit_smal"],
        "command line model=vit_smal: unknown model option 'vit_smal' (did you mean 'vit_small'?)",
    ),
    (None, ["seeds=0,1"], "seeds is a list already; write seeds=[a,b]"),
    (None, ["+pretrain.foo=1"], "adding (+) or deleting (~) keys is not supported"),
    (
        None,
        ["pretrain.epochs=-1"],
        "pretrain.epochs: expected an integer >= 1, got -1 (set by command line 'pretrain.epochs=-1')",
    ),
    (None, ["probe.kind=mlp"], "probe.kind: unknown value 'mlp'"),
    (None, ["executor.jobs=0"], "executor.jobs: expected an integer >= 1, got 0"),
]


FILE_KINDS = {"ckpt/notes.txt": "not torch", "data/x.txt": "a 0\n", "data/empty.csv": ""}
FILE_KINDS["data/tree/cls/readme.txt"] = "a class folder without videos"


@pytest.mark.parametrize("text, overrides, message", BAD, ids=[m[:40] for _, _, m in BAD])
def test_malformed_specs_get_their_message_and_write_nothing(
    project: Path, text, overrides, message
) -> None:
    for name, content in FILE_KINDS.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(content)
    good = write(project, "tiny", GOOD)
    compile_and_publish(project, good)
    before = [(project / f).read_bytes() for f in ("dvc.yaml", "params.yaml")]
    spec = write(project, "tiny", text if text is not None else GOOD)
    with pytest.raises(SpecError) as info:
        compile_and_publish(project, spec, overrides)
    assert message in str(info.value), str(info.value)
    assert "\n" not in str(info.value)
    assert [(project / f).read_bytes() for f in ("dvc.yaml", "params.yaml")] == before


def test_duplicate_spec_names_across_files(project: Path) -> None:
    compile_and_publish(project, write(project, "tiny", GOOD))
    other = write(project, "copy", GOOD)
    with pytest.raises(SpecError, match="'tiny' is already the name of experiments/tiny.yaml"):
        compile_and_publish(project, other)


def test_sweep_and_probe_choices_come_from_the_modules_that_build_them(tmp_path: Path) -> None:
    """The schema accepts exactly what the sweep and the probe builder implement."""
    from vjepa.eval.sweep import SweepConfig, make_pruner
    from vjepa.models.probe import build_probe

    spec = REPO / "experiments" / "probe_sweep.yaml"
    ok = compile_spec(spec, ["sweep.pruner=hyperband"], REPO)
    probe = next(s for s in ok.stages if s.kind == "probe")
    sweep = SweepConfig.from_config(probe.config["sweep"])
    assert sweep.pruner == "hyperband" and make_pruner(sweep, 5) is not None
    with pytest.raises(SpecError, match=r"sweep.sampler: .*'grid'"):
        compile_spec(spec, ["sweep.sampler=grid"], REPO)
    for kind in schema.lookup(schema.CONFIG, "probe.kind").choices:
        assert build_probe(kind, embed_dim=8, num_classes=2, num_heads=2) is not None
    # the range rule is one rule: the compiler refuses what the worker would refuse
    with pytest.raises(SpecError, match="sweep.space.lr: low 0.01 must be below high 0.01"):
        compile_spec(spec, ["sweep.space.lr.low=0.01", "sweep.space.lr.high=0.01"], REPO)
