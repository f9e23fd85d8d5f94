"""Graceful interruption: 'save now and exit' for schedulers that preempt (SLURM, submitit).

The loop checks a ``threading.Event`` once per optimizer step. When it is set, every rank agrees
at the same step, rank 0 writes ``ckpt/latest.pt`` and :func:`vjepa.train.pretrain` returns
``{"interrupted": True, ...}``; restarting the same stage resumes from there. Two ways to set it:

- pass your own event: ``pretrain(config, out, stop=event)`` and ``event.set()`` from anywhere;
- ``with stop_on_signals() as event:`` installs SIGTERM / SIGUSR2 handlers (main thread only)
  that set the event, and restores the previous handlers on exit.

:class:`PretrainInterrupted` is what the pretrain *stage* raises after such a save, so that the
stage runner does not publish ``metrics.json`` for an unfinished run.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)


class PretrainInterrupted(RuntimeError):
    """Pretraining stopped on request after saving its resume state; rerun to continue."""


@contextlib.contextmanager
def stop_on_signals(
    signals: tuple[signal.Signals, ...] = STOP_SIGNALS, event: threading.Event | None = None
) -> Iterator[threading.Event]:
    """Yield an event that ``signals`` set; outside the main thread, no handlers are installed."""
    event = event or threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return
    previous = {sig: signal.getsignal(sig) for sig in signals}
    for sig in signals:
        signal.signal(sig, lambda *_: event.set())
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
