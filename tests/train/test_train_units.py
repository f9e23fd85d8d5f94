"""Unit checks of the training pieces against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vjepa.train import distributed as D
from vjepa.train.ema import ema_update, make_target
from vjepa.train.objectives import gather_tokens, patchify, pixel_targets
from vjepa.train.optim import build_optimizer, param_groups, set_hyperparams
from vjepa.train.sampling import EpochBatchSampler, derive_seed, epoch_order
from vjepa.train.schedules import Schedules, cosine_weight_decay, linear_momentum, warmup_cosine

torch.set_num_threads(1)


def test_warmup_cosine_values():
    # warmup 10 steps 0.1 -> 1.0, cosine to 0.0 over horizon 30 (20 cosine steps)
    assert warmup_cosine(0, 10, 30, 0.1, 1.0, 0.0) == pytest.approx(0.1)
    assert warmup_cosine(5, 10, 30, 0.1, 1.0, 0.0) == pytest.approx(0.55)
    assert warmup_cosine(10, 10, 30, 0.1, 1.0, 0.0) == pytest.approx(1.0)
    assert warmup_cosine(20, 10, 30, 0.1, 1.0, 0.0) == pytest.approx(0.5)
    assert warmup_cosine(30, 10, 30, 0.1, 1.0, 0.0) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(99, 10, 30, 0.1, 1.0, 0.0) == pytest.approx(0.0, abs=1e-12)


def test_wd_and_momentum_values():
    assert cosine_weight_decay(0, 100, 0.04, 0.4) == pytest.approx(0.04)
    assert cosine_weight_decay(50, 100, 0.04, 0.4) == pytest.approx(0.22)
    assert cosine_weight_decay(100, 100, 0.04, 0.4) == pytest.approx(0.4)
    assert linear_momentum(0, 100, 0.998, 1.0) == pytest.approx(0.998)
    assert linear_momentum(25, 100, 0.998, 1.0) == pytest.approx(0.9985)


def test_paper_schedule_is_stretched_by_ipe_scale():
    # Paper: 300 epochs x 300 it = 90k steps, warmup 40 epochs = 12k, cosine over 1.25 x 90k.
    s = Schedules.from_config(
        {"epochs": 300, "iterations_per_epoch": 300, "warmup_epochs": 40, "ipe_scale": 1.25,
         "start_lr": 2e-4, "lr": 6.25e-4, "final_lr": 1e-6, "weight_decay": 0.04,
         "final_weight_decay": 0.4, "ema": [0.998, 1.0]}
    )  # fmt: skip
    assert s.warmup_steps == 12000 and s.horizon == 112500
    assert s.lr_at(12000) == pytest.approx(6.25e-4)
    progress = (90000 - 12000) / (112500 - 12000)
    expected = 1e-6 + (6.25e-4 - 1e-6) * 0.5 * (1 + math.cos(math.pi * progress))
    assert s.lr_at(90000) == pytest.approx(expected)
    assert s.lr_at(90000) > 1e-5  # training stops before the end of the cosine
    assert s.momentum_at(90000) == pytest.approx(0.998 + 0.002 * 0.8)


def test_ema_update_hand_computed():
    online, target = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        online.weight.copy_(torch.tensor([[1.0, 2.0]]))
        online.bias.fill_(3.0)
        target.weight.copy_(torch.tensor([[0.0, 4.0]]))
        target.bias.fill_(-1.0)
    ema_update(target, online, 0.9)
    assert torch.allclose(target.weight, torch.tensor([[0.1, 3.8]]))
    assert torch.allclose(target.bias, torch.tensor([-0.6]))
    assert torch.equal(online.weight, torch.tensor([[1.0, 2.0]]))  # online untouched


def test_make_target_is_frozen_copy():
    online = nn.Linear(3, 3)
    target = make_target(online)
    assert all(not p.requires_grad for p in target.parameters())
    assert torch.equal(target.weight, online.weight) and target.weight is not online.weight


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.token = nn.Parameter(torch.zeros(1, 1, 4))
        self.fixed = nn.Parameter(torch.zeros(1, 4), requires_grad=False)


def test_no_weight_decay_on_bias_and_1d():
    m = Tiny()
    decay, no_decay = param_groups([m])
    names = {id(p): n for n, p in m.named_parameters()}
    assert sorted(names[id(p)] for p in decay["params"]) == ["proj.weight", "token"]
    assert sorted(names[id(p)] for p in no_decay["params"]) == [
        "norm.bias",
        "norm.weight",
        "proj.bias",
    ]
    assert no_decay["weight_decay"] == 0.0
    opt = build_optimizer([m], lr=1e-3, weight_decay=0.04)
    assert opt.defaults["betas"] == (0.9, 0.999) and opt.defaults["eps"] == 1e-8
    set_hyperparams(opt, 0.5, 0.3)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.3, 0.0]
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.5]


def test_pixel_targets_hand_computed():
    # One clip, C=3, T=2, H=W=4, tubelet 2, patch 2 -> 4 tokens of 2*2*2*3 = 24 values.
    video = torch.arange(3 * 2 * 4 * 4, dtype=torch.float32).reshape(1, 3, 2, 4, 4)
    tokens = patchify(video, tubelet=2, patch=2)
    assert tokens.shape == (1, 4, 24)
    # token 1 = (t 0, h 0, w 1); its first values: dt 0, dy 0, dx 0, c 0..2
    c_stride, t_stride, h_stride = 32, 16, 4
    first = [c * c_stride + 0 * t_stride + 0 * h_stride + 2 for c in range(3)]
    assert tokens[0, 1, :3].tolist() == first
    # hand normalisation of token 3 (h 1, w 1)
    raw = torch.tensor(
        [c * c_stride + dt * t_stride + (2 + dy) * h_stride + (2 + dx)
         for dt in range(2) for dy in range(2) for dx in range(2) for c in range(3)],
        dtype=torch.float64,
    )  # fmt: skip
    assert tokens[0, 3].double().tolist() == raw.tolist()
    mean = raw.sum() / 24
    var = ((raw - mean) ** 2).sum() / 23  # unbiased, as MAE
    expected = (raw - mean) / math.sqrt(var + 1e-6)
    got = pixel_targets(video, tubelet=2, patch=2)[0, 3].double()
    assert torch.allclose(got, expected, atol=1e-5)
    assert got.mean().abs() < 1e-5


def test_gather_tokens():
    x = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    idx = torch.tensor([[0, 3], [1, 2]])
    assert gather_tokens(x, idx).squeeze(-1).tolist() == [[0.0, 3.0], [5.0, 6.0]]


def test_epoch_order_is_function_of_seed_and_epoch_and_cycles():
    a = epoch_order(5, seed=0, epoch=0, length=12)
    assert a == epoch_order(5, seed=0, epoch=0, length=12)
    assert a != epoch_order(5, seed=0, epoch=1, length=12)
    assert sorted(i for i, _ in a[:5]) == list(range(5)) == sorted(i for i, _ in a[5:10])
    assert [k for _, k in a] == [0] * 5 + [1] * 5 + [2] * 2  # pass number = dataset epoch
    assert {k for _, k in epoch_order(5, seed=0, epoch=1, length=12)} == {3, 4, 5}
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3) != derive_seed(1, 2, 4)


def test_ranks_split_the_global_batch_and_resume_skips():
    one = EpochBatchSampler(7, batch_size=4, batches_per_epoch=3, seed=1)
    r0 = EpochBatchSampler(7, batch_size=2, batches_per_epoch=3, seed=1, rank=0, world_size=2)
    r1 = EpochBatchSampler(7, batch_size=2, batches_per_epoch=3, seed=1, rank=1, world_size=2)
    for b, b0, b1 in zip(one, r0, r1, strict=True):
        assert b == b0 + b1
    full = list(one)
    one.set_epoch(0, start=2)
    assert list(one) == full[2:]
    one.set_epoch(1)
    assert list(one) != full


def test_slurm_env_and_port():
    env = {"SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1",
           "SLURM_JOB_ID": "123456", "SLURM_JOB_NODELIST": "gpu[03-05,07]"}  # fmt: skip
    denv = D.read_env(env)
    assert (denv.rank, denv.world_size, denv.local_rank) == (3, 4, 1)
    assert env["MASTER_ADDR"] == "gpu03"
    assert env["MASTER_PORT"] == str(20000 + 123456 % 20000)
    assert D.read_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}).world_size == 2
    assert D.read_env({}).world_size == 1
    assert D.first_host("node7") == "node7"


def test_flops_hand_counted():
    from vjepa.models import build_encoder, build_predictor
    from vjepa.train.flops import block_flops, train_step_flops

    n, d = 10, 8  # qkv 6nd^2 + attn 4n^2d + proj 2nd^2 + mlp 4nd(4d)
    assert block_flops(n, d, 4.0) == 6 * 10 * 64 + 4 * 100 * 8 + 2 * 10 * 64 + 4 * 10 * 8 * 32
    enc = build_encoder("vit_micro", num_frames=8, img_size=32, patch_size=8)
    pred = build_predictor(enc, depth=2, embed_dim=48)
    feature = train_step_flops(enc, pred, [20, 30], [40, 30], batch_size=2)
    pixel = train_step_flops(enc, pred, [20, 30], [40, 30], batch_size=2, target="pixel")
    embed = 2 * 64 * (3 * 2 * 8 * 8) * 96
    assert feature["target_encoder"] == 2 * (embed + 4 * block_flops(64, 96, 4.0))
    assert pixel["total"] == feature["encoder_predictor"] == pixel["encoder_predictor"]
