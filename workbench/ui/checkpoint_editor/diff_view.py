"""Differences between the open checkpoint and a second file, one row per differing key."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.checkpoints import CheckpointDiff
from workbench.engine.checkpoints.report import format_number, format_shape
from workbench.ui.checkpoint_editor.shown_text import shown
from workbench.ui.widgets import named

COLUMNS = ("Key", "Difference", "This file", "Other file", "Max |Δ|", "‖Δ‖ / ‖this‖")


def diff_rows(diff: CheckpointDiff) -> list[tuple[str, ...]]:
    """Every key that differs, in a fixed order: missing keys first, then shapes, then values."""
    rows: list[tuple[str, ...]] = []
    rows += [(key, "only in this file", "present", "—", "", "") for key in diff.only_in_a]
    rows += [(key, "only in the other file", "—", "present", "", "") for key in diff.only_in_b]
    rows += [
        (key, "shape", format_shape(a), format_shape(b), "", "") for key, a, b in diff.shape_changed
    ]
    for change in diff.changed:
        kind = "dtype and values" if change.dtype_a != change.dtype_b else "values"
        rows.append(
            (
                change.key,
                kind,
                change.dtype_a,
                change.dtype_b,
                format_number(change.max_abs_diff),
                "inf" if math.isinf(change.relative_norm) else f"{change.relative_norm:.3g}",
            )
        )
    return rows


def diff_summary(other_name: str, diff: CheckpointDiff) -> str:
    identical = sum(1 for change in diff.changes if change.identical)
    if diff.identical:
        return f"Same keys, shapes and bits as {other_name} ({identical:,} tensors identical)."
    parts = [
        f"{len(diff.only_in_a):,} only here",
        f"{len(diff.only_in_b):,} only in {other_name}",
        f"{len(diff.shape_changed):,} shape changes",
        f"{len(diff.changed):,} with different values",
        f"{identical:,} identical",
    ]
    return "Compared with " + other_name + ": " + ", ".join(parts) + "."


class DiffView(QWidget):
    """A table of differences; the editor opens the second file and computes the diff."""

    compare_requested = Signal()
    trust_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("diffView")
        self.setAccessibleName("diffView")
        self.diff: CheckpointDiff | None = None
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.compare_button = QPushButton("Compare with another file…")
        named(self.compare_button, "compareButton", "Diff this checkpoint against a second file")
        self.compare_button.clicked.connect(self.compare_requested)
        row.addWidget(self.compare_button)
        self.trust_button = QPushButton("Load it anyway…")
        named(self.trust_button, "diffTrustButton", "Open the refused file in a separate process")
        self.trust_button.clicked.connect(self.trust_requested)
        self.trust_button.hide()
        row.addWidget(self.trust_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.summary = QLabel("Compare with another checkpoint to see what changed.")
        named(self.summary, "diffSummary", "What differs between the two files")
        self.summary.setTextFormat(Qt.TextFormat.PlainText)  # file names are text, not markup
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.summary)
        self.table = QTableWidget(0, len(COLUMNS))
        named(self.table, "diffTable", "One row per key that differs")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        layout.addWidget(self.table, 1)

    def set_available(self, available: bool) -> None:
        self.compare_button.setEnabled(available)

    def show_busy(self, text: str) -> None:
        self.trust_button.hide()
        self.summary.setStyleSheet("")
        self.summary.setText(text)

    def show_error(self, message: str, can_trust: bool = False) -> None:
        self.summary.setText(message)
        self.summary.setStyleSheet("color: #b3261e;")
        self.trust_button.setVisible(can_trust)

    def show_diff(self, other_name: str, diff: CheckpointDiff) -> None:
        self.diff = diff
        self.trust_button.hide()
        self.summary.setStyleSheet("")
        self.summary.setText(diff_summary(other_name, diff))
        rows = diff_rows(diff)
        self.table.setRowCount(len(rows))
        for row, cells in enumerate(rows):
            for column, text in enumerate(cells):
                item = QTableWidgetItem(shown(text))
                if column >= 4:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
