"""Runs the engine's learning-rate finder on a worker thread and streams its ramp as signals."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from PySide6.QtCore import QObject, Signal

from workbench.controllers.jobs import JobRunner
from workbench.engine.control import RunControl
from workbench.engine.devices import DeviceInfo
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import Experiment
from workbench.engine.lr_finder import LRFinderResult, find_lr_for_experiment

JOB = "lr-find"
FindLR = Callable[..., tuple[LRFinderResult, Any]]  # find_lr_for_experiment, or a test's stand-in


def _unexpected(detail: str) -> WorkbenchError:
    return WorkbenchError(f"The learning-rate finder stopped on an unexpected error: {detail}")


class LRFinderController(QObject):
    """`start(experiment)`: `stepped(step, rate, loss, smoothed)` per step, then `found(result)`
    or `failed(message)`, then `ended`. The experiment's own model and optimizer are built for
    the ramp and dropped after it, so the project is never touched."""

    stepped = Signal(int, float, float, float)
    found = Signal(object)  # LRFinderResult
    failed = Signal(str)
    ended = Signal()

    def __init__(
        self,
        devices: list[DeviceInfo] | None = None,
        parent: QObject | None = None,
        find: FindLR = find_lr_for_experiment,
    ) -> None:
        super().__init__(parent)
        self.devices, self.find = devices, find
        self._control: RunControl | None = None
        self.jobs = JobRunner(self, name="LRFinderThread", cancel=self.stop)
        self.jobs.succeeded.connect(lambda _key, result: self.found.emit(result))
        self.jobs.failed.connect(lambda _key, error: self.failed.emit(str(error)))
        self.jobs.ended.connect(self._ended)

    @property
    def is_running(self) -> bool:
        return self.jobs.is_running(JOB)

    def start(self, experiment: Experiment, **ramp: Any) -> None:
        if self.is_running:
            raise RuntimeError("the learning-rate finder is already running")
        self._control = control = RunControl()

        def work() -> LRFinderResult:
            result, _trainer = self.find(
                experiment, devices=self.devices, control=control, on_step=self.stepped.emit,
                **ramp,
            )  # fmt: skip
            return result

        self.jobs.start(JOB, work, _unexpected)

    def stop(self) -> None:
        """End the ramp at the next step (the finder still suggests from what it saw)."""
        if self._control is not None:
            self._control.request_stop()

    def _ended(self, _key: Hashable) -> None:
        self._control = None
        self.ended.emit()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        return self.jobs.shutdown(timeout_ms)
