"""A worker QObject on a QThread of its own: how every controller starts one and lets it go."""

from __future__ import annotations

import weakref

from PySide6.QtCore import QObject, Qt, QThread


def thread_for(worker: QObject, name: str, registry: weakref.WeakSet[QThread]) -> QThread:
    """A new QThread called NAME (kept in REGISTRY for leak checks) that runs `worker.run` once
    started and quits when the worker emits `done`. Connect `finished`, then `start()` it."""
    thread = QThread()
    thread.setObjectName(name)
    registry.add(thread)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)  # type: ignore[attr-defined]
    # Direct: quit() is thread-safe, and a queued call would wait for the GUI thread, which may
    # be blocked in a shutdown's wait().
    worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)  # type: ignore[attr-defined]
    return thread


def release(thread: QThread, worker: QObject | None) -> None:
    """Delete a finished thread and its worker once control returns to the event loop."""
    if worker is not None:
        worker.deleteLater()
    thread.deleteLater()


def running(registry: weakref.WeakSet[QThread]) -> list[QThread]:
    """The threads in REGISTRY still running (tests fail on leaks with this)."""
    return [thread for thread in list(registry) if thread.isRunning()]
