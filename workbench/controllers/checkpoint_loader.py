"""Opens, saves and analyses checkpoints on worker QThreads, so the window never freezes."""

from __future__ import annotations

import functools
import traceback
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from PySide6.QtCore import QObject, QThread, Signal, Slot

from workbench.controllers.worker_thread import release, running, thread_for
from workbench.engine.checkpoints import open_checkpoint, save_state_dict
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


class UnexpectedTaskError(WorkbenchError):
    """A bug or an unforeseen failure inside a task, reported as one readable line."""


class TaskWorker(QObject):
    """Runs one Task on the worker thread; every outcome becomes exactly one signal."""

    succeeded = Signal(object)
    failed = Signal(object)  # the exception (a WorkbenchError)
    done = Signal()

    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task = task

    @Slot()
    def run(self) -> None:
        try:
            result = self.task.work()
        except WorkbenchError as exc:
            self.failed.emit(exc)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a `failed` signal
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.failed.emit(UnexpectedTaskError(f"{self.task.description} failed: {detail}"))
        else:
            self.succeeded.emit(result)
        finally:
            self.done.emit()


class CheckpointLoader(QObject):
    """Runs checkpoint work off the GUI thread: at most one task per name at a time.

    Signals carry the task name and its token: `finished(name, token, result)` and
    `failed(name, token, error)`; `progress(name, text)` when a task starts; `busy_changed` when
    the loader goes from idle to busy and back. Asking for a task whose name is still running
    queues it; a newer request of the same name replaces an older queued one.
    """

    _all_threads: ClassVar[weakref.WeakSet[QThread]] = weakref.WeakSet()

    progress = Signal(str, str)
    finished = Signal(str, object, object)
    failed = Signal(str, object, object)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._running: dict[str, tuple[QThread, TaskWorker]] = {}
        self._queued: dict[str, Task] = {}

    @classmethod
    def running_threads(cls) -> list[QThread]:
        """Worker threads of any loader still running (tests fail on leaks with this)."""
        return running(cls._all_threads)

    @property
    def is_busy(self) -> bool:
        return bool(self._running)

    def is_running(self, name: str) -> bool:
        return name in self._running

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
            return
        self._start(task)

    def _start(self, task: Task) -> None:
        was_busy = self.is_busy
        worker = TaskWorker(task)
        thread = thread_for(worker, f"CheckpointTask-{task.name}", CheckpointLoader._all_threads)
        worker.succeeded.connect(functools.partial(self._on_succeeded, task))
        worker.failed.connect(functools.partial(self._on_failed, task))
        thread.finished.connect(functools.partial(self._on_thread_finished, task.name, thread))
        self._running[task.name] = (thread, worker)
        thread.start()
        if not was_busy:
            self.busy_changed.emit(True)
        self.progress.emit(task.name, task.description + "…")

    def _on_succeeded(self, task: Task, result: object) -> None:
        self.finished.emit(task.name, task.token, result)

    def _on_failed(self, task: Task, error: object) -> None:
        self.failed.emit(task.name, task.token, error)

    def _on_thread_finished(self, name: str, thread: QThread) -> None:
        running = self._running.get(name)
        if running is None or running[0] is not thread:
            return  # already handled by shutdown()
        self._release(name)
        queued = self._queued.pop(name, None)
        if queued is not None:
            self._start(queued)
        elif not self.is_busy:
            self.busy_changed.emit(False)

    def _release(self, name: str) -> None:
        release(*self._running.pop(name))

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Drop queued tasks and wait for running ones; True when nothing is left running."""
        self._queued.clear()
        was_busy = self.is_busy
        all_finished = True
        for name, (thread, _worker) in list(self._running.items()):
            if thread.wait(timeout_ms):
                self._release(name)
            else:
                all_finished = False
        if was_busy and not self._running:
            self.busy_changed.emit(False)
        return all_finished


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
    "TaskWorker",
    "UnexpectedTaskError",
    "describe_error",
]
