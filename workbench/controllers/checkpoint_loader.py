"""Opens, saves and analyses checkpoints on worker QThreads, so the window never freezes."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from PySide6.QtCore import QObject, QThread, Signal

from workbench.controllers.jobs import JobRunner, running_threads
from workbench.engine.checkpoints import AnalysisCancelled, open_checkpoint, save_state_dict
from workbench.engine.checkpoints.report import format_bytes
from workbench.engine.errors import WorkbenchError

# Task names the editor uses; any other string works too (one running task per name).
OPEN, COMPARE, SAVE, STATS = "open", "compare", "save", "stats"


@dataclass(frozen=True)
class Task:
    """One piece of work: `name` groups tasks (the latest pending one per name wins)."""

    name: str
    description: str  # what the user reads while it runs: "Opening model.pth (1.2 GiB)..."
    work: Callable[[], object]
    token: object = None  # handed back with the result, so a caller can drop stale answers
    stop: threading.Event | None = None  # a cancellable task's work watches it (newer wins)


class UnexpectedTaskError(WorkbenchError):
    """A bug or an unforeseen failure inside a task, reported as one readable line."""


class CheckpointLoader(QObject):
    """Runs checkpoint work off the GUI thread: at most one task per name at a time.

    Signals carry the task name and its token: `finished(name, token, result)` and
    `failed(name, token, error)`; `progress(name, text)` when a task starts; `busy_changed` when
    the loader goes from idle to busy and back. Asking for a task whose name is still running
    queues it; a newer request of the same name replaces an older queued one, and stops the
    running one when it is cancellable (has a `stop` event). A stopped task ends with
    `cancelled(name, token)`, never `failed`.
    """

    progress = Signal(str, str)
    finished = Signal(str, object, object)
    failed = Signal(str, object, object)
    cancelled = Signal(str, object)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._running: dict[str, Task] = {}
        self._queued: dict[str, Task] = {}
        self.jobs = JobRunner(self, name="CheckpointTask", cancel=self._drop_and_stop)
        self.jobs.succeeded.connect(self._on_succeeded)
        self.jobs.failed.connect(self._on_failed)
        self.jobs.ended.connect(self._on_ended)
        self.jobs.busy_changed.connect(self.busy_changed)

    @classmethod
    def running_threads(cls) -> list[QThread]:
        """Worker threads of any checkpoint task still running (tests fail on leaks with this)."""
        return [t for t in running_threads() if t.objectName().startswith("CheckpointTask-")]

    @property
    def is_busy(self) -> bool:
        return self.jobs.is_busy

    def is_running(self, name: str) -> bool:
        return self.jobs.is_running(name)

    # the usual tasks ---------------------------------------------------------
    def open(
        self, path: str | Path, trust_file: str | Path | None = None, name: str = OPEN
    ) -> None:
        """open_checkpoint(path, trust_file=...) -> Checkpoint, on a worker thread."""
        path = Path(path)
        verb = "Loading (trusted, in a separate process)" if trust_file else "Opening"
        self.submit(
            Task(
                name,
                f"{verb} {path.name}{_size_note(path)}",
                functools.partial(open_checkpoint, path, trust_file=trust_file),
                token=path,
            )
        )

    def save(self, state_dict: Mapping[str, torch.Tensor], path: str | Path) -> None:
        """save_state_dict(state_dict, path) (atomic) -> Path, on a worker thread."""
        path = Path(path)
        snapshot = dict(state_dict)  # the editor may move on while this is written
        self.submit(
            Task(
                SAVE,
                f"Saving {path.name}",
                functools.partial(save_state_dict, snapshot, path),
                token=path,
            )
        )

    # any task ----------------------------------------------------------------
    def submit(self, task: Task) -> None:
        if task.name in self._running:
            self._queued[task.name] = task
            self._stop(task.name)
            return
        self._start(task)

    def cancel(self, name: str) -> None:
        """Stop the task of that name if it is cancellable (has a `stop` event), running or
        queued; other tasks (a save, an open) run to their end."""
        queued = self._queued.get(name)
        if queued is not None and queued.stop is not None:
            del self._queued[name]
        self._stop(name)

    def cancel_all(self) -> None:
        """`cancel` every name: statistics and comparisons stop, saves and opens run on."""
        for name in {*self._running, *self._queued}:
            self.cancel(name)

    def _stop(self, name: str) -> None:
        running = self._running.get(name)
        if running is not None and running.stop is not None:
            running.stop.set()

    def _start(self, task: Task) -> None:
        self._running[task.name] = task

        def unexpected(detail: str) -> UnexpectedTaskError:
            return UnexpectedTaskError(f"{task.description} failed: {detail}")

        self.jobs.start(task.name, task.work, unexpected)
        self.progress.emit(task.name, task.description + "…")

    def _on_succeeded(self, name: Hashable, result: object) -> None:
        task = self._running[str(name)]
        self.finished.emit(task.name, task.token, result)

    def _on_failed(self, name: Hashable, error: object) -> None:
        task = self._running[str(name)]
        if isinstance(error, AnalysisCancelled):
            self.cancelled.emit(task.name, task.token)
        else:
            self.failed.emit(task.name, task.token, error)

    def _on_ended(self, name: Hashable) -> None:
        self._running.pop(str(name), None)
        queued = self._queued.pop(str(name), None)
        if queued is not None:
            self._start(queued)

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Drop queued tasks, stop cancellable ones and wait for the rest; True when none is
        left running."""
        self._drop_and_stop()
        return self.jobs.shutdown(timeout_ms)

    def _drop_and_stop(self) -> None:
        self._queued.clear()
        self.cancel_all()


def _size_note(path: Path) -> str:
    try:
        return f" ({format_bytes(path.stat().st_size)})"
    except OSError:
        return ""


def describe_error(error: object) -> str:
    """The message a user reads for a task's failure (never a traceback)."""
    return str(error) if isinstance(error, BaseException) else repr(error)


__all__ = [
    "COMPARE",
    "OPEN",
    "SAVE",
    "STATS",
    "CheckpointLoader",
    "Task",
    "UnexpectedTaskError",
    "describe_error",
]
