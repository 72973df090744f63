"""Run one plain function on a worker thread and deliver its result or its error as a signal."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from PySide6.QtCore import QObject, Signal

from workbench.controllers.jobs import JobRunner


class BackgroundTask(QObject):
    """Keeps the GUI responsive: `run(function)` calls it off-thread; a newer run wins.

    Results of a superseded run are dropped, so a user flicking through datasets only ever sees
    the preview of the last one picked.
    """

    succeeded = Signal(object)
    failed = Signal(str)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._generation = 0
        self.jobs = JobRunner(self, name="BackgroundTask")
        self.jobs.succeeded.connect(self._succeeded)
        self.jobs.failed.connect(self._failed)
        self.jobs.busy_changed.connect(self.busy_changed)

    @property
    def is_busy(self) -> bool:
        return self.jobs.is_busy

    def run(self, function: Callable[[], Any]) -> None:
        self._generation += 1
        self.jobs.start(self._generation, function)

    def _succeeded(self, generation: Hashable, result: object) -> None:
        if generation == self._generation:
            self.succeeded.emit(result)

    def _failed(self, generation: Hashable, error: object) -> None:
        if generation == self._generation:
            self.failed.emit(str(error))

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Wait for running work (it cannot be interrupted); True when all threads ended."""
        self._generation += 1  # drop any late result
        return self.jobs.shutdown(timeout_ms)
