"""One cancellable engine call at a time for a panel (profile, what-ifs, export), off the GUI thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from workbench.controllers.jobs import JobRunner
from workbench.engine.errors import WorkbenchError

if TYPE_CHECKING:
    import torch

PROFILE, WHAT_IFS, EXPORT = "profile", "what-ifs", "export"  # the kinds of work
Weights = Mapping[str, "torch.Tensor"]
Progress = Callable[[str, float], None]
Work = Callable[[Progress, threading.Event], object]  # (progress, stop) -> result


class ModelJob(QObject):
    """Runs `work(progress, stop)` on a worker thread; its outcome arrives as one signal.

    `failed` carries the error's one-line message (a WorkbenchError's text; anything else as
    one readable line, never a traceback); work that ends in an error after `cancel()` asked it
    to stop is `cancelled`.
    """

    progressed = Signal(str, float)  # what is happening, fraction done
    succeeded = Signal(str, object)  # kind of work, result
    failed = Signal(str, str)  # kind of work, message
    cancelled = Signal(str)  # kind of work
    busy_changed = Signal(bool)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        name: str = "ModelJob",
    ) -> None:
        super().__init__(parent)
        self._stop: threading.Event | None = None
        self.jobs = JobRunner(self, name=name, cancel=self.cancel)
        self.jobs.succeeded.connect(self._succeeded)
        self.jobs.failed.connect(self._failed)
        self.jobs.busy_changed.connect(self.busy_changed)

    @property
    def is_busy(self) -> bool:
        return self.jobs.is_busy

    def start(self, kind: str, work: Work, failure: str) -> None:
        """Run `work` as `kind`; an unexpected error reads `failure: <one line>`."""
        if self.is_busy:
            raise RuntimeError(f"{self.jobs.name} is busy")
        stop = self._stop = threading.Event()

        def unexpected(detail: str) -> WorkbenchError:
            return WorkbenchError(f"{failure}: {detail}")

        self.jobs.start(kind, lambda: work(self.progressed.emit, stop), unexpected)

    def cancel(self) -> None:
        """Ask the running work to stop at its next check."""
        if self._stop is not None:
            self._stop.set()

    def _succeeded(self, kind: Hashable, result: object) -> None:
        self.succeeded.emit(str(kind), result)

    def _failed(self, kind: Hashable, error: object) -> None:
        if self._stop is not None and self._stop.is_set():
            self.cancelled.emit(str(kind))
        else:
            self.failed.emit(str(kind), str(error))

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel and wait for the work; True when nothing is left running."""
        return self.jobs.shutdown(timeout_ms)
