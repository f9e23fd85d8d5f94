"""A reader of a stage folder's ``progress.json`` on a thread, for the progress tests."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from vjepa.utils.progress import read_progress


class Watcher:
    """Reads a stage folder's ``progress.json`` from a thread while the stage runs."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.records = folder, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            record = read_progress(self.folder)
            if record is not None and (not self.records or record != self.records[-1]):
                self.records.append(record)
            time.sleep(0.005)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
