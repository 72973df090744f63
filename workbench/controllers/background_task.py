"""Run one plain function on a worker thread and deliver its result or its error as a signal."""

from __future__ import annotations

import traceback
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

from PySide6.QtCore import QObject, QThread, Signal, Slot

from workbench.controllers.worker_thread import release, running, thread_for
from workbench.engine.errors import WorkbenchError


class _Worker(QObject):
    finished_with = Signal(int, bool, object)  # generation, ok, result or message
    done = Signal()

    def __init__(self, function: Callable[[], Any], generation: int) -> None:
        super().__init__()
        self.function = function
        self.generation = generation

    @Slot()
    def run(self) -> None:
        try:
            self.finished_with.emit(self.generation, True, self.function())
        except WorkbenchError as exc:
            self.finished_with.emit(self.generation, False, str(exc))
        except Exception as exc:  # noqa: BLE001 - reported to the user as one line
            message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.finished_with.emit(self.generation, False, message)
        finally:
            self.done.emit()


class BackgroundTask(QObject):
    """Keeps the GUI responsive: `run(function)` calls it off-thread; a newer run wins.

    Results of a superseded run are dropped, so a user flicking through datasets only ever sees
    the preview of the last one picked.
    """

    succeeded = Signal(object)
    failed = Signal(str)
    busy_changed = Signal(bool)

    _all_threads: ClassVar[weakref.WeakSet[QThread]] = weakref.WeakSet()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._generation = 0
        self._running: dict[int, tuple[QThread, _Worker]] = {}

    @classmethod
    def running_threads(cls) -> list[QThread]:
        return running(cls._all_threads)

    @property
    def is_busy(self) -> bool:
        return bool(self._running)

    def run(self, function: Callable[[], Any]) -> None:
        self._generation += 1
        generation = self._generation
        worker = _Worker(function, generation)
        thread = thread_for(worker, "BackgroundTask", BackgroundTask._all_threads)
        # Bound methods of this GUI-thread object: Qt queues these calls onto the GUI thread.
        worker.finished_with.connect(self._deliver)
        thread.finished.connect(self._reap)
        self._running[generation] = (thread, worker)
        thread.start()
        self.busy_changed.emit(True)

    @Slot(int, bool, object)
    def _deliver(self, generation: int, ok: bool, payload: Any) -> None:
        if generation != self._generation:
            return
        if ok:
            self.succeeded.emit(payload)
        else:
            self.failed.emit(str(payload))

    @Slot()
    def _reap(self) -> None:
        for generation, (thread, _worker) in list(self._running.items()):
            if thread.isFinished():
                self._cleanup(generation)

    def _cleanup(self, generation: int) -> None:
        entry = self._running.pop(generation, None)
        if entry is not None:
            release(*entry)
        if not self._running:
            self.busy_changed.emit(False)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Wait for running work (it cannot be interrupted); True when all threads ended."""
        self._generation += 1  # drop any late result
        ok = True
        for generation, (thread, _worker) in list(self._running.items()):
            ok = bool(thread.wait(timeout_ms)) and ok
            self._cleanup(generation)
        return ok
