"""Autocast dtype choice on CPU and GPU, the exact multi-tensor optimizer, the compile cache."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import pytest
import torch
from torch import nn

from vjepa.errors import UserError
from vjepa.train import compiling, precision
from vjepa.train.optim import build_optimizer

torch.set_num_threads(1)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\nflags : other\n")
    assert precision.cpu_flags(info) == {"fpu", "avx2", "avx512f", "avx512_bf16"}
    assert precision.cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize(
    ("capability", "flags", "native"),
    [
        ("AVX512", {"avx512f", "avx512_bf16"}, True),
        ("AVX512", {"avx512f", "amx_bf16"}, True),
        ("AVX512", {"avx512f"}, False),  # AVX-512 without bf16 arithmetic
        ("AVX2", {"avx2", "avx512_bf16"}, False),  # PyTorch would not use the AVX-512 kernels
    ],
)
def test_native_bf16_needs_the_flag_and_avx512_kernels(monkeypatch, capability, flags, native):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert precision.cpu_has_bf16(flags) is native


def test_auto_is_bf16_on_gpu_and_follows_the_cpu(monkeypatch):
    assert precision.autocast_dtype("auto", "cuda") is torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert precision.autocast_dtype("auto", "cpu") is None
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert precision.autocast_dtype("auto", "cpu") is torch.bfloat16
    # an explicit dtype is honoured on a CPU whatever its flags
    assert precision.autocast_dtype("bfloat16", "cpu") is torch.bfloat16
    assert precision.autocast_dtype("float32", "cpu") is None


def test_float16_on_cpu_is_one_line_error():
    with pytest.raises(UserError) as err:
        precision.autocast_dtype("float16", "cpu")
    assert "\n" not in str(err.value) and "pretrain.dtype float16 needs a GPU" in str(err.value)
    with pytest.raises(UserError, match="pretrain.dtype must be one of auto, bfloat16"):
        precision.autocast_dtype("fp8", "cpu")


def tiny_trainer(dtype: str):
    from vjepa.train import distributed
    from vjepa.train.config import resolve
    from vjepa.train.loop import Trainer

    cfg = resolve(
        {
            "data": {"index": "unused"},
            "clip": {"frames_per_clip": 4, "crop_size": 16},
            "model": {"name": "vit_micro", "num_frames": 4, "img_size": 16, "patch_size": 8,
                      "tubelet_size": 2, "pred_depth": 1, "pred_embed_dim": 48},
            "masking": {"name": "multiblock_small"},
            "pretrain": {"batch_size": 2, "epochs": 1, "iterations_per_epoch": 4,
                         "warmup_epochs": 0, "dtype": dtype, "device": "cpu", "progress": False},
        }
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        return Trainer(cfg, Path(tmp), distributed.DistEnv(), "cpu")


def test_bfloat16_is_honoured_on_cpu():
    trainer = tiny_trainer("bfloat16")
    seen = []
    fc1 = trainer.jepa.encoder.blocks[0].mlp.fc1
    fc1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    batch = {
        "video": torch.randn(2, 1, 1, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    }
    record = trainer.train_step(iter(lambda: batch, None))
    assert seen and set(seen) == {torch.bfloat16}  # target and context passes, in bf16
    assert torch.isfinite(torch.tensor(record["loss"]))
    # weights, gradients' updates and optimizer state stay float32
    assert {p.dtype for p in trainer.jepa.parameters()} == {torch.float32}
    assert trainer.scaler.is_enabled() is False


def test_multi_tensor_adamw_is_bitwise_the_loop():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 4))
    runs = []
    for foreach in (False, True):
        m = copy.deepcopy(model)
        opt = build_optimizer([m], lr=1e-2, weight_decay=0.05)
        for group in opt.param_groups:
            group["foreach"] = foreach
        g = torch.Generator().manual_seed(1)
        for _ in range(4):
            for p in m.parameters():
                p.grad = torch.randn(p.shape, generator=g)
            nn.utils.clip_grad_norm_(list(m.parameters()), 1.0, foreach=foreach)
            opt.step()
        runs.append([p.detach().clone() for p in m.parameters()])
    assert build_optimizer([model], 1e-2, 0.05).defaults["foreach"] is True
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


def test_compile_cache_defaults_under_the_working_directory(tmp_path, monkeypatch):
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.chdir(tmp_path)
    ours = tmp_path / ".vjepa" / "cache" / "inductor"
    monkeypatch.delenv(compiling.CACHE_ENV, raising=False)
    assert compiling.compile_cache_dir() == ours
    # inductor's own default, written into the variable when it looked it up, counts as unset
    monkeypatch.setenv(compiling.CACHE_ENV, default_cache_dir())
    assert compiling.compile_cache_dir() == ours
    monkeypatch.setenv(compiling.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert compiling.compile_cache_dir() == tmp_path / "elsewhere"
