"""Named datasets in specs: sources checked before anything is written, one stage per dataset.

Real files only: a few mp4 files and PNGs from the synthetic generator (made once per module),
copied into class-per-folder trees, ImageNet-style folders and hand-written reference CSVs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from vjepa.data.sources import inspect_source, iter_entries
from vjepa.data.synth import SynthConfig, generate
from vjepa.errors import SpecError
from vjepa.pipeline.compiler import compile_spec
from vjepa.pipeline.runner import publish

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
SPEC = "experiments/ds.yaml"
CACHE = (".vjepa", "cache")  # the source check's cache: the only thing a failed compile may write


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, list[Path]]:
    """Six real mp4 files and three real PNGs (32x32), generated once for this module."""
    out = tmp_path_factory.mktemp("media")
    generate(
        SynthConfig(videos=6, images=3, resolution=32, frames=16, seed=0),
        out,
        workers=1,
        progress=False,
    )
    return {
        "videos": sorted(out.glob("videos/*/*.mp4")),
        "images": sorted(out.glob("images/*/*.png")),
    }


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture()
def project(tmp_path: Path, media) -> Path:
    """A project holding a video tree, a CSV pair (paths with spaces) and an image folder."""
    root = tmp_path / "proj"
    (root / ".dvc").mkdir(parents=True)
    v = media["videos"]
    for split, (a, b) in (("train", (v[0], v[1])), ("val", (v[4], v[5]))):
        _copy(a, root / "tree" / split / "walk" / a.name)
        _copy(b, root / "tree" / split / "run" / b.name)
    _copy(v[2], root / "my set" / "clips" / "walk one.mp4")
    _copy(v[3], root / "my set" / "clips" / "run two.mp4")
    _write(root / "my set" / "train.csv", "clips/walk one.mp4 0\nclips/run two.mp4 1\n")
    _write(root / "my set" / "val.csv", "clips/run two.mp4 1\n")
    img = media["images"]
    _copy(img[0], root / "in1k" / "train" / "n01" / "a.png")
    _copy(img[1], root / "in1k" / "train" / "n02" / "b.png")
    _copy(img[2], root / "in1k" / "val" / "n01" / "c.png")
    return root


def spec_text(
    datasets: dict[str, Any] | None = None,
    tasks: list[str] | None = None,
    mixture: Any = None,
    **data: Any,
) -> str:
    """A spec on named datasets only (no synthetic benchmark), as YAML text."""
    spec: dict[str, Any] = {
        "name": "ds",
        "data": {
            "synth": None,
            **data,
            "datasets": datasets
            if datasets is not None
            else {"clips": {"train": "tree/train", "val": "tree/val"}},
        },
        "tasks": tasks or ["clips"],
    }
    if mixture is not None:
        spec["pretrain"] = {"data": {"datasets": mixture}}
    return yaml.safe_dump(spec, sort_keys=False)


def write_spec(root: Path, text: str) -> Path:
    return _write(root / SPEC, text)


def files(root: Path) -> list[str]:
    """Every file under ``root`` but the source check's cache."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[:2] != CACHE
    )


def compile_ok(root: Path, text: str, overrides: list[str] | None = None, **kw):
    return compile_spec(write_spec(root, text), overrides or [], root, **kw)


def refused(root: Path, text: str, overrides: list[str] | None = None, *fragments: str) -> str:
    """Compile+publish must fail with one line naming the spec (and each fragment), writing nothing."""
    spec = write_spec(root, text)
    before = files(root)
    with pytest.raises(SpecError) as info:
        publish(root, [compile_spec(spec, overrides or [], root)])
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith(f"{SPEC}: "), message
    for fragment in fragments:
        assert fragment in message, message
    assert files(root) == before
    assert not (root / "dvc.yaml").exists() and not (root / "params.yaml").exists()
    return message


def stages(compiled, kind: str) -> list:
    return [s for s in compiled.stages if s.kind == kind]


# ---------------------------------------------------------------------------------------------
# malformed datasets: one line naming the spec file and the key path, nothing written


def test_task_naming_an_undefined_dataset(project: Path) -> None:
    refused(
        project,
        spec_text(tasks=["clip"]),
        [],
        "tasks[0]: 'clip' is not a dataset in data.datasets (did you mean 'clips'?)",
    )


def test_mixture_naming_an_undefined_dataset(project: Path) -> None:
    datasets = {
        "clips": {"train": "tree/train", "val": "tree/val"},
        "pairs": {"train": "my set/train.csv", "val": "my set/val.csv"},
    }
    refused(
        project,
        spec_text(datasets, mixture=["clips", "pair"]),
        [],
        "pretrain.data.datasets.pair: no dataset 'pair' in data.datasets (did you mean 'pairs'?)",
    )


def test_missing_source_suggests_data_root(project: Path) -> None:
    text = spec_text({"clips": {"train": "tree/train", "val": "tree/valid"}})
    refused(
        project,
        text,
        [],
        "data.datasets.clips.val: file not found: tree/valid",
        "set data.root=DIR",
    )
    # under data.root, the message shows where it looked
    refused(
        project,
        spec_text(root="store"),
        [],
        "data.datasets.clips.train: file not found: store/tree/train",
        "set data.root=DIR",
    )
    # the same through a command-line override of one split
    refused(
        project,
        spec_text(),
        ["data.datasets.clips.train=tree/nope"],
        "data.datasets.clips.train: file not found: tree/nope",
    )


BAD_LINES = [
    (
        "clips/walk one.mp4 0\nclips/run_two.mp4\n",
        ":2: expected '<path> <int label>', got 'clips/run_two.mp4'",
    ),
    ("clips/walk one.mp4 zero\n", ":1: label 'zero' is not an integer"),
    ("clips/walk one.mp4 0\n\nclips/run two.mp4 -3\n", ":3: label -3 is negative"),
    ("clips/walk.mp4 1 x\n", ":1: label 'x' is not an integer"),
]


@pytest.mark.parametrize(
    "body, fragment", BAD_LINES, ids=["no-label", "not-int", "negative", "three-fields"]
)
def test_bad_csv_line_names_csv_and_line(project: Path, body: str, fragment: str) -> None:
    csv = _write(project / "bad" / "val.csv", body)
    text = spec_text({"bad": {"train": "my set/train.csv", "val": "bad/val.csv"}}, ["bad"])
    message = refused(project, text, [], "data.datasets.bad.val: ", f"{csv}{fragment}")
    assert message.count(":") >= 4, message


def test_label_outside_num_classes(project: Path) -> None:
    csv = _write(
        project / "lab" / "val.csv",
        "../my set/clips/walk one.mp4 0\n../my set/clips/run two.mp4 3\n",
    )
    text = spec_text(
        {"lab": {"train": "my set/train.csv", "val": "lab/val.csv", "num_classes": 3}}, ["lab"]
    )
    refused(project, text, [], "data.datasets.lab: ", f"{csv}:2: label 3 is outside num_classes 3")
    # inside it, the same files compile
    assert compile_ok(project, text.replace("num_classes: 3", "num_classes: 4"))


def test_empty_split(project: Path) -> None:
    csv = _write(project / "e" / "val.csv", "")
    text = spec_text({"e": {"train": "my set/train.csv", "val": "e/val.csv"}}, ["e"])
    refused(project, text, [], "data.datasets.e.val: ", f"{csv}: no rows (an empty CSV")
    _write(csv, "\n\n")  # blank lines only: still no rows
    refused(project, text, [], f"{csv}: no rows")


@pytest.mark.parametrize(
    "override, fragment",
    [
        (
            "pretrain.data.datasets={clips:0}",
            "pretrain.data.datasets.clips: expected a number > 0, got 0",
        ),
        (
            "pretrain.data.datasets={clips:-1}",
            "pretrain.data.datasets.clips: expected a number > 0, got -1",
        ),
        ("pretrain.data.datasets={clips:heavy}", "expected a number > 0, got str 'heavy'"),
        ("pretrain.data.datasets={clips:nan}", "expected a number > 0, got float nan"),
    ],
    ids=["zero", "negative", "string", "nan"],
)
def test_mixture_weight_must_be_positive(project: Path, override: str, fragment: str) -> None:
    refused(project, spec_text(), [override], fragment)


def test_mixture_weight_by_dotted_key_is_refused(project: Path) -> None:
    # `pretrain.data.datasets.a=nan` does not set a weight: the key is refused, in one line
    refused(project, spec_text(), ["pretrain.data.datasets.clips=nan"], "pretrain.data.datasets")


def test_mixture_list_must_be_names(project: Path) -> None:
    refused(
        project,
        spec_text(mixture=["clips", 3]),
        [],
        "pretrain.data.datasets[1]: expected a dataset name",
    )
    refused(project, spec_text(mixture=["clips", "clips"]), [], "pretrain.data.datasets: ")


def test_tree_without_class_folders(project: Path, media) -> None:
    _copy(media["videos"][0], project / "flat" / "loose.mp4")
    refused(
        project,
        spec_text({"clips": {"train": "flat", "val": "tree/val"}}),
        [],
        "data.datasets.clips.train: ",
        f"{project / 'flat'}: no class folders (expected ROOT/<class>/<file>)",
    )
    # a tree of split folders is not a tree of classes
    refused(
        project,
        spec_text({"clips": {"train": "tree", "val": "tree/val"}}),
        [],
        "holds split folders (train, val), not class folders",
    )
    # class folders without media
    _write(project / "docs" / "a" / "readme.txt", "no videos here\n")
    refused(
        project,
        spec_text({"clips": {"train": "docs", "val": "tree/val"}}),
        [],
        "no video or image files under its class folders",
    )


@pytest.mark.parametrize(
    "entry", [{"num_classes": 3}, {}, {"train": None}], ids=["classes-only", "empty", "null-split"]
)
def test_dataset_without_splits(project: Path, entry: dict) -> None:
    datasets = {"clips": {"train": "tree/train", "val": "tree/val"}, "none": entry}
    refused(
        project,
        spec_text(datasets),
        [],
        "data.datasets.none: defines no split (expected train, val or test)",
    )


def test_task_lacking_the_eval_split(project: Path) -> None:
    refused(
        project,
        spec_text(),
        ["eval.eval_split=test"],
        "tasks[0]: dataset 'clips' has no 'test' split (eval.eval_split; it has train, val)",
    )
    refused(
        project, spec_text(), ["eval.train_split=test"], "(eval.train_split; it has train, val)"
    )


def test_mixed_source_kinds_and_too_few_classes(project: Path) -> None:
    mixed = {"m": {"train": "my set/train.csv", "val": "tree/val"}}
    refused(
        project, spec_text(mixed, ["m"]), [], "data.datasets.m: ", "mixes CSV and folder sources"
    )
    few = {"t": {"train": "tree/train", "val": "tree/val", "num_classes": 1}}
    refused(
        project, spec_text(few, ["t"]), [], "data.datasets.t: ", "2 classes found, num_classes is 1"
    )


def test_dataset_level_errors_name_the_key_once(project: Path) -> None:
    few = {"t": {"train": "tree/train", "val": "tree/val", "num_classes": 1}}
    message = refused(project, spec_text(few, ["t"]), [])
    assert message.count("data.datasets.t:") == 1, message


# through the CLI: `error: FILE: KEY: ...` on one stderr line, exit 2, no dvc.yaml/params.yaml

CLI_CASES = [
    ("compile", spec_text(tasks=["clip"]), [], "tasks[0]: 'clip' is not a dataset"),
    (
        "run",
        spec_text({"clips": {"train": "tree/train", "val": "tree/valid"}}),
        [],
        "data.datasets.clips.val: file not found: tree/valid (set data.root=DIR",
    ),
    (
        "compile",
        spec_text({"bad": {"train": "bad/train.csv", "val": "my set/val.csv"}}, ["bad"]),
        [],
        "bad/train.csv:2: label 'x' is not an integer",
    ),
    (
        "run",
        spec_text(),
        ["pretrain.data.datasets={clips:nan}"],
        "pretrain.data.datasets.clips: expected a number > 0",
    ),
]


@pytest.mark.parametrize(
    "command, text, overrides, fragment", CLI_CASES, ids=["task", "source", "csv", "weight"]
)
def test_cli_error_is_one_line_and_writes_nothing(
    project: Path, command: str, text: str, overrides: list[str], fragment: str
) -> None:
    _write(
        project / "bad" / "train.csv",
        "../my set/clips/walk one.mp4 0\n../my set/clips/run two.mp4 x\n",
    )
    write_spec(project, text)
    before = files(project)
    args = ["compile", SPEC] if command == "compile" else ["run", "--dry-run", SPEC]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "NO_COLOR": "1"}
    out = subprocess.run(
        [str(BIN / "vjepa-exp"), *args, *overrides],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: {SPEC}: "), lines[0]
    assert fragment in lines[0], lines[0]
    assert out.stdout == ""
    assert files(project) == before
    assert not (project / "dvc.yaml").exists() and not (project / "params.yaml").exists()


# ---------------------------------------------------------------------------------------------
# what compiles


def _task_extracts(compiled, task: str) -> dict[str, Any]:
    return {
        s.config["data"]["split"]: s
        for s in stages(compiled, "extract")
        if s.config["data"]["task"] == task
    }


def _default_geometry(model: dict[str, Any]) -> dict[str, Any]:
    return {
        "frames_per_clip": model["num_frames"],
        "frame_step": 1,
        "num_segments": 1,
        "num_views": 1,
        "crop_size": model["img_size"],
        "pool": "tokens",
    }


def test_class_tree_needs_no_protocol_or_split_setting(project: Path) -> None:
    c = compile_ok(project, spec_text())
    (data,) = stages(c, "data")
    assert data.config["dataset"] == "clips"
    assert data.config["splits"] == {"train": ["tree/train"], "val": ["tree/val"]}
    extracts = _task_extracts(c, "clips")
    assert set(extracts) == {"train", "val"}  # auto: no test split, so val
    for split, stage in extracts.items():
        assert stage.config["protocol"] == _default_geometry(stage.config["model"])
        assert stage.config["data"] == {
            "index": f"{data.out}/index.parquet",
            "task": "clips",
            "split": split,
        }
        assert data in stage.inputs
    assert {s.config["task"] for s in stages(c, "probe")} == {"clips"}
    assert {p["labels"]["task"] for p in c.report.config["probes"]} == {"clips"}


def test_csv_pair_with_spaces_in_paths(project: Path) -> None:
    datasets = {"pairs": {"train": "my set/train.csv", "val": "my set/val.csv"}}
    c = compile_ok(project, spec_text(datasets, ["pairs"]))
    (data,) = stages(c, "data")
    assert data.config["splits"] == {"train": ["my set/train.csv"], "val": ["my set/val.csv"]}
    extracts = _task_extracts(c, "pairs")
    assert set(extracts) == {"train", "val"}
    assert extracts["val"].config["protocol"] == _default_geometry(extracts["val"].config["model"])
    # the row paths (spaces and all) resolve against the CSV's folder to the real files
    info = inspect_source(project / "my set" / "train.csv")
    rows = [(Path(e.path), e.label) for e in iter_entries(info, "pairs", "train")]
    assert rows == [
        (project / "my set" / "clips" / "walk one.mp4", 0),
        (project / "my set" / "clips" / "run two.mp4", 1),
    ]
    assert all(path.is_file() for path, _ in rows)


def test_image_folder_dataset(project: Path) -> None:
    datasets = {"imgs": {"train": "in1k/train", "val": "in1k/val", "num_classes": 2}}
    c = compile_ok(project, spec_text(datasets, ["imgs"]))
    (data,) = stages(c, "data")
    assert data.config["num_classes"] == 2
    assert {s.config["data"]["num_classes"] for s in stages(c, "extract")} == {2}


def test_test_split_is_picked_when_there_is_one(project: Path) -> None:
    datasets = {"clips": {"train": "tree/train", "val": "tree/val", "test": "tree/val"}}
    c = compile_ok(project, spec_text(datasets))
    assert set(_task_extracts(c, "clips")) == {"train", "test"}
    c = compile_ok(project, spec_text(datasets), ["eval.eval_split=val"])
    assert set(_task_extracts(c, "clips")) == {"train", "val"}


def test_each_dataset_has_its_own_data_stage(project: Path) -> None:
    clips = {"train": "tree/train", "val": "tree/val"}
    pairs = {"train": "my set/train.csv", "val": "my set/val.csv"}
    one = compile_ok(project, spec_text({"clips": clips}))
    two = compile_ok(project, spec_text({"clips": clips, "pairs": pairs}, ["clips", "pairs"]))
    (first,) = stages(one, "data")
    by_dataset = {s.config["dataset"]: s for s in stages(two, "data")}
    assert set(by_dataset) == {"clips", "pairs"}
    assert by_dataset["clips"].name == first.name  # adding a dataset re-indexes nothing of another
    assert by_dataset["pairs"].uid != first.uid
    # the unchanged task's extract of the eval split reads the same data stage
    assert _task_extracts(two, "clips")["val"].inputs[0].name == first.name


def test_data_root(project: Path, tmp_path: Path, media) -> None:
    # relative sources start at data.root (itself relative to the project)
    for split, video in (("train", media["videos"][0]), ("val", media["videos"][4])):
        _copy(video, project / "store" / "tree" / split / "walk" / video.name)
        _copy(video, project / "store" / "tree" / split / "run" / video.name)
    (data,) = stages(compile_ok(project, spec_text(root="store")), "data")
    assert data.config["splits"] == {"train": ["store/tree/train"], "val": ["store/tree/val"]}
    # a root outside the project: the sources are stored absolute
    outside = tmp_path / "elsewhere"
    shutil.copytree(project / "store", outside)
    (data,) = stages(compile_ok(project, spec_text(root=str(outside))), "data")
    assert data.config["splits"] == {
        "train": [str(outside / "tree" / "train")],
        "val": [str(outside / "tree" / "val")],
    }
    # an absolute source inside the project is stored relative to it
    absolute = {"clips": {"train": str(project / "tree" / "train"), "val": "tree/val"}}
    (data,) = stages(compile_ok(project, spec_text(absolute)), "data")
    assert data.config["splits"] == {"train": ["tree/train"], "val": ["tree/val"]}


def test_mixture_list_and_mapping(project: Path) -> None:
    datasets = {
        "clips": {"train": "tree/train", "val": "tree/val"},
        "pairs": {"train": "my set/train.csv", "val": "my set/val.csv"},
        "imgs": {"train": "in1k/train", "val": "in1k/val"},
    }
    c = compile_ok(project, spec_text(datasets, ["clips"], mixture=["pairs", "clips"]))
    by_dataset = {s.config["dataset"]: s for s in stages(c, "data")}
    assert set(by_dataset) == {"clips", "pairs"}  # imgs is neither a task nor mixed in
    (pre,) = stages(c, "pretrain")
    assert pre.config["data"] == {
        "mixture": [
            {"index": f"{by_dataset['pairs'].out}/index.parquet", "task": "pairs", "weight": None},
            {"index": f"{by_dataset['clips'].out}/index.parquet", "task": "clips", "weight": None},
        ],
        "split": "train",
    }
    assert [s.name for s in pre.inputs] == [by_dataset["pairs"].name, by_dataset["clips"].name]
    # the mapping form (here from the command line) carries the weights
    c = compile_ok(
        project, spec_text(datasets, ["clips"]), ["pretrain.data.datasets={pairs:1.0,imgs:3.0}"]
    )
    (pre,) = stages(c, "pretrain")
    assert [(m["task"], m["weight"]) for m in pre.config["data"]["mixture"]] == [
        ("pairs", 1.0),
        ("imgs", 3.0),
    ]
    assert {s.config["dataset"] for s in pre.inputs} == {"pairs", "imgs"}
    # without a mixture: every dataset with a train split, concatenated
    c = compile_ok(project, spec_text(datasets, ["clips"]))
    (pre,) = stages(c, "pretrain")
    assert [(m["task"], m["weight"]) for m in pre.config["data"]["mixture"]] == [
        ("clips", None),
        ("pairs", None),
        ("imgs", None),
    ]


@pytest.mark.parametrize("where", ["spec", "cli-over-list"])
def test_mixture_mapping_is_accepted_in_the_spec_and_over_a_list(project: Path, where: str) -> None:
    datasets = {
        "clips": {"train": "tree/train", "val": "tree/val"},
        "pairs": {"train": "my set/train.csv", "val": "my set/val.csv"},
    }
    if where == "spec":
        c = compile_ok(project, spec_text(datasets, mixture={"clips": 1.0, "pairs": 3.0}))
    else:
        c = compile_ok(
            project,
            spec_text(datasets, mixture=["clips", "pairs"]),
            ["pretrain.data.datasets={clips:1.0,pairs:3.0}"],
        )
    (pre,) = stages(c, "pretrain")
    assert [m["weight"] for m in pre.config["data"]["mixture"]] == [1.0, 3.0]


# ---------------------------------------------------------------------------------------------
# scales

PAPER = REPO / "experiments" / "paper_vitl16.yaml"


def test_laptop_scale_swaps_model_and_executor() -> None:
    # the datasets are not here: their published sizes would stream; stores are asked for
    c = compile_spec(PAPER, ["scale=laptop", "eval.features=store"], REPO, check_paths=False)
    assert c.executor["kind"] == "local"
    assert {s.config["model"]["name"] for s in stages(c, "pretrain") + stages(c, "extract")} == {
        "vit_micro"
    }
    k400 = next(s for s in stages(c, "extract") if s.config["data"]["task"] == "k400")
    assert k400.config["protocol"]["crop_size"] == 32
    assert {m["task"] for m in stages(c, "pretrain")[0].config["data"]["mixture"]} == {
        "k710",
        "ssv2",
        "howto100m",
    }
    # the command line beats the scale
    c = compile_spec(PAPER, ["scale=laptop", "model=vit_mini"], REPO, check_paths=False)
    assert {s.config["model"]["name"] for s in stages(c, "pretrain")} == {"vit_mini"}
    assert c.executor["kind"] == "local"


def test_scale_is_chosen_whole(tmp_path: Path) -> None:
    for override, fragment in (
        ("scale.x=1", "override 'scale.x=1': a scale is chosen whole (scale=NAME)"),
        ("scale=laptop,paper", "the scale cannot be swept"),
    ):
        with pytest.raises(SpecError) as info:
            compile_spec(PAPER, [override], REPO, check_paths=False)
        assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)
    (tmp_path / ".dvc").mkdir()
    spec = yaml.safe_load(PAPER.read_text())
    spec["ablate"] = {"scale": ["laptop", "paper"]}
    path = write_spec(tmp_path, yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(SpecError) as info:
        compile_spec(path, [], tmp_path, check_paths=False)
    message = str(info.value)
    assert message.startswith(f"{SPEC}: ablate.scale: the scale cannot be ablated"), message
    assert "\n" not in message
    assert not (tmp_path / "dvc.yaml").exists()


@pytest.mark.parametrize("weight", [0, -1, "heavy", float("nan")])
def test_mixture_mapping_in_the_spec_checks_each_weight(project: Path, weight: Any) -> None:
    datasets = {"clips": {"train": "tree/train", "val": "tree/val"}}
    refused(
        project,
        spec_text(datasets, mixture={"clips": weight}),
        [],
        "pretrain.data.datasets.clips",
        "expected a number > 0",
    )
