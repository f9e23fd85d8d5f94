"""Graceful interruption: 'save now and exit' for schedulers that preempt (SLURM, submitit).

The loop checks a stop flag once per optimizer step. When it is set, every rank agrees
at the same step, rank 0 writes ``ckpt/latest.pt`` and :func:`vjepa.train.pretrain` returns
``{"interrupted": True, ...}``; restarting the same stage resumes from there. Two ways to set it:

- pass your own event: ``pretrain(config, out, stop=event)`` and ``event.set()`` from anywhere;
- ``with stop_on_signals() as flag:`` installs SIGTERM / SIGUSR2 handlers (main thread only)
  that set a :class:`StopFlag`, and restores the previous handlers on exit.

:class:`PretrainInterrupted` is what the pretrain *stage* raises after such a save, so that the
stage runner does not publish ``metrics.json`` for an unfinished run.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from vjepa.errors import StageInterrupted

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)


class PretrainInterrupted(StageInterrupted):
    """Pretraining stopped on request after saving its resume state; rerun to continue."""


class StopFlag:
    """A stop request that a signal handler may set: setting it only stores a bool.

    A ``threading.Event`` is not safe here: its ``set`` takes a plain lock, and Python runs a
    handler between any two bytecodes, including inside the same handler. Two signals in a row
    (on SLURM the step's processes get the signal and the job wrapper forwards it) then deadlock
    the process inside the first ``Event.set``, and the preempted job hangs instead of saving.
    """

    __slots__ = ("requested",)

    def __init__(self) -> None:
        self.requested = False

    def set(self) -> None:
        self.requested = True

    def is_set(self) -> bool:
        return self.requested


@contextlib.contextmanager
def stop_on_signals(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[StopFlag]:
    """Yield a flag that ``signals`` set; outside the main thread, no handlers are installed.

    The handler is a single store: a burst of signals may nest handler calls, and each one must
    return at once (a heavier handler overflowed the stack under a burst).
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handler(_signum: int, _frame: object) -> None:
        flag.requested = True

    for sig in signals:
        signal.signal(sig, handler)
    try:
        yield flag
    finally:
        for sig, previous_handler in previous.items():
            signal.signal(sig, previous_handler)
