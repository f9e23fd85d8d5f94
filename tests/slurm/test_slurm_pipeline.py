"""`vjepa-exp run SPEC executor=slurm` end to end against the local test cluster.

The stage bodies are the cheap stand-ins of tests/pipeline (a ``sitecustomize`` on PYTHONPATH;
sbatch exports the environment, so the jobs load it too): these tests exercise sbatch, afterok
chains, re-attaching, dvc commit and retries, not training.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import time
from pathlib import Path
from types import ModuleType

import pytest
import yaml

pytestmark = pytest.mark.timeout(300)


def _pipeline_helpers() -> ModuleType:
    """tests/pipeline/test_pipeline_run.py: the stand-in stages, the tiny spec and CLI helpers."""
    path = Path(__file__).resolve().parents[1] / "pipeline" / "test_pipeline_run.py"
    spec = importlib.util.spec_from_file_location("pipeline_run_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


P = _pipeline_helpers()
SPEC_FILE = "experiments/tiny.yaml"
# Tiny jobs, so that the 4 CPUs the test node advertises run four stages at once.
SMALL = {"cpus_per_task": 1, "mem_gb": 0.5, "time": 5, "nodes": 1, "gpus_per_node": 0}
EXECUTOR = {
    "executor": {
        "resources": {
            k: dict(SMALL) for k in ("default", "data", "pretrain", "extract", "probe", "report")
        }
    }
}
PIXEL = "pretrain-vit_micro-multiblock_small-pixel"


def _project(base: Path) -> tuple[Path, dict[str, str]]:
    """A fresh project under ``base``: git + dvc + the tiny spec with small SLURM resources."""
    root, fake = base / "proj", base / "fake"
    root.mkdir(parents=True)
    fake.mkdir()
    (fake / "sitecustomize.py").write_text(P.FAKE)
    env = {
        **os.environ,
        "PATH": f"{P.BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(fake),
        "VJEPA_FAKE_STAGES": "1",
        "DVC_NO_ANALYTICS": "1",
        "COLUMNS": "250",
    }
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([str(P.BIN / "dvc"), "init", "-q"], cwd=root, check=True, env=env)
    (root / "experiments").mkdir()
    (root / SPEC_FILE).write_text(P.SPEC + yaml.safe_dump(EXECUTOR))
    return root, env


@pytest.fixture()
def slurm_project(slurm_folder: Path) -> tuple[Path, dict[str, str]]:
    return _project(slurm_folder / "slurm")


def vx(root: Path, env: dict[str, str], *args: str, **kw) -> subprocess.CompletedProcess:
    return P.vx(root, env, *args, **kw)


def dvc_clean(root: Path, env: dict[str, str]) -> bool:
    return json.loads(P.dvc(root, env, "status", "--json").strip().splitlines()[-1]) == {}


def states(root: Path) -> dict[str, dict]:
    """The runner's state file of every stage."""
    folder = root / ".vjepa" / "state"
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}


def sacct_states(job_ids: list[str]) -> dict[str, str]:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", ",".join(job_ids), "--format=JobID,State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("|")[:2] for line in out.splitlines() if "|" in line)


def follow(root: Path, env: dict[str, str], timeout: float = 150) -> list[str]:
    """`vjepa-exp status` until no stage is pending or running; every output seen."""
    seen: list[str] = []
    end = time.time() + timeout
    while time.time() < end:
        out = vx(root, env, "status", SPEC_FILE).stdout
        seen.append(out)
        if not re.search(r"│ (pending|running) ", out):
            return seen
        time.sleep(3)
    raise AssertionError(f"still in flight after {timeout}s:\n{seen[-1]}")


def test_attached_run_matches_local_and_is_committed(slurm_folder, slurm_project) -> None:
    root, env = slurm_project
    out = vx(root, env, "run", SPEC_FILE, "executor=slurm")
    assert len(P.ran(out.stdout)) == 13, out.stdout
    jobs = {name: st["handle"]["job_id"] for name, st in states(root).items()}
    assert all(st["handle"]["executor"] == "slurm" for st in states(root).values())
    assert set(sacct_states(list(jobs.values())).values()) == {"COMPLETED"}
    assert dvc_clean(root, env)
    assert "nothing to do" in vx(root, env, "run", SPEC_FILE, "executor=slurm").stdout

    local, lenv = _project(slurm_folder / "local")
    vx(local, lenv, "run", SPEC_FILE, "-j", "2")
    assert P.results_json(root, env) == P.results_json(local, lenv)


def test_detached_failure_shows_log_and_retry_reruns_only_it(slurm_project) -> None:
    root, env = slurm_project
    failing = {"FAKE_FAIL": '"target": "pixel"', "FAKE_FAIL_KIND": "pretrain"}
    out = vx(root, env, "run", SPEC_FILE, "executor=slurm", "--detach", extra=failing)
    assert "submitted 13 stages to SLURM" in out.stdout
    first = {name: st["handle"]["job_id"] for name, st in states(root).items()}

    seen = follow(root, env)
    assert any(re.search(r"│ (pending|running) .*job \d+", s) for s in seen), seen[0]
    final = seen[-1]
    assert re.search(rf"{PIXEL}\S* +│ failed", final), final
    assert "RuntimeError: fake pretrain failure" in final  # the job's log tail
    assert "8/13 up to date" in final, final  # the failed job and the 4 cancelled after it

    retry = vx(root, env, "run", SPEC_FILE, "executor=slurm", "--retry-failed")
    redone = P.ran(retry.stdout)
    assert len(redone) == 5 and all("pixel" in n or n.startswith("report") for n in redone), redone
    after = {name: st["handle"]["job_id"] for name, st in states(root).items()}
    assert {n for n in after if after[n] != first[n]} == redone
    assert "13/13 up to date" in vx(root, env, "status", SPEC_FILE).stdout
    assert dvc_clean(root, env)


def test_cancel_detached_run(slurm_project) -> None:
    root, env = slurm_project
    slow = {"FAKE_SLEEP_DATA": "120"}
    vx(root, env, "run", SPEC_FILE, "executor=slurm", "--detach", extra=slow)
    busy = vx(root, env, "run", SPEC_FILE, "executor=slurm", check=False)
    assert busy.returncode == 2 and "still queued or running on SLURM" in busy.stderr
    out = vx(root, env, "cancel", SPEC_FILE)
    assert "cancelled 13 SLURM jobs" in out.stdout, out.stdout
    jobs = [st["handle"]["job_id"] for st in states(root).values()]
    assert all(s.startswith("CANCELLED") for s in sacct_states(jobs).values())
    assert "0/13 up to date" in vx(root, env, "status", SPEC_FILE).stdout
    assert not list((root / "runs").glob("data/*"))


def test_detach_needs_slurm(slurm_project) -> None:
    root, env = slurm_project
    out = vx(root, env, "run", SPEC_FILE, "--detach", check=False)
    assert out.returncode == 2
    assert (
        out.stderr.strip()
        == "error: --detach: needs executor=slurm (local stages stop with the runner)"
    )


@pytest.mark.parametrize(
    "text, seconds", [("00:07", 7), ("01:02:03", 3723), ("1-00:00:01", 86401), ("", None)]
)
def test_elapsed_seconds(text: str, seconds: int | None) -> None:
    from vjepa.pipeline.executors.slurm.commands import elapsed_seconds

    assert elapsed_seconds(text) == seconds


def squeue_ids() -> set[str]:
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "override, key, limit",
    [
        (
            "executor.resources.probe.gpus_per_node=1",
            "executor.resources.probe.gpus_per_node",
            "GPUs",
        ),
        (
            "executor.resources.default.cpus_per_task=512",
            "executor.resources.data.cpus_per_task",
            "CPUs",
        ),
        ("executor.resources.default.mem_gb=100000", "executor.resources.data.mem_gb", "MB"),
        (
            "executor.resources.default.partition=nowhere",
            "executor.resources.data.partition",
            "no partition",
        ),
    ],
    ids=["gpus", "cpus", "mem", "partition"],
)
def test_unfit_request_submits_nothing(slurm_project, override, key, limit):
    root, env = slurm_project
    before = squeue_ids()
    out = vx(root, env, "run", SPEC_FILE, "executor=slurm", override, "--detach", check=False)
    assert out.returncode == 2, out.stdout + out.stderr
    message = out.stderr.strip()
    assert message.startswith(f"error: {key}: stage ") and limit in message, message
    assert "nothing was submitted" in message and len(message.splitlines()) == 1
    assert squeue_ids() <= before and not states(root)


def test_a_refused_sbatch_mid_dag_cancels_what_the_run_submitted(slurm_project):
    """sbatch refuses the probes (an invalid --begin): the data, pretrain and extract jobs the run
    had already submitted are cancelled, and the message says which."""
    root, env = slurm_project
    before = squeue_ids()
    bad = "executor.resources.probe.additional={begin: not-a-time}"
    out = vx(root, env, "run", SPEC_FILE, "executor=slurm", bad, "--detach", check=False)
    assert out.returncode == 2, out.stdout + out.stderr
    message = out.stderr.strip()
    match = re.search(r"cancelled the (\d+) jobs this run had submitted \(([\d_, ]+)\)", message)
    assert message.startswith("error: sbatch refused probe-") and match, message
    assert len(message.splitlines()) == 1, message
    ids = match[2].split(", ")
    assert int(match[1]) == len(ids) >= 3
    deadline = time.time() + 30
    while squeue_ids() & set(ids) and time.time() < deadline:
        time.sleep(1)
    assert not squeue_ids() & set(ids) and squeue_ids() <= before
    assert all(s.startswith("CANCELLED") for s in sacct_states(ids).values())
    cancelled = [st for st in states(root).values() if st.get("state") == "cancelled"]
    assert len(cancelled) == len(ids)


def test_status_and_cancel_act_on_the_run_with_its_overrides(slurm_project):
    """A run started with overrides that change uids: `status SPEC` and `cancel SPEC`, typed as
    the run prints them (no overrides), act on that run's stages; `runs SPEC` lists it."""
    root, env = slurm_project
    slow = {"FAKE_SLEEP_DATA": "120"}
    out = vx(
        root, env, "run", SPEC_FILE, "executor=slurm", "pretrain.epochs=3", "--detach", extra=slow
    )
    hint = re.search(
        r"follow with `vjepa-exp (status [^`]+)`, stop with `vjepa-exp (cancel [^`]+)`", out.stdout
    )
    assert hint, out.stdout
    shown = vx(root, env, *hint[1].split())
    assert "pretrain.epochs=3" in shown.stdout and "0/13 up to date" in shown.stdout
    assert re.search(r"│ (pending|running) ", shown.stdout) and "stale" not in shown.stdout
    listed = vx(root, env, "runs", SPEC_FILE).stdout
    assert "executor=slurm pretrain.epochs=3" in listed and "13 stages" in listed
    stopped = vx(root, env, *hint[2].split())
    assert "cancelled 13 SLURM jobs" in stopped.stdout, stopped.stdout
    # the same stages without the run's overrides are other uids: nothing of theirs runs
    assert "nothing is running" in vx(root, env, "cancel", SPEC_FILE, "pretrain.epochs=1").stdout


def test_job_threads_follow_cpus_per_task(slurm_project):
    root, env = slurm_project
    env = {k: v for k, v in env.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    vx(root, env, "run", SPEC_FILE, "executor=slurm", "executor.resources.data.cpus_per_task=2")
    data = [json.loads(p.read_text()) for p in (root / "metrics" / "data").glob("*.json")]
    assert [m["threads"] for m in data] == ["2"]


def test_status_shows_a_requeued_jobs_restarts_and_log(slurm_project):
    """A running job requeued by SLURM: status keeps showing it live, with its restart count,
    SLURM's state and the tail of its log."""
    root, env = slurm_project
    vx(root, env, "run", SPEC_FILE, "executor=slurm", "--detach", extra={"FAKE_SLEEP_DATA": "40"})
    data = next(n for n in states(root) if n.startswith("data-"))
    job = states(root)[data]["handle"]["job_id"]
    deadline = time.time() + 90
    while "RUNNING" not in sacct_states([job]).get(job, ""):
        assert time.time() < deadline, sacct_states([job])
        time.sleep(1)
    subprocess.run(["scontrol", "requeue", job], check=True)
    deadline = time.time() + 120
    while True:
        out = vx(root, env, "status", SPEC_FILE).stdout
        row = next(ln for ln in out.splitlines() if data in ln)
        if "restarted 1x" in row and "RUNNING" in row:
            break
        assert time.time() < deadline, out
        time.sleep(2)
    assert re.search(rf"running\S*: {data}; log: ", out), out  # the running stage's log tail
    vx(root, env, "cancel", SPEC_FILE)


def squeue_rows() -> dict[str, tuple[str, str]]:
    """``job id -> (state, reason)`` of every job SLURM lists, array elements one per line."""
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i|%T|%r"], capture_output=True, text=True, check=True
    ).stdout
    return {i: (s, r) for i, s, r in (ln.split("|") for ln in out.splitlines())}


def test_arrays_run_per_element_and_a_cancelled_pending_element_ends_the_run(slurm_project):
    """The four pretrains (two targets x two seeds, all waiting for the data stage) go out as one
    array, one element at a time (array_parallelism=1). Cancelling the last pending element, which
    SLURM 22.05 then drops from squeue and sacct, cancels that stage and what depends on it; the
    attached run ends, and every other stage is done."""
    root, env = slurm_project
    run = subprocess.Popen(
        [str(P.BIN / "vjepa-exp"), "run", SPEC_FILE, "executor=slurm", "seeds=[0,1]", "-k"]
        + ["executor.resources.pretrain.array_parallelism=1"],
        cwd=root,
        env={**env, "FAKE_SLEEP_PRETRAIN": "8"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 90
        while True:
            ids = {n: st["handle"]["job_id"] for n, st in states(root).items() if "handle" in st}
            pretrains = sorted(ids[n] for n in ids if n.startswith("pretrain-"))
            rows = squeue_rows()
            if len(pretrains) == 4 and rows.get(pretrains[0], ("",))[0] == "RUNNING":
                break
            assert run.poll() is None, run.communicate()[0]
            assert time.time() < deadline, (ids, rows)
            time.sleep(0.5)
        base = {p.split("_")[0] for p in pretrains}
        assert len(base) == 1 and [p.split("_")[1] for p in pretrains] == ["0", "1", "2", "3"]
        assert all(rows[p] == ("PENDING", "JobArrayTaskLimit") for p in pretrains[1:]), rows
        subprocess.run(["scancel", pretrains[3]], check=True)
        out, _ = run.communicate(timeout=240)
    finally:
        run.kill()
    assert run.returncode != 0, out
    st = states(root)
    gone = next(n for n in st if st[n]["handle"]["job_id"] == pretrains[3])
    assert st[gone]["state"] == "cancelled", st[gone]
    assert re.search(rf"cancelled \(SLURM has no record[^)]*\): {gone}", out), out
    # What waits for it never runs on a missing input: the runner cancels it, or, when SLURM
    # started it first (22.05 treats a dropped afterok job as done), the stage refuses to start.
    encoder = "_".join(gone.split("-")[1:-1])  # vit_micro_multiblock_small_pixel_s1
    stopped = {n for n in st if encoder in n or n.startswith("report-")}
    assert len(stopped) == 4, stopped  # its two extracts, its probe and the report
    for name in stopped:
        why = f"{st[name]['state']}: {st[name].get('log_tail', '')}"
        assert why.startswith("cancelled") or "has not finished (no metrics.json)" in why, why
    assert all(st[n]["state"] == "done" for n in set(st) - stopped - {gone}), st
