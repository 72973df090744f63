"""Runs a quantization job on a worker QThread, with progress signals and cooperative cancel."""

from __future__ import annotations

import functools
import threading
import traceback
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import torch
from PySide6.QtCore import QObject, QThread, Signal, Slot

from workbench.controllers.worker_thread import release, running, thread_for
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import Experiment
from workbench.engine.quantization import (
    MeasureSettings,
    QuantizationCancelled,
    QuantizationOptions,
    quantize_experiment,
)


class QuantizationWorker(QObject):
    """Calls the engine on the worker thread; its progress callback becomes a signal."""

    progressed = Signal(str, float)  # stage, fraction done
    run_succeeded = Signal(object)  # QuantizationOutcome
    run_failed = Signal(str)
    run_cancelled = Signal()
    done = Signal()

    def __init__(
        self,
        experiment: Experiment,
        state_dict: Mapping[str, torch.Tensor],
        options: QuantizationOptions,
        output: Path,
        measure: MeasureSettings,
        stop: threading.Event,
    ) -> None:
        super().__init__()
        self.experiment = experiment
        self.state_dict = state_dict
        self.options = options
        self.output = output
        self.measure = measure
        self.stop = stop

    @Slot()
    def run(self) -> None:
        try:
            outcome = quantize_experiment(
                self.experiment,
                self.state_dict,
                self.options,
                self.output,
                measure=self.measure,
                progress=self.progressed.emit,  # the engine throttles to ~20 a second
                stop=self.stop,
            )
            self.run_succeeded.emit(outcome)
        except QuantizationCancelled:
            self.run_cancelled.emit()
        except WorkbenchError as exc:
            self.run_failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - every failure reaches the user as one line
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.run_failed.emit(f"Quantization stopped by an unexpected error: {detail}")
        finally:
            _forget_dummy_thread()
            self.done.emit()


def _forget_dummy_thread() -> None:
    """Drop the "dummy" entry Python made for this Qt thread.

    torch logs from the worker (export's structured trace), and a log record asks
    `threading.current_thread()`, which registers a foreign thread as a dummy that is never
    removed: Python cannot see a Qt thread end. We know it is about to, so we remove it.
    """
    active = getattr(threading, "_active", None)
    lock = getattr(threading, "_active_limbo_lock", None)
    dummy = getattr(threading, "_DummyThread", None)
    if active is None or lock is None or dummy is None:
        return
    with lock:
        if isinstance(active.get(threading.get_ident()), dummy):
            del active[threading.get_ident()]


class QuantizationController(QObject):
    """One quantization at a time: `start`, `cancel`, and `shutdown()` that joins the thread."""

    _all_threads: ClassVar[weakref.WeakSet[QThread]] = weakref.WeakSet()

    progressed = Signal(str, float)
    run_succeeded = Signal(object)  # QuantizationOutcome
    run_failed = Signal(str)
    run_cancelled = Signal()
    state_changed = Signal(str)  # "idle" | "running" | "cancelling"
    run_ended = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: QThread | None = None
        self._worker: QuantizationWorker | None = None
        self._stop: threading.Event | None = None
        self.state = "idle"

    @classmethod
    def running_threads(cls) -> list[QThread]:
        """Worker threads of any controller still running (tests fail on leaks with this)."""
        return running(cls._all_threads)

    @property
    def is_running(self) -> bool:
        return self._thread is not None

    def start(
        self,
        experiment: Experiment,
        state_dict: Mapping[str, torch.Tensor],
        options: QuantizationOptions,
        output: str | Path,
        measure: MeasureSettings | None = None,
    ) -> None:
        """Quantize on a worker thread; every outcome arrives as a signal, then `run_ended`."""
        if self.is_running:
            raise RuntimeError("a quantization is already running")
        self._stop = threading.Event()
        self._worker = QuantizationWorker(
            experiment,
            state_dict,
            options,
            Path(output),
            measure or MeasureSettings(),
            self._stop,
        )
        self._thread = thread_for(
            self._worker, "QuantizationThread", QuantizationController._all_threads
        )
        self._worker.progressed.connect(self.progressed)
        self._worker.run_succeeded.connect(self.run_succeeded)
        self._worker.run_failed.connect(self.run_failed)
        self._worker.run_cancelled.connect(self.run_cancelled)
        self._thread.finished.connect(functools.partial(self._on_thread_finished, self._thread))
        self._thread.start()
        self._set_state("running")

    def cancel(self) -> None:
        """Ask the job to stop at its next check (between batches and timed runs)."""
        if self._stop is not None:
            self._stop.set()
            self._set_state("cancelling")

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    def _on_thread_finished(self, thread: QThread) -> None:
        if thread is not self._thread:
            return  # already handled by shutdown()
        release(thread, self._worker)
        self._thread, self._worker, self._stop = None, None, None
        self._set_state("idle")
        self.run_ended.emit()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel any job and wait for its thread; True when nothing is left running."""
        thread = self._thread
        if thread is None:
            return True
        self.cancel()
        finished = bool(thread.wait(timeout_ms))
        if finished:
            self._on_thread_finished(thread)
        return finished
