"""The run log: exactly the lines the CLI prints, bounded in size, following the end only on request."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from workbench.engine.console import batch_line, epoch_line, finished_lines, started_line
from workbench.engine.reports import BatchReport, EpochReport, RunStarted

MAX_LOG_LINES = 20_000  # a long run prints one line per batch; older lines are dropped


class LogView(QPlainTextEdit):
    """Read-only log fed by the controller's signals; text is identical to `workbench train`."""

    def __init__(self, parent: QWidget | None = None, max_lines: int = MAX_LOG_LINES) -> None:
        super().__init__(parent)
        self.setObjectName("logView")
        self.setAccessibleName("Training log")
        self.setReadOnly(True)
        self.setMaximumBlockCount(max_lines)
        self.setUndoRedoEnabled(False)  # the undo stack would otherwise keep every line
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setPlaceholderText("The training log appears here.")
        self._epochs = 0

    def text(self) -> str:
        return self.toPlainText()

    def add_lines(self, lines: Iterable[str]) -> None:
        """Append lines in one go; follow the end only if the user was already there.
        (Qt's own append follows only while the widget is visible, so a log in a hidden tab
        would open scrolled to the middle.)"""
        batch = list(lines)
        if not batch:
            return
        scroll = self.verticalScrollBar()
        at_end = scroll.value() >= scroll.maximum()
        kept = scroll.value()
        self.appendPlainText("\n".join(batch))
        scroll.setValue(scroll.maximum() if at_end else kept)

    def add_started(self, report: RunStarted) -> None:
        self._epochs = report.epochs
        self.add_lines([started_line(report)])

    def add_batches(self, reports: list[BatchReport]) -> None:
        self.add_lines([batch_line(report, self._epochs) for report in reports])

    def add_epoch(self, report: EpochReport) -> None:
        self._epochs = report.epochs
        self.add_lines([epoch_line(report)])

    def add_log(self, text: str) -> None:
        self.add_lines([text])

    def add_summary(self, summary: dict[str, Any]) -> None:
        self.add_lines(finished_lines(summary))

    def add_failure(self, message: str) -> None:
        self.add_lines([f"Training failed: {message}"])
