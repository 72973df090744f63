"""How the checkpoint lines up with the current layer stack, and the renames that make it fit."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.checkpoints import Reconciliation
from workbench.engine.checkpoints.report import format_shape
from workbench.ui.widgets import named

PASS_STYLE = "color: #0d652d; font-weight: bold;"
FAIL_STYLE = "color: #b3261e; font-weight: bold;"


def verdict_text(result: Reconciliation, strict_error: str | None) -> str:
    """One sentence on whether load_state_dict(strict=True) passes, and what would fix it."""
    if result.fits and strict_error is None:
        return (
            f"✔ Strict load passes: all {len(result.matched):,} keys match the model "
            "(load_state_dict(strict=True) succeeded)."
        )
    if result.fits:
        return f"✘ Strict load fails: {strict_error}"
    problems = []
    if result.missing:
        problems.append(f"{len(result.missing):,} missing")
    if result.unexpected:
        problems.append(f"{len(result.unexpected):,} unexpected")
    if result.wrong_shape:
        problems.append(f"{len(result.wrong_shape):,} with the wrong shape")
    text = f"✘ Strict load fails: {', '.join(problems)} (of {len(result.matched):,} matched)."
    if result.fits_after_renames:
        count = len(result.suggested_renames)
        return text + f" The {count:,} suggested renames make it fit: apply them below."
    if result.suggested_renames:
        return text + " The suggested renames help but are not enough."
    return text + " No rename makes it fit: the model and the file differ in shape or content."


class ReconcileView(QWidget):
    """Results of `reconcile(state_dict, model)`; the editor does the work, this shows it."""

    reconcile_requested = Signal()
    apply_renames_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reconcileView")
        self.setAccessibleName("reconcileView")
        self.result: Reconciliation | None = None
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.reconcile_button = QPushButton("Compare with the current model")
        named(
            self.reconcile_button,
            "reconcileButton",
            "Line the checkpoint's keys up with the model the layer stack builds",
        )
        self.reconcile_button.clicked.connect(self.reconcile_requested)
        row.addWidget(self.reconcile_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.reason = QLabel()
        self.reason.setTextFormat(Qt.TextFormat.PlainText)
        self.reason.setObjectName("reconcileReason")
        self.reason.setWordWrap(True)
        layout.addWidget(self.reason)
        self.verdict = QLabel("Compare the checkpoint with the model to see whether it loads.")
        named(self.verdict, "reconcileVerdict", "Whether load_state_dict(strict=True) passes")
        self.verdict.setWordWrap(True)
        self.verdict.setTextFormat(Qt.TextFormat.PlainText)  # torch messages are not markup
        self.verdict.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.verdict)
        self.details = QTreeWidget()
        named(self.details, "reconcileDetails", "Matched, missing, unexpected and misshapen keys")
        self.details.setHeaderLabels(["Key", "Detail"])
        self.details.setColumnWidth(0, 260)
        layout.addWidget(self.details, 1)
        self.apply_button = QPushButton("Apply suggested renames")
        named(
            self.apply_button,
            "applyRenamesButton",
            "Rename the file's keys as suggested (one undoable edit)",
        )
        self.apply_button.setEnabled(False)
        self.apply_button.clicked.connect(self.apply_renames_requested)
        layout.addWidget(self.apply_button, 0, Qt.AlignmentFlag.AlignLeft)

    def set_available(self, available: bool, reason: str = "") -> None:
        """Enable the comparison, or disable it and say why (no file, no valid layer stack)."""
        self.reconcile_button.setEnabled(available)
        self.reason.setText(reason)
        self.reason.setVisible(bool(reason))

    def clear(
        self, text: str = "Compare the checkpoint with the model to see whether it loads."
    ) -> None:
        self.result = None
        self.verdict.setText(text)
        self.verdict.setStyleSheet("")
        self.details.clear()
        self.apply_button.setEnabled(False)

    def show_result(self, result: Reconciliation, strict_error: str | None = None) -> None:
        self.result = result
        passed = result.fits and strict_error is None
        self.verdict.setText(verdict_text(result, strict_error))
        self.verdict.setStyleSheet(PASS_STYLE if passed else FAIL_STYLE)
        self.details.clear()
        renames = result.suggested_renames
        self._group("Suggested renames", [(old, f"→ {new}") for old, new in renames.items()])
        self._group("Missing from the file", [(key, "the model has it") for key in result.missing])
        self._group(
            "Unexpected in the file", [(key, "the model lacks it") for key in result.unexpected]
        )
        self._group(
            "Wrong shape",
            [
                (m.key, f"file {format_shape(m.file_shape)} vs model {format_shape(m.model_shape)}")
                for m in result.wrong_shape
            ],
        )
        self._group("Matched", [(key, "") for key in result.matched], expanded=False)
        self.apply_button.setEnabled(bool(renames))

    def _group(self, title: str, rows: list[tuple[str, str]], expanded: bool = True) -> None:
        if not rows:
            return  # the verdict already says what is absent
        group = QTreeWidgetItem([f"{title} ({len(rows):,})", ""])
        font = group.font(0)
        font.setBold(True)
        group.setFont(0, font)
        self.details.addTopLevelItem(group)
        for key, detail in rows:
            group.addChild(QTreeWidgetItem([key, detail]))
        group.setExpanded(expanded)

    def group_keys(self, title: str) -> list[str]:
        """Keys listed under a group (by title prefix), for tests and copy-paste."""
        for index in range(self.details.topLevelItemCount()):
            group = self.details.topLevelItem(index)
            if group is not None and group.text(0).startswith(title):
                children = (group.child(i) for i in range(group.childCount()))
                return [child.text(0) for child in children if child is not None]
        return []
