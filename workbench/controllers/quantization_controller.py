"""Runs a quantization job on a worker thread, with progress signals and cooperative cancel."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path

import torch
from PySide6.QtCore import QObject, Signal

from workbench.controllers.jobs import JobRunner
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import Experiment
from workbench.engine.quantization import (
    MeasureSettings,
    QuantizationCancelled,
    QuantizationOptions,
    quantize_experiment,
)

Quantize = Callable[..., object]  # quantize_experiment, or a stand-in in a test
JOB = "quantize"


def _unexpected(detail: str) -> WorkbenchError:
    return WorkbenchError(f"Quantization stopped by an unexpected error: {detail}")


class QuantizationController(QObject):
    """One quantization at a time: `start`, `cancel`, and `shutdown()` that joins the thread.

    `quantize` is the engine call (`quantize_experiment`'s signature); tests pass a stand-in.
    """

    progressed = Signal(str, float)  # stage, fraction done
    run_succeeded = Signal(object)  # QuantizationOutcome
    run_failed = Signal(str)
    run_cancelled = Signal()
    state_changed = Signal(str)  # "idle" | "running" | "cancelling"
    run_ended = Signal()

    def __init__(
        self, parent: QObject | None = None, quantize: Quantize = quantize_experiment
    ) -> None:
        super().__init__(parent)
        self.quantize = quantize
        self._stop: threading.Event | None = None
        self.state = "idle"
        self.jobs = JobRunner(self, name="QuantizationThread", cancel=self.cancel)
        self.jobs.succeeded.connect(lambda _key, outcome: self.run_succeeded.emit(outcome))
        self.jobs.failed.connect(self._failed)
        self.jobs.ended.connect(self._ended)

    @property
    def is_running(self) -> bool:
        return self.jobs.is_running(JOB)

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
        work = functools.partial(
            self.quantize,
            experiment,
            state_dict,
            options,
            Path(output),
            measure=measure or MeasureSettings(),
            progress=self.progressed.emit,  # the engine throttles to ~20 a second
            stop=self._stop,
        )
        self.jobs.start(JOB, work, _unexpected)
        self._set_state("running")

    def cancel(self) -> None:
        """Ask the job to stop at its next check (between batches and timed runs)."""
        if self._stop is not None:
            self._stop.set()
            self._set_state("cancelling")

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    def _failed(self, _key: Hashable, error: object) -> None:
        if isinstance(error, QuantizationCancelled):
            self.run_cancelled.emit()
        else:
            self.run_failed.emit(str(error))

    def _ended(self, _key: Hashable) -> None:
        self._stop = None
        self._set_state("idle")
        self.run_ended.emit()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel any job and wait for its thread; True when nothing is left running."""
        return self.jobs.shutdown(timeout_ms)
