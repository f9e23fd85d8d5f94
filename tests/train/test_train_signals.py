"""stop_on_signals under a burst of real signals: a preempted job must save, never hang or die.

On SLURM a preempted step gets USR2 twice in a row (SLURM signals every process of the step and
the job wrapper forwards it to the stage command); with a lock-taking handler the second signal
deadlocked the first handler and the job hung until its time limit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

CHILD = """
import time
from vjepa.utils.signals import stop_on_signals
with stop_on_signals() as stop:
    print("ready", flush=True)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        stop.is_set()
print("stopped", stop.is_set(), flush=True)
"""


def test_a_burst_of_signals_sets_the_flag_and_the_block_ends_normally():
    for sig in (signal.SIGUSR2, signal.SIGTERM) * 3:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert child.stdout.readline().strip() == "ready"
        sent, start = 0, time.monotonic()
        while time.monotonic() - start < 0.5 and child.poll() is None:
            os.kill(child.pid, sig)
            sent += 1
        try:
            out, err = child.communicate(timeout=30)
        finally:
            child.kill()
        assert sent > 100
        assert child.returncode == 0, err[-2000:]
        assert out.strip() == "stopped True"


def test_previous_handlers_come_back_after_the_block():
    from vjepa.utils.signals import stop_on_signals

    before = signal.getsignal(signal.SIGUSR2)
    with stop_on_signals() as stop:
        os.kill(os.getpid(), signal.SIGUSR2)
        time.sleep(0.05)
        assert stop.is_set()
    assert signal.getsignal(signal.SIGUSR2) == before
