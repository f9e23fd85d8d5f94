"""Job bodies on the local cluster: preemption + requeue + resume, and a 2-task gloo job."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from vjepa.pipeline.executors.base import JobHandle, StageJob
from vjepa.pipeline.executors.slurm import SlurmExecutor

SMALL = {"resources": {"default": {"cpus_per_task": 1, "mem_gb": 0.5, "time": 5}}}


def wait_done(ex: SlurmExecutor, handle: JobHandle, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = ex.refresh([handle])[handle.stage].state
        if state.finished or time.monotonic() > deadline:
            return state.value
        time.sleep(1)


def toy_pretrain(kind: str, config: dict, out: str, uid: str | None) -> dict:
    """A stage with the pretrain contract: saves on the stop event, raises PretrainInterrupted."""
    from vjepa.utils.io import atomic_write_json
    from vjepa.utils.signals import PretrainInterrupted, stop_on_signals

    out_dir = Path(out)
    ckpt = out_dir / "ckpt" / "latest.json"
    state = json.loads(ckpt.read_text()) if ckpt.exists() else {"step": 0, "acc": 1}
    with open(out_dir / "starts.txt", "a") as fh:
        fh.write(f"{state['step']}\n")
    with stop_on_signals() as stop:
        while state["step"] < config["steps"]:
            if stop.is_set():
                atomic_write_json(ckpt, state)
                raise PretrainInterrupted(f"saved at step {state['step']}")
            state["acc"] = (state["acc"] * 31 + state["step"]) % 1_000_003
            state["step"] += 1
            (out_dir / "progress").write_text(str(state["step"]))
            time.sleep(config["sleep"])
    return dict(state)


def progress(out: Path) -> int:
    """Steps done so far (0 while the file is missing or being rewritten)."""
    try:
        return int((out / "progress").read_text() or 0)
    except FileNotFoundError:
        return 0


def expected(steps: int) -> dict:
    acc = 1
    for step in range(steps):
        acc = (acc * 31 + step) % 1_000_003
    return {"step": steps, "acc": acc}


TOY_SCRIPT = """
import json, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_slurm_jobs import toy_pretrain
print(json.dumps(toy_pretrain("pretrain", {{"steps": 40, "sleep": 0.2}}, {out!r}, None)))
"""


def test_usr2_on_a_command_stage_requeues_and_resumes(slurm_folder):
    ex = SlurmExecutor({**SMALL, "folder": str(slurm_folder)}, slurm_folder, "cmd")
    out = slurm_folder / "run"
    out.mkdir()
    script = TOY_SCRIPT.format(tests=str(Path(__file__).parent), out=str(out))
    log = slurm_folder / "pretrain.log"
    cmd = (sys.executable, "-c", script)
    h = ex.submit(StageJob("pretrain", "pretrain", cmd, str(slurm_folder), str(log)))
    deadline = time.monotonic() + 60
    while progress(out) < 5:
        assert time.monotonic() < deadline, ex.log_tail(h)
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR2", h.job_id], check=True)
    assert wait_done(ex, h, 120) == "done", ex.log_tail(h, 40)
    starts = [int(s) for s in (out / "starts.txt").read_text().split()]
    assert len(starts) == 2 and starts[1] >= 5
    printed = [ln for ln in log.read_text().splitlines() if ln.startswith("{")]
    assert json.loads(printed[-1]) == expected(40)


DDP_SCRIPT = """
import json
import torch
import torch.distributed as dist
from vjepa.train.distributed import init, shutdown

denv = init("cpu")
value = torch.tensor([float(denv.rank + 1)])
dist.all_reduce(value)
shutdown(denv)
result = {"rank": denv.rank, "world": denv.world_size, "sum": value.item()}
open(f"rank{denv.rank}.json", "w").write(json.dumps(result))  # both tasks share one log
"""


def test_two_task_gloo_job(slurm_folder):
    """Each of two tasks contributes rank + 1 through a gloo all_reduce."""
    res = {
        "resources": {"default": {"cpus_per_task": 1, "mem_gb": 2, "time": 5, "tasks_per_node": 2}}
    }
    ex = SlurmExecutor({**res, "folder": str(slurm_folder)}, slurm_folder, "ddp")
    log = slurm_folder / "ddp.log"
    cmd = (sys.executable, "-c", DDP_SCRIPT)
    h = ex.submit(StageJob("ddp", "pretrain", cmd, str(slurm_folder), str(log)))
    assert wait_done(ex, h, 120) == "done", ex.log_tail(h, 40)
    results = [json.loads(p.read_text()) for p in sorted(slurm_folder.glob("rank*.json"))]
    assert sorted(r["rank"] for r in results) == [0, 1]
    assert all(r["world"] == 2 and r["sum"] == 3.0 for r in results)
