"""The line above the tree: which file is open, whether it is edited, what file work runs."""

from __future__ import annotations

from html import escape
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from workbench.engine.checkpoints import Checkpoint
from workbench.engine.checkpoints.report import format_bytes
from workbench.ui.checkpoint_editor.file_info_view import highlights
from workbench.ui.checkpoint_editor.shown_text import shown
from workbench.ui.checkpoint_editor.shown_text import tooltip as as_tooltip
from workbench.ui.widgets import named


def summary_html(
    checkpoint: Checkpoint, path: Path, keys: int, parameters: int, nbytes: int
) -> str:
    """One line: name, keys, parameters, size, format, layout and training facts (escaped)."""
    parts = [
        f"{keys:,} keys",
        f"{parameters:,} parameters",
        format_bytes(nbytes),
        checkpoint.format_description.split(" (")[0],
        checkpoint.layout,
        *(
            short
            for label, _value, short in highlights(checkpoint.metadata)
            if label != "Hyper-parameters"  # too long for one line; the File tab has them
        ),
    ]
    return f"<b>{escape(shown(path.name))}</b> — " + escape(shown(" · ".join(parts)))


class EditorHeader(QWidget):
    """The summary of the open file, the "edited, not saved" mark and a busy row."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.summary = QLabel()
        self.summary.setObjectName("checkpointSummary")
        self.summary.setAccessibleName("checkpointSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row.addWidget(self.summary, 1)
        self.dirty_indicator = QLabel("● edited, not saved")
        named(self.dirty_indicator, "dirtyIndicator", "The edits are not saved yet: Save As…")
        self.dirty_indicator.setStyleSheet("color: #b06000; font-weight: bold;")
        row.addWidget(self.dirty_indicator)
        column.addLayout(row)
        column.addWidget(self._build_busy_row())

    def _build_busy_row(self) -> QWidget:
        self.busy_row = QWidget()
        self.busy_row.setObjectName("checkpointBusy")
        row = QHBoxLayout(self.busy_row)
        row.setContentsMargins(0, 0, 0, 0)
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)  # open_checkpoint reports no fraction: a busy indicator
        self.busy_bar.setMaximumWidth(160)
        self.busy_bar.setTextVisible(False)
        self.busy_label = QLabel()
        self.busy_label.setTextFormat(Qt.TextFormat.PlainText)
        self.busy_label.setObjectName("checkpointBusyText")
        row.addWidget(self.busy_bar)
        row.addWidget(self.busy_label, 1)
        self.busy_row.hide()
        return self.busy_row

    def show_summary(self, html: str, tooltip: str) -> None:
        self.summary.setText(html)
        self.summary.setToolTip(as_tooltip(tooltip) if tooltip else "")

    def set_dirty(self, dirty: bool) -> None:
        self.dirty_indicator.setVisible(dirty)

    def show_activity(self, text: str) -> None:
        """What file work runs now; "" hides the busy row."""
        if text:
            self.busy_label.setText(text)
        self.busy_row.setVisible(bool(text))
