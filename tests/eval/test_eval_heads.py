"""Multi-head probes: K optimiser settings on one pass, chosen on validation, never on test."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch

from vjepa.errors import UserError
from vjepa.eval.heads import choose_head, head_params, train_heads, train_probe
from vjepa.eval.probe_train import FeatureSet, ProbeParams
from vjepa.eval.store import write_array_store
from vjepa.stages import run_stage

torch.set_num_threads(1)


def _tokens(n: int, classes: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Tokens [n, 1 segment, 1 view, 4 tokens, 16 dims]; one token carries a class prototype."""
    g = torch.Generator().manual_seed(seed)
    labels = np.arange(n) % classes
    x = torch.randn(n, 1, 1, 4, 16, generator=g)
    protos = torch.randn(classes, 16, generator=torch.Generator().manual_seed(9))
    x[:, 0, 0, 1] += 1.5 * protos[torch.as_tensor(labels)]
    return x, labels


def make_store(root: Path, n: int = 120, classes: int = 4, seed: int = 0, labels=None) -> Path:
    x, true_labels = _tokens(n, classes, seed)
    write_array_store(
        root,
        x,
        true_labels if labels is None else labels,
        num_classes=classes,
        num_heads=2,
        rows_per_shard=48,
        task="motion",
        encoder_uid="enc",
    )
    return root


def _sets(n_train: int = 64, n_val: int = 32) -> tuple[FeatureSet, FeatureSet]:
    x, labels = _tokens(n_train + n_val, 4, 0)
    rows = np.arange(n_train + n_val)
    return FeatureSet(x, rows[:n_train], labels), FeatureSet(x, rows[n_train:], labels)


def _params(**kw) -> ProbeParams:
    base = {"kind": "attentive", "num_heads": 2, "epochs": 3, "batch_size": 16, "lr": 5e-3}
    return ProbeParams(**{**base, **kw})


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ----------------------------------------------------------------------------- config
def test_grid_expands_to_the_product_lr_major():
    p = ProbeParams.from_config({"heads": {"lr": [1e-3, 1e-2], "weight_decay": [0.0, 0.1, 0.4]}})
    assert p.heads == [
        {"lr": 1e-3, "weight_decay": 0.0},
        {"lr": 1e-3, "weight_decay": 0.1},
        {"lr": 1e-3, "weight_decay": 0.4},
        {"lr": 1e-2, "weight_decay": 0.0},
        {"lr": 1e-2, "weight_decay": 0.1},
        {"lr": 1e-2, "weight_decay": 0.4},
    ]
    assert p.to_dict()["heads"] == p.heads


def test_missing_head_keys_take_the_shared_values_and_yaml_strings_parse():
    p = ProbeParams.from_config({"lr": 2e-3, "weight_decay": 0.05, "heads": {"lr": ["1e-3", 3e-3]}})
    assert p.heads == [{"lr": 1e-3, "weight_decay": 0.05}, {"lr": 3e-3, "weight_decay": 0.05}]
    p = ProbeParams.from_config({"heads": [{"lr": 1e-4}, {"weight_decay": 0.8}]})
    assert p.heads == [{"lr": 1e-4, "weight_decay": 0.01}, {"lr": 1e-3, "weight_decay": 0.8}]
    assert head_params(p, 1).lr == 1e-3 and head_params(p, 1).weight_decay == 0.8
    assert head_params(p, 1).heads is None


def test_no_heads_keeps_the_params_dict_of_a_single_probe():
    for cfg in ({}, {"heads": None}):
        d = ProbeParams.from_config(cfg).to_dict()
        assert "heads" not in d and ProbeParams(**d) == ProbeParams()


@pytest.mark.parametrize(
    ("heads", "match"),
    [
        ([], r"^probe\.heads: empty list$"),
        ({}, r"^probe\.heads: empty grid"),
        ({"lr": []}, r"^probe\.heads\.lr: empty list$"),
        ({"lr": 1e-3}, r"^probe\.heads\.lr: a grid takes a list"),
        ({"momentum": [0.9]}, r"^probe\.heads\.momentum: unknown key"),
        ([{"lr": 1e-3}, {"lr": 1e-3, "beta": 2}], r"^probe\.heads\[1\]\.beta: unknown key"),
        ([{"lr": 0}], r"^probe\.heads\[0\]\.lr: must be positive"),
        ([{"lr": 1e-3}, {"lr": -1e-3}], r"^probe\.heads\[1\]\.lr: must be positive"),
        ([{"weight_decay": -0.1}], r"^probe\.heads\[0\]\.weight_decay: must be >= 0"),
        ({"weight_decay": [0.1, -1]}, r"^probe\.heads\.weight_decay\[1\]: must be >= 0"),
        ([{"lr": "fast"}], r"^probe\.heads\[0\]\.lr: must be a number"),
        ([{"lr": True}], r"^probe\.heads\[0\]\.lr: must be a number"),
        ([{"lr": 1e-3}, {"lr": 1e-3, "weight_decay": 0.01}], r"^probe\.heads\[1\]: duplicates"),
        ({"lr": [1e-3, 2e-3, 1e-3]}, r"^probe\.heads\.lr\[2\]: duplicates probe\.heads\.lr\[0\]"),
        ([0.001], r"^probe\.heads\[0\]: a mapping"),
        ("1e-3", r"^probe\.heads: a list of"),
    ],
)
def test_bad_heads_give_one_line_errors(heads, match):
    with pytest.raises(UserError, match=match) as err:
        ProbeParams.from_config({"heads": heads})
    assert "\n" not in str(err.value)


def test_train_probe_refuses_heads():
    x, y = _sets()
    with pytest.raises(UserError, match="probe.heads"):
        train_probe(
            x, y, _params(heads=[{"lr": 1e-3, "weight_decay": 0.0}]), num_classes=4, embed_dim=16
        )


# ----------------------------------------------------------------------------- training
def test_one_head_is_exactly_the_single_probe():
    train, val = _sets()
    params = _params(weight_decay=0.05)
    single = train_probe(train, val, params, num_classes=4, embed_dim=16, seed=3)
    multi = train_heads(
        train,
        val,
        _params(weight_decay=0.05, heads=[{"lr": 5e-3, "weight_decay": 0.05}]),
        num_classes=4,
        embed_dim=16,
        seed=3,
    )
    (head,) = multi.results
    assert multi.chosen == 0
    assert head.history == single.history and head.best_epoch == single.best_epoch
    assert head.val_top1 == single.val_top1 and _same_state(head.model, single.model)


def test_identical_heads_give_identical_results_from_one_data_pass():
    train, val = _sets()
    reads = []
    batch = train.batch
    train.batch = lambda idx: (reads.append(idx.clone()), batch(idx))[1]
    same = {"lr": 5e-3, "weight_decay": 0.01}
    res = train_heads(train, val, _params(heads=[same] * 3), num_classes=4, embed_dim=16)
    a, b, c = res.results
    assert a.history == b.history == c.history
    assert a.best_epoch == b.best_epoch == c.best_epoch and a.val_top1 == b.val_top1 == c.val_top1
    assert _same_state(a.model, b.model) and _same_state(a.model, c.model)
    assert res.chosen == 0  # a tie goes to the lowest index
    steps = 3 * -(-len(train) // 16)
    assert len(reads) == steps  # every batch read once for all three heads


def test_heads_with_other_settings_differ_and_the_choice_is_the_val_argmax():
    train, val = _sets()
    heads = [{"lr": 1e-5, "weight_decay": 0.0}, {"lr": 1e-2, "weight_decay": 0.0}]
    res = train_heads(train, val, _params(heads=heads), num_classes=4, embed_dim=16)
    vals = [r.val_top1 for r in res.results]
    assert res.chosen == choose_head(vals) == int(np.argmax(vals))
    assert not _same_state(res.results[0].model, res.results[1].model)
    assert choose_head([50.0, 70.0, 70.0, 10.0]) == 1


def test_heads_need_validation_rows():
    train, _ = _sets()
    heads = [{"lr": 1e-3, "weight_decay": 0.0}]
    with pytest.raises(UserError, match="validation rows"):
        train_heads(train, None, _params(heads=heads), num_classes=4, embed_dim=16)


# ----------------------------------------------------------------------------- stage
def _config(train: Path, evals: Path, heads, **extra) -> dict:
    return {
        "features": {"train": str(train), "eval": str(evals)},
        "task": "motion",
        "probe": {"kind": "attentive", "epochs": 4, "batch_size": 32, "heads": heads},
        "val_fraction": 0.25,
        "seed": 0,
        **extra,
    }


def test_stage_with_heads_reports_every_head_and_never_selects_on_test(tmp_path):
    """The head and epoch chosen on validation do not move when the test labels are scrambled;
    no open of a test-store file happens while the heads train."""
    train = make_store(tmp_path / "train")
    honest = make_store(tmp_path / "eval", n=48, seed=1)
    x_labels = np.arange(48) % 4
    scrambled = make_store(
        tmp_path / "eval-scrambled", n=48, seed=1, labels=(x_labels + 1 + np.arange(48) % 3) % 4
    )
    heads = {"lr": [1e-5, 3e-3, 3e-2], "weight_decay": [0.01]}
    opens: list[tuple[str, bool]] = []
    roots = (str(honest), str(scrambled))

    def hook(event, args):
        if event == "open" and isinstance(args[0], str | os.PathLike):
            path = os.fspath(args[0])
            if isinstance(path, str) and path.startswith(roots):
                names = {f.name for f in traceback.extract_stack()}
                opens.append((path, "train_heads" in names))

    sys.addaudithook(hook)
    try:
        m = run_stage("probe", _config(train, honest, heads), tmp_path / "a")
        adv = run_stage("probe", _config(train, scrambled, heads), tmp_path / "b")
    finally:
        roots = ("\0",)  # audit hooks cannot be removed: disarm it
    assert opens and not [p for p, training in opens if training]

    assert [(h["lr"], h["weight_decay"]) for h in m["heads"]] == [
        (1e-5, 0.01),
        (3e-3, 0.01),
        (3e-2, 0.01),
    ]
    for h in m["heads"]:
        assert set(h) == {"lr", "weight_decay", "val_top1", "epoch", "top1", "top5"}
    vals = [h["val_top1"] for h in m["heads"]]
    assert m["chosen_head"] == choose_head(vals) and len(set(vals)) > 1
    chosen = m["heads"][m["chosen_head"]]
    assert (m["top1"], m["top5"]) == (chosen["top1"], chosen["top5"])
    assert m["val_top1"] == chosen["val_top1"] and m["best_epoch"] == chosen["epoch"]
    assert (
        m["params"]["heads"] == [{"lr": lr, "weight_decay": 0.01} for lr in heads["lr"]]
        and m["n_eval"] == 48
    )
    assert m["top1"] > 50.0

    # scrambled test labels: the same choice, the same val accuracies and epochs; other test scores
    key = [(h["val_top1"], h["epoch"]) for h in m["heads"]]
    assert [(h["val_top1"], h["epoch"]) for h in adv["heads"]] == key
    assert adv["chosen_head"] == m["chosen_head"]
    assert [h["top1"] for h in adv["heads"]] != [h["top1"] for h in m["heads"]]
    assert adv["top1"] < m["top1"]

    ckpt = torch.load(tmp_path / "a" / "probe.pt", weights_only=True)
    assert ckpt["chosen_head"] == m["chosen_head"] and ckpt["epoch"] == chosen["epoch"] + 1
    assert ckpt["params"]["lr"] == chosen["lr"] and "heads" not in ckpt["params"]


def test_stage_refuses_heads_with_a_sweep(tmp_path):
    train = make_store(tmp_path / "train")
    cfg = _config(train, tmp_path / "eval", [{"lr": 1e-3}], sweep={"n_trials": 2})
    with pytest.raises(UserError, match=r"^probe\.heads and sweep are exclusive: ") as err:
        run_stage("probe", cfg, tmp_path / "out")
    assert "\n" not in str(err.value)
