"""A queue of sweeps run one after another on a worker thread by the engine's SweepRunner."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from workbench.controllers.jobs import JobRunner
from workbench.engine.control import RunControl
from workbench.engine.devices import DeviceInfo
from workbench.engine.errors import WorkbenchError
from workbench.engine.reports import BaseObserver, EpochReport, TrainingObserver
from workbench.engine.sweep import BaseSweepObserver, SweepRunner, TrialResult
from workbench.engine.sweep_plan import SweepSpec, Trial


@dataclass(frozen=True)
class QueuedSweep:
    """A sweep waiting in (or taken from) the queue: what it tries and where its trials go."""

    spec: SweepSpec
    out_dir: Path
    trials: int

    @property
    def name(self) -> str:
        kind = f"random {self.spec.random_trials}" if self.spec.random_trials else "grid"
        return f"{', '.join(self.spec.keys)} ({kind}, {self.trials} trials) → {self.out_dir.name}"


def _unexpected(detail: str) -> WorkbenchError:
    return WorkbenchError(f"The sweep stopped on an unexpected error: {detail}")


class _EpochForwarder(BaseObserver):
    def __init__(self, controller: SweepController, number: int) -> None:
        self.controller, self.number = controller, number

    def on_epoch_end(self, report: EpochReport) -> None:
        self.controller.trial_epoch_ended.emit(self.number, report)


class _SignalObserver(BaseSweepObserver):
    """The engine's sweep observer on the worker thread: each call becomes a queued signal."""

    def __init__(self, controller: SweepController) -> None:
        self.controller = controller

    def on_sweep_started(self, results: list[TrialResult]) -> None:
        self.controller.sweep_started.emit(list(results))

    def on_trial_started(self, trial: Trial, resume_epoch: int | None) -> None:
        self.controller.trial_started.emit(trial.number)

    def on_trial_finished(self, result: TrialResult) -> None:
        self.controller.trial_finished.emit(result)

    def training_observer(self, trial: Trial) -> TrainingObserver:
        return _EpochForwarder(self.controller, trial.number)


class SweepController(QObject):
    """Add sweeps to a queue, run them in order, stop after the current batch.

    Signals arrive on the GUI thread: `sweep_started(results)` with every trial pending (or
    finished before, on a resumed folder), `trial_started(number)`, `trial_epoch_ended(number,
    EpochReport)`, `trial_finished(TrialResult)`, then `sweep_finished(results, stopped)` or
    `sweep_failed(message)`. A stopped sweep goes back to the head of the queue, which halts;
    `run()` continues it (its finished trials skipped, the stopped one resumed from its last
    epoch checkpoint) and then the rest.
    """

    queue_changed = Signal()
    state_changed = Signal(str)  # "idle" | "running" | "stopping"
    sweep_started = Signal(object)
    trial_started = Signal(int)
    trial_epoch_ended = Signal(int, object)
    trial_finished = Signal(object)
    sweep_finished = Signal(object, bool)
    sweep_failed = Signal(str)

    def __init__(
        self, devices: list[DeviceInfo] | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.devices = devices
        self.queue: list[QueuedSweep] = []
        self.current: QueuedSweep | None = None
        self.state = "idle"
        self._control: RunControl | None = None
        self._continue = False  # start the next queued sweep when this one ends
        self.jobs = JobRunner(self, name="SweepThread", cancel=self.stop)
        self.jobs.succeeded.connect(self._succeeded)
        self.jobs.failed.connect(lambda _key, error: self._failed(str(error)))
        self.jobs.ended.connect(self._ended)

    @property
    def is_running(self) -> bool:
        return self.jobs.is_busy

    def add(self, spec: SweepSpec, out_dir: Path, trials: int) -> QueuedSweep:
        item = QueuedSweep(spec, Path(out_dir), trials)
        self.queue.append(item)
        self.queue_changed.emit()
        return item

    def remove(self, index: int) -> None:
        """Take a waiting sweep off the queue (the running one is stopped with `stop`)."""
        if 0 <= index < len(self.queue):
            del self.queue[index]
            self.queue_changed.emit()

    def run(self) -> bool:
        """Start the first queued sweep (the rest follow); False when busy or nothing waits."""
        if self.is_running or not self.queue:
            return False
        self.current = item = self.queue.pop(0)
        self._control = control = RunControl()
        self._continue = True
        observer = _SignalObserver(self)

        def work() -> list[TrialResult]:
            runner = SweepRunner(item.spec, item.out_dir, observer, control, self.devices)
            runner.prepare()
            return runner.run()

        self.jobs.start("sweep", work, _unexpected)
        self.queue_changed.emit()
        self._set_state("running")
        return True

    def stop(self) -> None:
        """Stop after the current batch; the queue waits (`run()` continues)."""
        self._continue = False
        if self._control is not None and self.is_running:
            self._control.request_stop()
            self._set_state("stopping")

    def _succeeded(self, _key: Hashable, results: Any) -> None:
        stopped = any(r.status == "stopped" for r in results) or not self._continue
        unfinished = any(not r.finished for r in results)
        if stopped and unfinished and self.current is not None:
            self.queue.insert(0, self.current)  # Run continues it: finished trials are skipped
        self.sweep_finished.emit(list(results), stopped)

    def _failed(self, message: str) -> None:
        self._continue = False
        self.sweep_failed.emit(message)

    def _ended(self, _key: Hashable) -> None:
        self._control = None
        self.current = None
        self.queue_changed.emit()
        self._set_state("idle")
        if self._continue:
            self.run()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    def shutdown(self, timeout_ms: int = 60_000) -> bool:
        """Stop the running sweep after its batch and wait for its thread."""
        return self.jobs.shutdown(timeout_ms)
