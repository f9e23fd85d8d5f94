"""The SLURM executor against the local test cluster: submit, chains, errors, re-attach, retry."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest

from vjepa.pipeline.executors.slurm import (
    SlurmError,
    SlurmExecutor,
    StageJob,
    jobs_named,
    query_jobs,
)

# Job processes cannot import test modules: ship this module's functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
SMALL = {"resources": {"default": {"cpus_per_task": 1, "mem_gb": 0.25, "time": 5}}}


def make(folder: Path, spec: str = "t", reconcile: bool = True) -> SlurmExecutor:
    return SlurmExecutor(
        {**SMALL, "folder": str(folder)}, spec=spec, root=folder, reconcile=reconcile
    )


def write(path: str, text: str) -> str:
    Path(path).write_text(text)
    return text


def read_then_write(src: str, dst: str) -> str:
    text = Path(src).read_text() + "+b"
    Path(dst).write_text(text)
    return text


def fail(msg: str) -> None:
    raise RuntimeError(msg)


def test_trivial_job_runs_and_is_accounted(slurm_folder):
    ex = make(slurm_folder)
    h = ex.submit(StageJob("add", "report", fn=sum, args=([1, 2, 3],)))
    assert ex.wait([h], timeout_s=60, interval_s=0.5) == {"add": "done"}
    assert query_jobs([h.job_id])[h.job_id][0] == "COMPLETED"
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
    a_out, b_out = str(slurm_folder / "a.txt"), str(slurm_folder / "b.txt")
    a = ex.submit(StageJob("a", "data", fn=write, args=(a_out, "a")))
    b = ex.submit(StageJob("b", "probe", fn=read_then_write, args=(a_out, b_out)), after=[a])
    bad = ex.submit(StageJob("bad", "probe", fn=fail, args=("boom",)), after=[a])
    c = ex.submit(StageJob("c", "report", fn=sum, args=([1],)), after=[bad])
    states = ex.wait([a, b, bad, c], timeout_s=90, interval_s=1)
    assert states == {"a": "done", "b": "done", "bad": "failed", "c": "cancelled"}
    assert Path(b_out).read_text() == "a+b"
    assert "boom" in ex.log_tail(bad, 30)

    # A new process re-attaches from the journal and resubmits only what failed.
    again = make(slurm_folder)
    assert again.run_id == ex.run_id
    assert {r.name: r.state for r in again.status()} == states
    jobs = [
        StageJob("a", "data", fn=write, args=(a_out, "a")),
        StageJob("bad", "probe", fn=sum, args=([2],)),
        StageJob("c", "report", fn=sum, args=([1],)),
    ]
    redone = again.retry_failed(jobs, deps={"bad": ["a"], "c": ["bad"]})
    assert [h.name for h in redone] == ["bad", "c"]
    assert again.wait(redone, timeout_s=90, interval_s=1) == {"bad": "done", "c": "done"}
    assert again.journal.entries()["c"]["attempt"] == 2


def test_bad_partition_fails_fast_without_orphan(slurm_folder):
    ex = make(slurm_folder)
    job = StageJob("x", "probe", fn=sum, args=([1],), resources={"partition": "nosuchpart"})
    with pytest.raises(SlurmError) as err:
        ex.submit(job)
    msg = str(err.value)
    assert "\n" not in msg and "invalid partition" in msg.lower()
    assert ex.journal.entries() == {}
    assert jobs_named(f"vx-{ex.run_id}-") == {}
    with pytest.raises(SlurmError, match="Requested node configuration is not available"):
        ex.submit(StageJob("y", "probe", fn=sum, args=([1],), resources={"mem_gb": 100000}))


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
    ex.cancel_all()
    assert ex.wait(list(ex.handles().values()), timeout_s=30, interval_s=0.5) == {
        "lost": "cancelled"
    }


def test_job_array(slurm_folder):
    ex = make(slurm_folder)
    jobs = [StageJob(f"split{i}", "probe", fn=sum, args=([i, 1],)) for i in range(3)]
    handles = ex.submit_array(jobs)
    base = {h.base_id for h in handles}
    assert len(base) == 1 and [h.job_id.split("_")[1] for h in handles] == ["0", "1", "2"]
    assert set(ex.wait(handles, timeout_s=60, interval_s=1).values()) == {"done"}
