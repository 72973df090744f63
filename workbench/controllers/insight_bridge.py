"""The insight views' bridge to a training thread: what it computes there, between batches.

An InsightObserver rides along every in-process run of the session: the live decision boundary
of 2-D sets, a model snapshot and a probe after each epoch, and the gradient norm before each
optimizer step. Its findings reach the GUI thread as the InsightRelay's signals (queued, in
order); the views never see the Trainer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from PySide6.QtCore import QObject, Signal
from torch import nn

from workbench.controllers.run_session import RunSession
from workbench.engine.insight.decision_boundary import LiveBoundary
from workbench.engine.insight.gradient_norms import StepGradientNorms
from workbench.engine.insight.model_probe import probe
from workbench.engine.insight.outputs import snapshot_model
from workbench.engine.insight.run_context import (
    EpochInsight,
    RunContext,
    boundary_points,
    first_batch,
    point_ranges,
    source_dataset,
)
from workbench.engine.reports import BaseObserver, BatchReport, EpochReport, RunStarted
from workbench.engine.trainer import Trainer

PROBE_BATCH = 256  # samples of the validation split the probe pushes through each epoch
DEFAULT_REDRAW_EVERY = 10  # batches between live boundary frames while a run goes on
SEND_INTERVAL_SECONDS = 0.25  # how often new gradient norms travel to the GUI thread


class InsightRelay(QObject):
    """Carries the training thread's findings to the GUI thread; `attach(session)` has every
    later in-process run of the session observed (`detach()` stops it)."""

    started = Signal(object)  # RunContext
    grid_ready = Signal(int, int, object)  # epoch, batch (-1: end of epoch), BoundaryGrid
    epoch_ready = Signal(object)  # EpochInsight
    gradient_norms = Signal(object, object)  # steps, total norms (new since the last)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # Read by the training thread before each live frame: frames nobody sees cost ~10 %
        # of a fast run's time. (A plain bool: reading it from another thread is safe.)
        self.live_frames_wanted = True
        self.redraw_every = DEFAULT_REDRAW_EVERY  # live boundary frames: every N steps of a run
        self._session: RunSession | None = None

    def observer_for(self, trainer: Trainer) -> InsightObserver:
        return InsightObserver(trainer, self)

    def attach(self, session: RunSession) -> None:
        self.detach()
        self._session = session
        session.add_observer_factory(self.observer_for)

    def detach(self) -> None:
        if self._session is not None:
            self._session.remove_observer_factory(self.observer_for)
            self._session = None


class InsightObserver(BaseObserver):
    """Runs on the training thread, between batches (where reading the model is safe).

    A failure here must never stop the training: it is reported once and the observer goes
    quiet for the rest of the run.
    """

    def __init__(self, trainer: Trainer, relay: InsightRelay) -> None:
        self.trainer, self.relay = trainer, relay
        self.live: LiveBoundary | None = None
        self.probe_batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self.norms: StepGradientNorms | None = None
        self.active = True
        self._sent, self._last_send = 0, 0.0

    def _guarded(self, work: Callable[..., object], *args: Any) -> None:
        if not self.active:
            return
        try:
            work(*args)
        except Exception as exc:  # noqa: BLE001 - a view must never stop the training
            self.active = False
            self.relay.failed.emit(f"The insight tabs stopped following this run: {_brief(exc)}")

    def on_started(self, report: RunStarted) -> None:
        self._guarded(self._start, report)

    def on_batch_end(self, report: BatchReport) -> None:
        if self.live is not None and self.trainer.control.paused:  # a single Step: show it
            self._guarded(self.live.refresh, report.epoch, report.batch)
        elif self.live is not None and self.relay.live_frames_wanted:
            self.live.every_n_batches = max(1, self.relay.redraw_every)
            self._guarded(self.live.on_batch_end, report)
        if time.monotonic() - self._last_send >= SEND_INTERVAL_SECONDS:
            self._guarded(self._send_norms)

    def on_epoch_end(self, report: EpochReport) -> None:
        self._guarded(self._epoch_end, report)

    def on_after_backward(self, model: nn.Module) -> None:
        if self.norms is not None:
            self._guarded(self.norms.on_after_backward, model)

    def _start(self, report: RunStarted) -> None:
        trainer = self.trainer
        loaders = trainer.loaders
        info = loaders.info
        train, val = source_dataset(loaders.train), source_dataset(loaders.val)
        self.probe_batch = first_batch(val, PROBE_BATCH) or first_batch(train, PROBE_BATCH)
        # Under 16-mixed the gradients still carry the loss scale there: the norms would lie.
        if trainer.precision.name != "16-mixed":
            self.norms = StepGradientNorms(lambda: trainer.step)
        points = boundary_points(info, train, val)
        self.relay.started.emit(
            RunContext(info, trainer.experiment, train, val, trainer.loss_fn, points)
        )
        if points is not None:
            x_range, y_range = point_ranges(points)
            self.live = LiveBoundary(
                lambda: trainer.model, x_range, y_range, on_grid=self.relay.grid_ready.emit
            )
            self.live.on_started(report)

    def _epoch_end(self, report: EpochReport) -> None:
        if self.live is not None:
            self.live.on_epoch_end(report)
        model = self.trainer.model
        measured = None
        if self.probe_batch is not None:
            measured = probe(model, report.epoch, self.probe_batch, self.trainer.loss_fn)
        snapshot = snapshot_model(model).eval()  # eval for good: readers never flip its mode
        self._send_norms()
        self.relay.epoch_ready.emit(EpochInsight(report, snapshot, measured))

    def _send_norms(self) -> None:
        self._last_send = time.monotonic()
        if self.norms is None or len(self.norms.steps) <= self._sent:
            return
        steps, norms = self.norms.steps[self._sent :], self.norms.norms[self._sent :]
        self._sent = len(self.norms.steps)
        self.relay.gradient_norms.emit(list(steps), list(norms))


def _brief(exc: BaseException) -> str:
    """`KeyError: boom`: the exception's type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
