"""The SLURM executor against the local test cluster: submit, chains, arrays, errors, re-attach,
retry. Jobs are stage-like commands (``python -c``), as production's ``vjepa-exp exec``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from vjepa.pipeline.executors.base import JobHandle, JobState, StageJob
from vjepa.pipeline.executors.slurm import SlurmError, SlurmExecutor
from vjepa.pipeline.executors.slurm.commands import jobs_named, query_jobs

SMALL = {"resources": {"default": {"cpus_per_task": 1, "mem_gb": 0.25, "time": 5}}}


def make(folder: Path, spec: str = "t", reconcile: bool = True) -> SlurmExecutor:
    return SlurmExecutor({**SMALL, "folder": str(folder)}, folder, spec, reconcile=reconcile)


def job(folder: Path, name: str, kind: str, code: str, **resources) -> StageJob:
    """A stage-like job: ``python -c code`` in ``folder``, its output in ``<name>.log``."""
    return StageJob(
        stage=name,
        kind=kind,
        cmd=(sys.executable, "-c", code),
        cwd=str(folder),
        log=str(folder / f"{name}.log"),
        resources=resources,
    )


def wait(ex: SlurmExecutor, handles: list[JobHandle], timeout: float = 90) -> dict[str, str]:
    """Poll until every handle is finished; ``stage -> state``."""
    deadline = time.monotonic() + timeout
    while True:
        states = ex.refresh(handles)
        if all(st.state.finished for st in states.values()) or time.monotonic() > deadline:
            return {name: st.state.value for name, st in states.items()}
        time.sleep(1)


def test_trivial_job_runs_and_is_accounted(slurm_folder):
    ex = make(slurm_folder)
    h = ex.submit(job(slurm_folder, "add", "report", "print(1 + 2)"))
    assert wait(ex, [h], 60) == {"add": "done"}
    assert query_jobs([h.job_id])[h.job_id][0] == "COMPLETED"
    assert "3" in ex.log_tail(h).splitlines()[-1]
    for _ in range(40):  # accounting records the job name a moment after the job ends
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", h.job_id, "--format=JobID,JobName"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if f"{h.job_id}|vx-{ex.run_id}-add" in out:
            break
        time.sleep(0.25)
    assert f"{h.job_id}|vx-{ex.run_id}-add" in out


def test_afterok_chain_and_retry_failed(slurm_folder):
    ex = make(slurm_folder)
    write_a = "import pathlib; pathlib.Path('a.txt').write_text('a')"
    a = ex.submit(job(slurm_folder, "a", "data", write_a))
    copy = (
        "import pathlib; pathlib.Path('b.txt').write_text(pathlib.Path('a.txt').read_text()+'+b')"
    )
    b = ex.submit(job(slurm_folder, "b", "probe", copy), after=[a])
    bad = ex.submit(job(slurm_folder, "bad", "probe", "raise SystemExit('boom')"), after=[a])
    c = ex.submit(job(slurm_folder, "c", "report", "print('c')"), after=[bad])
    states = wait(ex, [a, b, bad, c])
    assert states == {"a": "done", "b": "done", "bad": "failed", "c": "cancelled"}
    assert (slurm_folder / "b.txt").read_text() == "a+b"
    assert "boom" in ex.log_tail(bad, 30)

    # A new process re-attaches from the journal and resubmits only what failed.
    again = make(slurm_folder)
    assert again.run_id == ex.run_id
    jobs = [
        job(slurm_folder, "a", "data", write_a),
        job(slurm_folder, "bad", "probe", "print('fixed')"),
        job(slurm_folder, "c", "report", "print('c')"),
    ]
    redone = again.retry_failed(jobs, deps={"bad": ["a"], "c": ["bad"]})
    assert [h.stage for h in redone] == ["bad", "c"]
    assert wait(again, redone) == {"bad": "done", "c": "done"}
    assert again.journal.entries()["c"]["attempt"] == 2


def test_job_array_runs_each_element_as_a_stage(slurm_folder):
    ex = make(slurm_folder)
    jobs = [job(slurm_folder, f"split{i}", "probe", f"print({i} + 1)") for i in range(3)]
    handles = ex.submit_array(jobs)
    assert len({h.job_id.split("_")[0] for h in handles}) == 1
    assert [h.job_id.split("_")[1] for h in handles] == ["0", "1", "2"]
    after = ex.submit(job(slurm_folder, "after1", "report", "print('x')"), after=[handles[1]])
    assert set(wait(ex, [*handles, after]).values()) == {"done"}
    assert [ex.log_tail(h).splitlines()[-1] for h in handles] == ["1", "2", "3"]


def test_bad_partition_fails_fast_without_orphan(slurm_folder):
    ex = make(slurm_folder)
    with pytest.raises(SlurmError) as err:
        ex.submit(job(slurm_folder, "x", "probe", "pass", partition="nosuchpart"))
    msg = str(err.value)
    assert "\n" not in msg and "invalid partition" in msg.lower()
    assert ex.journal.entries() == {}
    assert jobs_named(f"vx-{ex.run_id}-") == {}
    with pytest.raises(SlurmError, match="Requested node configuration is not available"):
        ex.submit(job(slurm_folder, "y", "probe", "pass", mem_gb=100000))


def test_interrupted_submission_is_adopted_and_strays_cancelled(slurm_folder):
    ex = make(slurm_folder)
    # A crash between sbatch and the journal write: the intent is recorded, the id is not.
    with ex.journal.locked() as data:
        data["jobs"]["lost"] = {
            "status": "submitting",
            "kind": "report",
            "job_id": None,
            "job_name": ex.job_name("lost"),
            "after": [],
            "attempt": 1,
        }
    sbatch = [
        "sbatch",
        "--parsable",
        "--mem=100M",
        "-c1",
        "-t2",
        f"--output={slurm_folder}/%j.out",
        "--wrap",
        "sleep 30",
    ]
    lost = subprocess.run(
        [*sbatch, f"--job-name={ex.job_name('lost')}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    stray = subprocess.run(
        [*sbatch, f"--job-name={ex.job_name('stray')}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    result = make(slurm_folder, reconcile=False).reconcile()
    assert result == {"adopted": ["lost"], "cancelled": [stray]}
    assert ex.journal.entries()["lost"]["job_id"] == lost
    handle = JobHandle("slurm", lost, "lost", "")
    ex.cancel_all([handle])
    assert wait(ex, [handle], 30) == {"lost": JobState.CANCELLED.value}
