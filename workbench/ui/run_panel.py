"""Train / Pause / Stop / Step buttons and the run's progress bar; emits intents, never runs anything."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QStyle, QWidget

from workbench.engine.reports import BatchReport, EpochReport, RunStarted

RUN_STATES = ("idle", "running", "paused")
PROGRESS_STEPS = 10_000  # QProgressBar counts in ints; this keeps 0.01 % resolution on long runs
TRAIN_TIP = "Train the model with the current settings"
PAUSED_TEXT = "Paused"
PAUSED_TIP = "The run waits: Resume (F6) carries on, Step (F10) runs one optimizer step"
PAUSED_STYLE = "QLabel { background: #E69F00; color: #000000; font-weight: bold; padding: 2px 8px; border-radius: 3px; }"
FINISHED_WORDS = {"completed": "Done", "stopped": "Stopped", "early_stopped": "Stopped early"}


def clock_text(seconds: float) -> str:
    """0:42, 12:05, 1:02:03 — how long, the way a progress bar says it."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class RunPanel(QWidget):
    """Buttons that ask for a run to start, pause, resume, step or stop, plus progress and ETA."""

    train_requested = Signal()
    pause_requested = Signal()
    resume_requested = Signal()
    stop_requested = Signal()
    step_requested = Signal()

    def __init__(
        self, parent: QWidget | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(parent)
        self.setObjectName("runPanel")
        self.setAccessibleName("Run controls")
        self._clock = clock
        self._state = "idle"
        self._train_allowed = True
        self._pausable = True
        self._usual_tips: dict[str, str] = {}
        self._train_reason = ""
        self._started: RunStarted | None = None
        self._started_at = clock()
        self._text = ""
        self._paused_since: float | None = None  # paused time is left out of the ETA
        self._paused_total = 0.0

        pixmap = QStyle.StandardPixmap
        self.train_button = self._button(
            "trainButton", "Train", "Train", TRAIN_TIP, pixmap.SP_MediaPlay
        )
        self.pause_button = self._button(
            "pauseButton",
            "Pause",
            "Pause training",
            "Pause after the current batch; Resume carries on",
            pixmap.SP_MediaPause,
        )
        self.stop_button = self._button(
            "stopButton",
            "Stop",
            "Stop training",
            "Stop after the current batch and keep what was learned",
            pixmap.SP_MediaStop,
        )
        self.step_button = self._button(
            "stepButton",
            "Step",
            "Step one optimizer step",
            "Run one optimizer step, then pause (starts a paused run when idle)",
            pixmap.SP_MediaSkipForward,
        )
        self.progress = QProgressBar(self)
        self.progress.setObjectName("runProgress")
        self.progress.setAccessibleName("Training progress")
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setTextVisible(True)
        self.progress.setMinimumWidth(200)
        self.state_label = QLabel(PAUSED_TEXT, self)
        self.state_label.setObjectName("runStateLabel")
        self.state_label.setAccessibleName("Run state")
        self.state_label.setToolTip(PAUSED_TIP)
        self.state_label.setStyleSheet(PAUSED_STYLE)
        self.state_label.hide()

        self.train_button.clicked.connect(self.train_requested)
        self.pause_button.clicked.connect(self._pause_or_resume)
        self.stop_button.clicked.connect(self.stop_requested)
        self.step_button.clicked.connect(self.step_requested)

        layout = QHBoxLayout(self)
        for button in (self.train_button, self.pause_button, self.stop_button, self.step_button):
            layout.addWidget(button)
        layout.addWidget(self.state_label)
        layout.addWidget(self.progress, stretch=1)
        self.reset()
        self.set_state("idle")

    def _button(
        self, name: str, text: str, accessible: str, tip: str, icon: QStyle.StandardPixmap
    ) -> QPushButton:
        button = QPushButton(self.style().standardIcon(icon), text, self)
        button.setObjectName(name)
        button.setAccessibleName(accessible)
        button.setToolTip(tip)
        return button

    # buttons ---------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    def set_state(self, state: str) -> None:
        """Enable what makes sense: Train when idle, Pause/Resume and Stop while a run exists
        (running or paused), Step when idle or paused."""
        if state not in RUN_STATES:
            raise ValueError(f"run state must be one of {', '.join(RUN_STATES)}, not {state!r}")
        self._track_pause(state)
        self._state = state
        self.state_label.setVisible(state == "paused")
        idle = state == "idle"
        self.train_button.setEnabled(idle and self._train_allowed)
        self.step_button.setEnabled(state == "paused" or (idle and self._train_allowed))
        self.stop_button.setEnabled(not idle)
        self.pause_button.setEnabled(not idle and self._pausable)
        if not self._pausable:
            self.step_button.setEnabled(False)
        paused = state == "paused"
        self.pause_button.setText("Resume" if paused else "Pause")
        self.pause_button.setAccessibleName("Resume training" if paused else "Pause training")
        self.pause_button.setIcon(
            self.style().standardIcon(
                QStyle.StandardPixmap.SP_MediaPlay
                if paused
                else QStyle.StandardPixmap.SP_MediaPause
            )
        )

    def _track_pause(self, state: str) -> None:
        now = self._clock()
        if state == "paused" and self._paused_since is None:
            self._paused_since = now
        elif state != "paused" and self._paused_since is not None:
            self._paused_total += now - self._paused_since
            self._paused_since = None

    def _running_seconds(self) -> float:
        """Seconds the run has trained: pauses (and single steps) left out."""
        paused = self._paused_total
        if self._paused_since is not None:
            paused += self._clock() - self._paused_since
        return max(0.0, self._clock() - self._started_at - paused)

    def set_pausable(self, pausable: bool, reason: str = "") -> None:
        """Runs in other processes (DDP) cannot pause or step: disable both, saying why."""
        self._pausable = pausable
        for button in (self.pause_button, self.step_button):
            original = self._usual_tips.setdefault(button.objectName(), button.toolTip())
            button.setToolTip(original if pausable else reason)
        self.set_state(self._state)

    def set_train_allowed(self, allowed: bool, reason: str = "") -> None:
        """Disable Train (and Step from idle) with `reason` as the tooltip, e.g. a broken layer stack."""
        self._train_allowed = allowed
        self._train_reason = "" if allowed else reason
        self.train_button.setToolTip(
            TRAIN_TIP if allowed else reason or "Training is not possible now"
        )
        self.set_state(self._state)

    def _pause_or_resume(self) -> None:
        if self._state == "paused":
            self.resume_requested.emit()
        else:
            self.pause_requested.emit()

    # progress ------------------------------------------------------------------
    def progress_text(self) -> str:
        return self._text

    def _show(self, fraction: float, text: str) -> None:
        self._text = text
        self.progress.setValue(round(min(max(fraction, 0.0), 1.0) * PROGRESS_STEPS))
        self.progress.setFormat(
            text
        )  # only %p, %v and %m are placeholders; our "%" never precedes them
        self.progress.setToolTip(text)

    def _epoch_span(self) -> tuple[int, int]:
        """(first epoch of this run, epochs this run trains)."""
        started = self._started
        if started is None:
            return 1, 0
        return started.start_epoch, max(1, started.epochs - started.start_epoch + 1)

    def _eta(self, fraction: float) -> str:
        if fraction <= 0:
            return "ETA –"
        elapsed = self._running_seconds()
        return f"ETA {clock_text(elapsed * (1 - fraction) / fraction)}"

    def reset(self, started: RunStarted | None = None) -> None:
        self._started = started
        self._started_at = self._clock()
        self._paused_total = 0.0
        self._paused_since = self._started_at if self._state == "paused" else None
        if started is None:
            self._show(0.0, "No run")
        else:
            self._show(0.0, f"Epoch {started.start_epoch}/{started.epochs} · starting…")

    def add_batches(self, reports: list[BatchReport]) -> None:
        if not reports:
            return
        last = reports[-1]
        first_epoch, epochs = self._epoch_span()
        batches = max(1, last.batches)
        if epochs:
            fraction = ((last.epoch - first_epoch) * batches + last.batch + 1) / (epochs * batches)
        else:
            fraction = (last.batch + 1) / batches
        total = f"/{self._started.epochs}" if self._started is not None else ""
        parts = [f"Epoch {last.epoch}{total}", f"batch {last.batch}/{last.batches}"]
        if self._state != "paused":  # a single step's speed and ETA say nothing
            parts.append(f"{last.samples_per_second:,.0f} samples/s")
            if epochs:
                parts.append(self._eta(fraction))
        self._show(fraction, " · ".join(parts))

    def add_epoch(self, report: EpochReport) -> None:
        first_epoch, epochs = self._epoch_span()
        span = epochs or max(1, report.epochs - first_epoch + 1)
        fraction = (report.epoch - first_epoch + 1) / span
        parts = [f"Epoch {report.epoch}/{report.epochs} done"]
        if report.val_accuracy is not None:
            parts.append(f"val acc {report.val_accuracy * 100:.2f}%")
        elif report.val_perplexity is not None:  # a text run: accuracy means nothing there
            parts.append(
                f"val loss {report.val_loss:.3f} · perplexity {report.val_perplexity:.2f} · "
                f"{report.val_bits_per_char:.2f} bits/char"
            )
        if self._state != "paused":
            parts.append(f"{report.samples_per_second:,.0f} samples/s")
            if report.epoch < report.epochs:
                parts.append(self._eta(fraction))
        self._show(fraction, " · ".join(parts))

    def show_finished(self, summary: dict[str, Any]) -> None:
        status = str(summary.get("status", "completed"))
        word = FINISHED_WORDS.get(status, status.replace("_", " ").capitalize())
        epochs = summary.get("epochs_completed", 0)
        wall = float(summary.get("wall_seconds", self._running_seconds()))
        fraction = self.progress.value() / PROGRESS_STEPS if status == "stopped" else 1.0
        self._show(fraction, f"{word}: {epochs} epoch(s) in {clock_text(wall)}")

    def show_failed(self, message: str) -> None:
        self._show(self.progress.value() / PROGRESS_STEPS, "Failed: see the log")
        self.progress.setToolTip(message)
