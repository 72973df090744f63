"""Will it fit: the engine's memory estimate for the project, redone in the background when the
settings it depends on change (debounced), against the device's free memory."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from workbench.controllers.jobs import JobRunner, register_owner
from workbench.engine import memory_estimate
from workbench.engine.devices import DeviceInfo, available_devices, resolve_device
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import Experiment

DEBOUNCE_MS = 400


def _unexpected(detail: str) -> WorkbenchError:
    return WorkbenchError(f"no memory estimate for this model: {detail}")


@dataclass(frozen=True)
class MemoryFit:
    """An estimate against free memory: verdict `fits`, `tight`, `too_big` or `unknown`."""

    estimate: memory_estimate.MemoryEstimate
    free: int | None
    verdict: str
    sentence: str

    @property
    def text(self) -> str:
        peak = memory_estimate.format_bytes(self.estimate.peak)
        return f"Peak training memory ≈ {peak}; {self.sentence}"


def memory_inputs(experiment: Experiment) -> tuple[Any, ...]:
    """What the estimate depends on: a change elsewhere (the rate, the epochs) keeps it."""
    train = experiment.train
    return (
        experiment.model,
        experiment.data,
        train.optimizer,
        train.precision,
        train.device,
        train.accumulate_grad_batches,
        train.memory_format,
    )


def estimate_fit(experiment: Experiment, devices: list[DeviceInfo] | None) -> MemoryFit:
    known = devices if devices is not None else available_devices()
    device = resolve_device(experiment.train.device, known)
    estimate = memory_estimate.estimate_training_memory(experiment, device=device)
    free = memory_estimate.free_memory(device)
    verdict, sentence = memory_estimate.fit_verdict(estimate, free)
    return MemoryFit(estimate, free, verdict, sentence)


class MemoryFitChecker(QObject):
    """`request(experiment)` after every edit; `estimated(MemoryFit)` or `failed(message)` follow
    for the newest settings only (`latest` and `latest_inputs` hold the last answer)."""

    estimated = Signal(object)
    failed = Signal(str)
    busy_changed = Signal(bool)

    def __init__(
        self,
        devices: list[DeviceInfo] | None = None,
        parent: QObject | None = None,
        delay_ms: int = DEBOUNCE_MS,
    ) -> None:
        super().__init__(parent)
        self.devices = devices
        self.latest: MemoryFit | None = None
        self.latest_inputs: tuple[Any, ...] | None = None
        self._wanted: Experiment | None = None
        self._running_inputs: tuple[Any, ...] | None = None
        self._generation = 0
        self.timer = QTimer(self, singleShot=True, interval=delay_ms)
        self.timer.timeout.connect(self._start)
        self.jobs = JobRunner(self, name="MemoryEstimate")
        self.jobs.succeeded.connect(self._succeeded)
        self.jobs.failed.connect(self._failed)
        self.jobs.ended.connect(lambda _key: self._start())
        self.jobs.busy_changed.connect(self.busy_changed)
        self._closed = False
        register_owner(self)  # the window's shutdown_all() stops the timer too

    def request(self, experiment: Experiment) -> None:
        """Estimate `experiment` once the edits pause; nothing when its inputs are unchanged."""
        inputs = memory_inputs(experiment)
        if self._closed:
            return
        if inputs in (self.latest_inputs, self._running_inputs) and self._wanted is None:
            return
        self._wanted = experiment
        self.timer.start()

    def is_current(self, experiment: Experiment) -> bool:
        return self.latest is not None and self.latest_inputs == memory_inputs(experiment)

    def _start(self) -> None:
        if self._closed or self._wanted is None or self.jobs.is_busy or self.timer.isActive():
            return  # a running estimate starts the wanted one when it ends
        experiment, self._wanted = self._wanted, None
        self._generation += 1
        self._running_inputs = memory_inputs(experiment)
        devices = self.devices
        self.jobs.start(self._generation, lambda: estimate_fit(experiment, devices), _unexpected)

    def _succeeded(self, _key: Hashable, fit: Any) -> None:
        self.latest, self.latest_inputs = fit, self._running_inputs
        self.estimated.emit(fit)

    def _failed(self, _key: Hashable, error: object) -> None:
        self.latest, self.latest_inputs = None, self._running_inputs
        self.failed.emit(str(error))

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """No more estimates (the window is closing); wait for one still running."""
        self._closed = True
        self.timer.stop()
        self._wanted = None
        return self.jobs.shutdown(timeout_ms)
