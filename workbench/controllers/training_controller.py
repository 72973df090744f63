"""Runs the engine's Trainer on a worker QThread and turns its reports into throttled Qt signals."""

from __future__ import annotations

import time
import traceback
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from PySide6.QtCore import QObject, QThread, Signal, Slot

from workbench.controllers.worker_thread import release, running, thread_for
from workbench.engine.control import RunControl
from workbench.engine.cpu_threads import lower_this_threads_priority, release_idle_cpu_threads
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import Experiment
from workbench.engine.reports import (
    BatchReport,
    EpochReport,
    FanOutObserver,
    RunStarted,
    TrainingObserver,
)
from workbench.engine.trainer import Trainer

EMIT_INTERVAL_SECONDS = 0.05  # at most ~20 batch updates a second reach the GUI thread

# Called with each new run's Trainer (not yet prepared); returns an observer for that run, or None.
ObserverFactory = Callable[[Trainer], TrainingObserver | None]


class TrainingWorker(QObject):
    """The Trainer's observer, living on the worker thread; batches reports into few signals."""

    run_started = Signal(object)  # RunStarted
    batches_reported = Signal(list)  # list[BatchReport]
    epoch_ended = Signal(object)  # EpochReport
    log_received = Signal(str)
    run_succeeded = Signal(dict)
    run_failed = Signal(str)
    done = Signal()

    def __init__(self, trainer: Trainer, extra_observers: Sequence[TrainingObserver] = ()) -> None:
        super().__init__()
        self.trainer = trainer
        self.extra_observers = list(extra_observers)
        self._pending: list[BatchReport] = []
        self._last_emit = 0.0
        self.batches_seen = 0  # read by tests: the engine-side count, ahead of the GUI's

    @Slot()
    def run(self) -> None:
        # First, before any tensor work: the OpenMP workers this thread starts inherit it.
        lower_this_threads_priority()
        # The worker reports first, so the GUI hears of an epoch before any extra observer's
        # work on it; extra observers run here, on the training thread, between batches.
        extra = self.extra_observers
        self.trainer.observer = FanOutObserver(self, *extra) if extra else self
        try:
            self.trainer.prepare()  # loading data can take seconds: never on the GUI thread
            self.trainer.fit()
        except WorkbenchError as exc:
            if not self.trainer.failed_reported:
                self.run_failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a run_failed signal
            self._flush()
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.run_failed.emit(f"Training stopped by an unexpected error: {detail}")
        finally:
            self._flush()
            self.done.emit()

    def _flush(self) -> None:
        if self._pending:
            self.batches_reported.emit(self._pending)
            self._pending = []
        self._last_emit = time.monotonic()

    # TrainingObserver ------------------------------------------------------
    def on_started(self, report: RunStarted) -> None:
        self.run_started.emit(report)

    def on_batch_end(self, report: BatchReport) -> None:
        self.batches_seen += 1
        self._pending.append(report)
        if time.monotonic() - self._last_emit >= EMIT_INTERVAL_SECONDS:
            self._flush()

    def on_epoch_end(self, report: EpochReport) -> None:
        self._flush()
        self.epoch_ended.emit(report)

    def on_log(self, text: str) -> None:
        self._flush()
        self.log_received.emit(text)

    def on_finished(self, summary: dict[str, Any]) -> None:
        self._flush()
        self.run_succeeded.emit(summary)

    def on_failed(self, message: str) -> None:
        self._flush()
        self.run_failed.emit(message)


class TrainingController(QObject):
    """Starts, pauses, steps and stops one in-process run at a time; `shutdown()` joins it."""

    _all_threads: ClassVar[weakref.WeakSet[QThread]] = weakref.WeakSet()
    supports_pause = True

    run_started = Signal(object)
    batches_reported = Signal(list)
    epoch_ended = Signal(object)
    log_received = Signal(str)
    run_succeeded = Signal(dict)
    run_failed = Signal(str)
    state_changed = Signal(str)  # "idle" | "running" | "paused"
    run_ended = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: QThread | None = None
        self._worker: TrainingWorker | None = None
        self._control: RunControl | None = None
        self.trainer: Trainer | None = None
        self.state = "idle"
        self._observer_factories: list[ObserverFactory] = []

    @classmethod
    def running_threads(cls) -> list[QThread]:
        """Worker threads of any controller still running (tests fail on leaks with this)."""
        return running(cls._all_threads)

    @property
    def is_running(self) -> bool:
        return self._thread is not None

    def add_observer_factory(self, factory: ObserverFactory) -> None:
        """Have every later run also report to `factory(trainer)`'s observer (None: not this run).

        The factory is called on the GUI thread when a run starts, before its data is loaded;
        the observer then gets every report on the training thread, between batches, where it
        may read the model safely (a panel's live views register this way, unseen by the window).
        """
        if factory not in self._observer_factories:
            self._observer_factories.append(factory)

    def remove_observer_factory(self, factory: ObserverFactory) -> None:
        """Later runs no longer call `factory` (a run in progress keeps its observer)."""
        if factory in self._observer_factories:
            self._observer_factories.remove(factory)

    def start(
        self,
        experiment: Experiment,
        out_dir: str | Path | None = None,
        start_paused: bool = False,
        resume_from: str | Path | None = None,
        initial_weights: dict[str, Any] | None = None,
    ) -> None:
        """Prepare and train on a worker thread; bad input arrives as `run_failed`."""
        if self.is_running:
            raise RuntimeError("a run is already in progress")
        control = RunControl(start_paused=start_paused)
        trainer = Trainer(
            experiment,
            control=control,
            out_dir=out_dir,
            resume_from=resume_from,
            initial_weights=initial_weights,
        )
        made = [factory(trainer) for factory in list(self._observer_factories)]
        extra = [observer for observer in made if observer is not None]
        self._control, self.trainer = control, trainer
        self._worker = TrainingWorker(trainer, extra)
        self._thread = thread_for(self._worker, "TrainingThread", TrainingController._all_threads)
        self._connect(self._worker)
        self._thread.finished.connect(self._thread_finished)
        release_idle_cpu_threads()  # the GUI thread's idle team would slow the training thread's
        self._thread.start()
        self._set_state("paused" if start_paused else "running")

    def _connect(self, worker: TrainingWorker) -> None:
        worker.run_started.connect(self.run_started)
        worker.batches_reported.connect(self.batches_reported)
        worker.epoch_ended.connect(self.epoch_ended)
        worker.log_received.connect(self.log_received)
        worker.run_succeeded.connect(self.run_succeeded)
        worker.run_failed.connect(self.run_failed)

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    @Slot()
    def _thread_finished(self) -> None:
        # A bound slot of this GUI-thread object, so Qt queues it onto the GUI thread.
        sender = self.sender()
        if isinstance(sender, QThread):
            self._on_thread_finished(sender)

    def _on_thread_finished(self, thread: QThread) -> None:
        if thread is not self._thread:
            return  # already handled by shutdown()
        release(thread, self._worker)
        self._thread, self._worker, self._control = None, None, None
        self._set_state("idle")
        self.run_ended.emit()

    def stop(self) -> None:
        if self._control is not None:
            self._control.request_stop()

    def pause(self) -> None:
        if self._control is not None:
            self._control.pause()
            self._set_state("paused")

    def resume(self) -> None:
        if self._control is not None:
            self._control.resume()
            self._set_state("running")

    def step(self) -> None:
        """One optimizer step of the current run (which then stays paused)."""
        if self._control is not None:
            self._control.step()
            self._set_state("paused")

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Stop any run and wait for its thread; True when nothing is left running."""
        thread = self._thread
        if thread is None:
            return True
        self.stop()
        finished = thread.wait(timeout_ms)
        if finished:
            self._on_thread_finished(thread)
        return bool(finished)
