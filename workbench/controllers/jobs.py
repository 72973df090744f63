"""The one way work leaves the GUI thread: a job runs a function on a QThread of its own.

Every worker thread starts here and is kept in one registry (`running_threads()`, which the
tests' leak guard asks), every owner of background work (job runners, the torchrun run) is kept
in another, so that `shutdown_all()` stops and joins everything when the window closes. Outcomes
arrive on the GUI thread as signals: the function's result, or its error as a WorkbenchError
(an unexpected exception becomes one readable line, never a traceback).
"""

from __future__ import annotations

import threading
import traceback
import weakref
from collections.abc import Callable, Hashable
from typing import Any, Protocol

import shiboken6
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from workbench.engine.errors import WorkbenchError


class UnexpectedJobError(WorkbenchError):
    """A bug or an unforeseen failure inside a job, reported as one readable line."""


class Owner(Protocol):
    def shutdown(self, timeout_ms: int = ...) -> bool: ...


Unexpected = Callable[[str], WorkbenchError]

_threads: weakref.WeakSet[QThread] = weakref.WeakSet()
_owners: weakref.WeakSet[Any] = weakref.WeakSet()


def one_line(exc: BaseException) -> str:
    """`KeyError: 'boom'`: an exception as the one line a user reads."""
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def register_owner(owner: Owner) -> None:
    """Have `shutdown_all()` call `owner.shutdown()` (kept weakly: it may go away first)."""
    _owners.add(owner)


def running_threads() -> list[QThread]:
    """Worker threads still running, of every owner (tests fail on leaks with this)."""
    return [thread for thread in list(_threads) if thread.isRunning()]


def shutdown_all(timeout_ms: int = 30_000) -> bool:
    """Stop what can be stopped and wait for every owner's work; True when nothing is left.

    Owners are asked again while threads remain: one's last result may start another's job.
    """
    ok = True
    for _ in range(3):
        for owner in _live_owners():
            ok = bool(owner.shutdown(timeout_ms)) and ok
        if not running_threads():
            break
    return ok and not running_threads()


def _live_owners() -> list[Any]:
    """The owners still alive: Qt may have deleted one (with its window) before Python did."""
    return [owner for owner in list(_owners) if shiboken6.isValid(owner)]


def _forget_dummy_thread() -> None:
    """Drop the "dummy" entry Python made for this Qt thread, if any.

    Code that logs on a worker (torch's export trace) asks `threading.current_thread()`, which
    registers a foreign thread as a dummy that is never removed: Python cannot see a Qt thread
    end. The job knows it is about to, so it removes the entry.
    """
    active = getattr(threading, "_active", None)
    lock = getattr(threading, "_active_limbo_lock", None)
    dummy = getattr(threading, "_DummyThread", None)
    if active is None or lock is None or dummy is None:
        return
    with lock:
        if isinstance(active.get(threading.get_ident()), dummy):
            del active[threading.get_ident()]


class _JobWorker(QObject):
    """Calls the function on the worker thread; every outcome becomes exactly one signal."""

    outcome = Signal(bool, object)  # ok, the result or a WorkbenchError
    done = Signal()

    def __init__(self, work: Callable[[], object], unexpected: Unexpected) -> None:
        super().__init__()
        self.work, self.unexpected = work, unexpected
        self.result: tuple[bool, object] | None = None  # kept for a shutdown that cannot wait
        self.delivered = False

    @Slot()
    def run(self) -> None:
        try:
            self.result = (True, self.work())
        except WorkbenchError as exc:
            self.result = (False, exc)
        except Exception as exc:  # noqa: BLE001 - every failure reaches the user as one line
            self.result = (False, self.unexpected(one_line(exc)))
        try:
            self.outcome.emit(*self.result)
        finally:
            _forget_dummy_thread()
            self.done.emit()


class JobRunner(QObject):
    """Runs functions on worker threads, each under a key (one running job per key).

    `succeeded(key, result)` or `failed(key, error)` arrive on the GUI thread, then
    `ended(key)` once the job's thread is gone; `busy_changed` when the runner goes from idle
    to busy and back. `shutdown()` first calls the `cancel` given (a cooperative stop), then
    waits for every job.
    """

    succeeded = Signal(object, object)
    failed = Signal(object, object)
    ended = Signal(object)
    busy_changed = Signal(bool)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        name: str = "Job",
        cancel: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.name, self.cancel = name, cancel
        self._jobs: dict[Hashable, tuple[QThread, _JobWorker]] = {}
        self._busy = False
        register_owner(self)

    @property
    def is_busy(self) -> bool:
        return bool(self._jobs)

    def is_running(self, key: Hashable) -> bool:
        return key in self._jobs

    def start(
        self,
        key: Hashable,
        work: Callable[[], object],
        unexpected: Unexpected = UnexpectedJobError,
    ) -> None:
        """Run `work()` on a new thread; RuntimeError when `key` still has a job running."""
        if key in self._jobs:
            raise RuntimeError(f"{self.name} {key!r} is already running")
        worker = _JobWorker(work, unexpected)
        thread = QThread()
        thread.setObjectName(f"{self.name}-{key}")
        _threads.add(thread)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        # Direct: quit() is thread-safe, and a queued call would wait for the GUI thread, which
        # may be blocked in a shutdown's wait().
        worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        # Bound slots of this GUI-thread object: Qt queues both onto the GUI thread.
        worker.outcome.connect(self._on_outcome)
        thread.finished.connect(self._on_thread_finished)
        self._jobs[key] = (thread, worker)
        thread.start()
        self._set_busy(True)

    def _key_of(self, sender: QObject | None) -> Hashable | None:
        for key, (thread, worker) in self._jobs.items():
            if sender is thread or sender is worker:
                return key
        return None  # a job already reaped by shutdown()

    @Slot(bool, object)
    def _on_outcome(self, ok: bool, payload: object) -> None:
        key = self._key_of(self.sender())
        if key is not None:
            self._deliver(key, self._jobs[key][1], ok, payload)

    @Slot()
    def _on_thread_finished(self) -> None:
        key = self._key_of(self.sender())
        if key is not None:
            self._release(key)

    def _deliver(self, key: Hashable, worker: _JobWorker, ok: bool, payload: object) -> None:
        if worker.delivered:
            return  # shutdown() handed it over already
        worker.delivered = True
        (self.succeeded if ok else self.failed).emit(key, payload)

    def _release(self, key: Hashable) -> None:
        thread, worker = self._jobs.pop(key)
        worker.deleteLater()
        thread.deleteLater()
        self.ended.emit(key)  # its handler may start the next job: busy throughout
        self._set_busy(bool(self._jobs))

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel (if a way was given) and wait for every job; True when none is left running."""
        if not self._jobs:
            return True
        if self.cancel is not None:
            self.cancel()
        ok = True
        for key, (thread, worker) in list(self._jobs.items()):
            if thread.wait(timeout_ms):
                if worker.result is not None:  # its queued signal cannot arrive while we wait
                    self._deliver(key, worker, *worker.result)
                self._release(key)
            else:
                ok = False
        return ok
