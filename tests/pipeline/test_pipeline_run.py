"""The runner with real DVC and real subprocesses, on cheap stand-in stage bodies.

The stand-ins (installed through a ``sitecustomize`` on PYTHONPATH, only in the child processes)
write tiny files and deterministic metrics, so these tests exercise compile -> DVC status ->
executor -> dvc commit -> results without any training.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
FAKE = """
import os, sys, types, json, time, hashlib
if os.environ.get("VJEPA_FAKE_STAGES") == "1":
    def _h(obj):
        return int(hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    def _maybe(kind, config):
        fail = os.environ.get("FAKE_FAIL", "")
        if fail and fail in json.dumps(config, sort_keys=True) and kind == os.environ.get("FAKE_FAIL_KIND", kind):
            raise RuntimeError(f"fake {kind} failure")
        time.sleep(float(os.environ.get(f"FAKE_SLEEP_{kind.upper()}", "0")))
    def data(config, out):
        _maybe("data", config); (out / "index.parquet").write_text("index")
        return {"videos": 4, "threads": os.environ.get("OMP_NUM_THREADS")}
    def pretrain(config, out):
        (out / "ckpt").mkdir(exist_ok=True); (out / "ckpt" / "latest.pt").write_text("resume")
        _maybe("pretrain", config)
        (out / "checkpoint.pt").write_text(json.dumps(config, sort_keys=True)); return {"loss": _h(config)}
    def extract(config, out):
        (out / "features").mkdir(); _maybe("extract", config)
        (out / "features" / "manifest.json").write_text("{}"); return {"n": 4}
    def probe(config, out):
        (out / "probe.pt").write_text("p"); _maybe("probe", config)
        v = _h(config)
        return {"top1": v, "top5": min(1.0, v + 0.2), "label_fraction": config["label_fraction"]}
    for _name, _fn in (("data", data), ("pretrain", pretrain), ("extract", extract), ("probe", probe)):
        _m = types.ModuleType(f"vjepa.stages.{_name}"); _m.run = _fn
        sys.modules[f"vjepa.stages.{_name}"] = _m
"""

SPEC = """\
name: tiny
defaults:
  - data: synth_tiny
seeds: [0]
tasks: [motion]
ablate:
  pretrain.target: [feature, pixel]
baselines:
  random_init: {encoder: random}
report: {rows: [target], columns: [task], metric: top1, baseline: random_init}
"""


@pytest.fixture()
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "proj"
    root.mkdir()
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "sitecustomize.py").write_text(FAKE)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(fake),
        "VJEPA_FAKE_STAGES": "1",
        "DVC_NO_ANALYTICS": "1",
        "COLUMNS": "200",
    }
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=root, check=True, env=env)
    (root / "experiments").mkdir()
    (root / "experiments" / "tiny.yaml").write_text(textwrap.dedent(SPEC))
    return root, env


def vx(
    root: Path,
    env: dict[str, str],
    *args: str,
    extra: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [str(BIN / "vjepa-exp"), *args],
        cwd=root,
        env={**env, **(extra or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and out.returncode != 0:
        raise AssertionError(
            f"vjepa-exp {' '.join(args)} -> {out.returncode}\n{out.stdout}\n{out.stderr}"
        )
    return out


def dvc(root: Path, env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [str(BIN / "dvc"), *args], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return out.stdout + out.stderr


def ran(output: str) -> set[str]:
    return {
        line.split("done: ", 1)[1].split(" ")[0]
        for line in output.splitlines()
        if line.startswith("done: ")
    }


def results_json(root: Path, env: dict[str, str]) -> list[dict]:
    return json.loads(vx(root, env, "results", "experiments/tiny.yaml", "--format", "json").stdout)


def dry_run(root: Path, env: dict[str, str], *overrides: str) -> tuple[str, list[str]]:
    """(summary line, listed stage names) of ``run --dry-run``."""
    out = vx(root, env, "run", "experiments/tiny.yaml", *overrides, "--dry-run").stdout
    lines = out.strip().splitlines()
    # the stage list is indented; the frozen-evaluation table follows it
    return lines[0], [
        line.strip() for line in lines[1:] if line.startswith("  ") and line[2:3].isalnum()
    ]


@pytest.mark.slow  # ~95 s on 2 cores
def test_run_is_recorded_and_reruns_only_what_changed(project) -> None:
    root, env = project
    # the project holds the package's sources, as a checkout of this repo does: stages depend on them
    shutil.copytree(REPO / "vjepa", root / "vjepa", ignore=shutil.ignore_patterns("__pycache__"))
    summary, listed = dry_run(root, env)
    assert "would run 13 of 13" in summary and len(listed) == 13
    assert not (root / "dvc.yaml").exists()  # a dry run writes nothing
    first = vx(root, env, "run", "experiments/tiny.yaml", "-j", "2")
    assert len(ran(first.stdout)) == 13, first.stdout
    assert "random_init" in first.stdout and ("[+" in first.stdout or "[-" in first.stdout)
    assert json.loads(dvc(root, env, "status", "--json").strip().splitlines()[-1]) == {}
    assert "Running stage" not in dvc(root, env, "repro")

    again = vx(root, env, "run", "experiments/tiny.yaml")  # its speed: bench/noop.py
    assert "nothing to do" in again.stdout and not ran(again.stdout)
    assert "would run 0 of 13" in dry_run(root, env)[0]

    # stages new to dvc.yaml are listed as new, the rest asked of DVC
    summary, listed = dry_run(root, env, "probe.lr=0.002")
    assert sorted(name.split("-")[0] for name in listed) == ["probe"] * 3 + ["report"], listed
    changed = vx(root, env, "run", "experiments/tiny.yaml", "probe.lr=0.002", "-j", "2")
    kinds = sorted(name.split("-")[0] for name in ran(changed.stdout))
    assert kinds == ["probe"] * 3 + ["report"], changed.stdout
    assert json.loads(dvc(root, env, "status", "--json").strip().splitlines()[-1]) == {}

    # editing the probe's code makes the probes stale, not the extractions it reads
    with open(root / "vjepa" / "eval" / "probe_train.py", "a") as source:
        source.write("# edited\n")
    summary, listed = dry_run(root, env, "probe.lr=0.002")
    assert sorted(name.split("-")[0] for name in listed) == ["probe"] * 3 + ["report"], listed

    # the same pipeline through plain `dvc repro` in a second clone gives the same table
    other = root.parent / "clone"
    other.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=other, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=other, check=True, env=env)
    (other / "experiments").mkdir()
    (other / "experiments" / "tiny.yaml").write_text(SPEC)
    vx(other, env, "compile", "experiments/tiny.yaml")
    dvc(other, env, "repro")
    assert "nothing to do" in vx(other, env, "run", "experiments/tiny.yaml").stdout
    # `results SPEC` shows the spec's latest run: in root that was probe.lr=0.002 until now
    lr_run = results_json(root, env)
    vx(root, env, "run", "experiments/tiny.yaml")  # the plain spec again (its probes were edited)
    assert results_json(other, env) == results_json(root, env) != lr_run


def test_failure_shows_log_tail_and_keep_going_runs_the_rest(project) -> None:
    root, env = project
    out = vx(
        root,
        env,
        "run",
        "experiments/tiny.yaml",
        "--keep-going",
        "-j",
        "2",
        extra={"FAKE_FAIL": '"target": "pixel"', "FAKE_FAIL_KIND": "pretrain"},
        check=False,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "failed: pretrain-vit_micro-multiblock_small-pixel" in out.stdout
    assert "RuntimeError: fake pretrain failure" in out.stdout
    done = ran(out.stdout)
    assert any(n.startswith("probe-vit_micro_multiblock_small_feature") for n in done)
    assert any(n.startswith("probe-random") for n in done)
    assert not any("pixel" in n for n in done)
    assert not list((root / "runs" / "probe").glob("*pixel*"))
    status = vx(root, env, "status", "experiments/tiny.yaml").stdout
    assert "failed" in status and "stale" in status
    # without --keep-going nothing new starts after the failure; the rerun without it completes
    fixed = vx(root, env, "run", "experiments/tiny.yaml", "-j", "2")
    assert all("pixel" in n or n.startswith("report") for n in ran(fixed.stdout)), fixed.stdout


def _wait_running(root: Path, kind: str, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        for path in (root / ".vjepa" / "state").glob(f"{kind}-*.json"):
            if json.loads(path.read_text()).get("state") == "running" and list(
                (root / "runs" / kind).glob("*/ckpt")
            ):
                return
        time.sleep(0.2)
    raise AssertionError(f"no {kind} stage started")


def _no_half_outputs(root: Path) -> None:
    for folder in (root / "runs").glob("*/*"):
        if folder.is_dir() and folder.parent.name != "pretrain":
            assert (folder / "metrics.json").is_file(), f"half output left: {folder}"


def _start_slow_run(
    root: Path, env: dict[str, str], ignore_sigint: bool = False
) -> subprocess.Popen:
    """Compile the tiny spec and start a run whose pretrain and extract stages take a minute."""
    vx(root, env, "compile", "experiments/tiny.yaml")
    return subprocess.Popen(
        [str(BIN / "vjepa-exp"), "run", "experiments/tiny.yaml", "-j", "2"],
        cwd=root,
        env={**env, "FAKE_SLEEP_PRETRAIN": "60", "FAKE_SLEEP_EXTRACT": "60"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if ignore_sigint
        else None,
    )


def test_cancel_stops_a_background_runner_that_ignores_sigint(project) -> None:
    """A runner started with ``&`` by a script ignores SIGINT; ``cancel`` must still stop it."""
    root, env = project
    proc = _start_slow_run(root, env, ignore_sigint=True)
    try:
        _wait_running(root, "pretrain")
        cancel = vx(root, env, "cancel", "experiments/tiny.yaml")
        assert f"interrupted runner {proc.pid}" in cancel.stdout
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "interrupted" in output
    _no_half_outputs(root)


@pytest.mark.slow  # ~26-30 s each on 2 cores
@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["sigint", "sigterm", "sigkill"]
)
def test_killed_run_leaves_no_half_outputs_and_resumes(project, sig) -> None:
    root, env = project
    proc = _start_slow_run(root, env)
    try:
        _wait_running(root, "pretrain")
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if sig != signal.SIGKILL:
        assert proc.returncode == 128 + sig, output
        assert "interrupted" in output
    time.sleep(1.0)  # children of a SIGKILLed runner get SIGTERM from the kernel (PDEATHSIG)
    _no_half_outputs(root)
    assert not list((root / "metrics").glob("pretrain/*.json"))
    final = vx(root, env, "run", "experiments/tiny.yaml", "-j", "2")
    # every stage but data reruns; data too when the kill came before its `dvc commit`
    assert len(ran(final.stdout)) in (12, 13), final.stdout
    _no_half_outputs(root)
    assert json.loads(dvc(root, env, "status", "--json").strip().splitlines()[-1]) == {}
    assert len(results_json(root, env)) == 3
