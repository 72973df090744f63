"""How a run's reports reach the window, for every kind of run: paced here, and only here.

Batch reports travel in groups, at most every REPORT_INTERVAL_SECONDS: drawing them is Python on
the GUI thread, and every millisecond of it holds the GIL a training thread needs. Everything
else (start, epoch ends, log lines, the end) goes at once, after the batches before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import SignalInstance

from workbench.engine.reports import BaseObserver, BatchReport, EpochReport, RunStarted

REPORT_INTERVAL_SECONDS = 0.2  # at most five batch updates a second reach the widgets


class RunSignals(Protocol):
    """The signals a run's reports become (RunSession's)."""

    run_started: SignalInstance
    batches_reported: SignalInstance
    epoch_ended: SignalInstance
    log_received: SignalInstance
    run_succeeded: SignalInstance
    run_failed: SignalInstance


class ReportPacer:
    """Collects batch reports and sends them on as one list, at most every `interval` seconds.

    A busy training thread cannot serve timers, so `add` sends when enough time has passed;
    a caller with an event loop asks `due_in()` and flushes later itself.
    """

    def __init__(
        self,
        send: Callable[[list[BatchReport]], None],
        interval: float = REPORT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.send, self.interval, self.clock = send, interval, clock
        self.pending: list[BatchReport] = []
        self._last = -float("inf")

    def add(self, report: BatchReport) -> None:
        self.pending.append(report)
        if self.due_in() <= 0:
            self.flush()

    def due_in(self) -> float:
        """Seconds until the pending reports may go (zero or less: now)."""
        return self.interval - (self.clock() - self._last)

    def flush(self) -> None:
        if self.pending:
            reports, self.pending = self.pending, []
            self.send(reports)
            self._last = self.clock()


class SignalReporter(BaseObserver):
    """An engine observer that turns a run's reports into the session's signals, paced.

    It may run on a training thread: signals of a GUI-thread object are queued to the GUI
    thread, in order. `hold` says when a batch should go at once (a paused run waits).
    """

    def __init__(self, signals: RunSignals, hold: Callable[[], bool] = lambda: False) -> None:
        self.signals, self.hold = signals, hold
        self.pacer = ReportPacer(signals.batches_reported.emit)
        self.batches_seen = 0  # counted where the reports arise, ahead of the GUI's view
        self.summary: dict[str, Any] | None = None  # how the run ended, once it has
        self.failure: str | None = None

    def on_started(self, report: RunStarted) -> None:
        self.signals.run_started.emit(report)

    def on_batch_end(self, report: BatchReport) -> None:
        self.batches_seen += 1
        self.pacer.add(report)
        if self.hold():
            self.pacer.flush()

    def on_epoch_end(self, report: EpochReport) -> None:
        self.pacer.flush()
        self.signals.epoch_ended.emit(report)

    def on_log(self, text: str) -> None:
        self.pacer.flush()
        self.signals.log_received.emit(text)

    def on_finished(self, summary: dict[str, Any]) -> None:
        self.pacer.flush()
        self.summary = summary
        self.signals.run_succeeded.emit(summary)

    def on_failed(self, message: str) -> None:
        self.pacer.flush()
        self.failure = message
        self.signals.run_failed.emit(message)
