"""Edit dialogs with a live preview: rename (text or regex), strip/add prefix, cast, trust a file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.checkpoints import (
    COMPILE_PREFIX,
    MODEL_PREFIX,
    MODULE_PREFIX,
    add_prefix,
    preview_regex_rename,
    preview_substring_rename,
    strip_prefix,
)
from workbench.engine.checkpoints.editing import keys_cast_by, parse_dtype
from workbench.engine.checkpoints.report import format_bytes
from workbench.engine.errors import CheckpointError
from workbench.ui.widgets import named

StateDict = Mapping[str, torch.Tensor]
PREVIEW_ROWS = 500  # rows shown in a preview table; the count above it is always exact
WRAPPER_LABELS = {
    MODULE_PREFIX: "DistributedDataParallel / DataParallel",
    COMPILE_PREFIX: "torch.compile",
    MODEL_PREFIX: "a wrapper keeping the network in self.model (Lightning)",
}
ERROR_STYLE = "color: palette(bright-text); background: #b3261e; padding: 4px; border-radius: 3px;"
CAST_CHOICES = ("float32", "float16", "bfloat16")


def fill_preview(table: QTableWidget, changes: list[tuple[str, str]]) -> None:
    """Old key -> new key rows, at most PREVIEW_ROWS of them."""
    shown = changes[:PREVIEW_ROWS]
    table.setRowCount(len(shown))
    for row, (old, new) in enumerate(shown):
        table.setItem(row, 0, QTableWidgetItem(old))
        table.setItem(row, 1, QTableWidgetItem(new))


def preview_table(name: str) -> QTableWidget:
    table = QTableWidget(0, 2)
    named(table, name, "Every key the edit changes: old name and new name")
    table.setHorizontalHeaderLabels(["Old key", "New key"])
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 8)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.setMinimumHeight(180)
    return table


def partial_match_note(state_dict: StateDict, text: str) -> str:
    """A hint when plain text also hits longer names (`conv1` inside `conv10`)."""
    if not text or not re.fullmatch(r"[\w.]*\w", text):
        return ""
    pattern = re.compile(rf"(?<![\w]){re.escape(text)}(?![\w])")
    partial = next((k for k in state_dict if text in k and not pattern.search(k)), None)
    if partial is None:
        return ""
    return (
        f"Note: {text!r} also matches inside {partial!r}. To rename only whole names, tick "
        f"'Regular expression' and write e.g. ^{re.escape(text)}\\."
    )


class RenameDialog(QDialog):
    """Find/replace over every key with a live old -> new table; collisions are refused."""

    def __init__(
        self,
        state_dict: StateDict,
        find: str = "",
        replace: str = "",
        regex: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("renameDialog")
        self.setAccessibleName("renameDialog")
        self.setWindowTitle("Rename keys")
        self.resize(720, 460)
        self.state_dict = state_dict
        self.changes: list[tuple[str, str]] = []
        self.error: str | None = None
        self._build()
        self.find_edit.setText(find)
        self.replace_edit.setText(replace)
        self.regex_check.setChecked(regex)
        self.update_preview()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.find_edit = QLineEdit()
        named(self.find_edit, "renameFind", "Text (or pattern) to find in every key")
        self.replace_edit = QLineEdit()
        named(self.replace_edit, "renameReplace", "What it becomes; \\1 refers to a regex group")
        self.regex_check = QCheckBox("Regular expression (Python re.sub; \\1 for groups)")
        named(self.regex_check, "renameRegex", "Treat the find text as a regular expression")
        form.addRow("&Find", self.find_edit)
        form.addRow("&Replace with", self.replace_edit)
        form.addRow("", self.regex_check)
        layout.addLayout(form)
        self.summary = QLabel()
        self.summary.setObjectName("renameSummary")
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.message = QLabel()
        self.message.setObjectName("renameMessage")
        self.message.setTextFormat(Qt.TextFormat.PlainText)  # keys are text, never markup
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message)
        self.preview = preview_table("renamePreview")
        layout.addWidget(self.preview, 1)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setObjectName("renameOk")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.find_edit.textChanged.connect(self.update_preview)
        self.replace_edit.textChanged.connect(self.update_preview)
        self.regex_check.toggled.connect(self.update_preview)

    @property
    def find_text(self) -> str:
        return self.find_edit.text()

    @property
    def replace_text(self) -> str:
        return self.replace_edit.text()

    @property
    def is_regex(self) -> bool:
        return self.regex_check.isChecked()

    def update_preview(self) -> None:
        self.changes, self.error = [], None
        find, replace = self.find_text, self.replace_text
        note = ""
        if not find:
            self.summary.setText("Type the text to find; every key containing it is renamed.")
        else:
            try:
                if self.is_regex:
                    self.changes = preview_regex_rename(self.state_dict, find, replace)
                else:
                    self.changes = preview_substring_rename(self.state_dict, find, replace)
                    note = partial_match_note(self.state_dict, find)
            except CheckpointError as exc:
                self.error = str(exc)
        self._show_result(note)

    def _show_result(self, note: str) -> None:
        fill_preview(self.preview, self.changes)
        if self.error:
            self.summary.setText("Nothing will be renamed:")
            self.message.setText(self.error)
            self.message.setStyleSheet(ERROR_STYLE)
        else:
            self.message.setText(note)
            self.message.setStyleSheet("")
            if self.changes:
                more = len(self.changes) - PREVIEW_ROWS
                tail = f" (the first {PREVIEW_ROWS} are listed)" if more > 0 else ""
                self.summary.setText(f"{len(self.changes):,} key(s) will be renamed{tail}.")
        self.message.setVisible(bool(self.message.text()))
        self.ok_button.setEnabled(bool(self.changes) and not self.error)
        self.ok_button.setText(f"Rename {len(self.changes):,} key(s)" if self.changes else "Rename")


class PrefixDialog(QDialog):
    """Strip a prefix from every key (one click for module., _orig_mod., model.) or add one."""

    def __init__(
        self,
        state_dict: StateDict,
        prefix: str = "",
        add: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("prefixDialog")
        self.setAccessibleName("prefixDialog")
        self.setWindowTitle("Strip or add a key prefix")
        self.resize(680, 440)
        self.state_dict = state_dict
        self.changes: list[tuple[str, str]] = []
        self.error: str | None = None
        self._build()
        (self.add_radio if add else self.strip_radio).setChecked(True)
        self.prefix_edit.setText(prefix)
        self.update_preview()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        modes = QHBoxLayout()
        self.strip_radio = QRadioButton("&Strip from the start of keys")
        named(self.strip_radio, "prefixStripMode", "Remove the prefix from every key that has it")
        self.add_radio = QRadioButton("&Add in front of every key")
        named(self.add_radio, "prefixAddMode", "Put the prefix in front of every key")
        group = QButtonGroup(self)
        group.addButton(self.strip_radio)
        group.addButton(self.add_radio)
        modes.addWidget(self.strip_radio)
        modes.addWidget(self.add_radio)
        modes.addStretch(1)
        layout.addLayout(modes)
        row = QHBoxLayout()
        self.prefix_edit = QLineEdit()
        named(self.prefix_edit, "prefixEdit", "The prefix, usually ending with a dot")
        row.addWidget(QLabel("&Prefix"))
        row.addWidget(self.prefix_edit, 1)
        self.quick_buttons: dict[str, QPushButton] = {}
        for prefix, origin in WRAPPER_LABELS.items():
            button = QPushButton(prefix)
            named(button, f"prefixQuick_{prefix.strip('._')}", f"{prefix!r}: added by {origin}")
            button.clicked.connect(lambda _=False, p=prefix: self.prefix_edit.setText(p))
            row.addWidget(button)
            self.quick_buttons[prefix] = button
        layout.addLayout(row)
        self.summary = QLabel()
        self.summary.setObjectName("prefixSummary")
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.preview = preview_table("prefixPreview")
        layout.addWidget(self.preview, 1)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setObjectName("prefixOk")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.prefix_edit.textChanged.connect(self.update_preview)
        self.strip_radio.toggled.connect(self.update_preview)

    @property
    def prefix(self) -> str:
        return self.prefix_edit.text()

    @property
    def adding(self) -> bool:
        return self.add_radio.isChecked()

    def update_preview(self) -> None:
        self.changes, self.error = [], None
        for prefix, button in self.quick_buttons.items():
            button.setEnabled(self.adding or any(k.startswith(prefix) for k in self.state_dict))
        if self.prefix:
            try:
                edited = (add_prefix if self.adding else strip_prefix)(self.state_dict, self.prefix)
            except CheckpointError as exc:
                self.error = str(exc)
            else:
                self.changes = [
                    (old, new)
                    for old, new in zip(self.state_dict, edited, strict=True)
                    if old != new
                ]
        fill_preview(self.preview, self.changes)
        if self.error:
            self.summary.setText(self.error)
            self.summary.setStyleSheet(ERROR_STYLE)
        else:
            self.summary.setStyleSheet("")
            verb = "get the prefix" if self.adding else "lose the prefix"
            self.summary.setText(
                f"{len(self.changes):,} of {len(self.state_dict):,} key(s) {verb}."
                if self.prefix
                else "Type a prefix or click one of the usual ones."
            )
        self.ok_button.setEnabled(bool(self.changes))


class CastDialog(QDialog):
    """Cast the floating-point tensors to another dtype; integer buffers stay as they are."""

    def __init__(
        self, state_dict: StateDict, dtype: str = "float16", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("castDialog")
        self.setAccessibleName("castDialog")
        self.setWindowTitle("Cast floating-point tensors")
        self.state_dict = state_dict
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.dtype_box = QComboBox()
        self.dtype_box.addItems(list(CAST_CHOICES))
        named(self.dtype_box, "castDtype", "The new dtype of every floating-point tensor")
        form.addRow("Cast &to", self.dtype_box)
        layout.addLayout(form)
        self.summary = QLabel()
        self.summary.setObjectName("castSummary")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setObjectName("castOk")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.dtype_box.currentTextChanged.connect(self.update_preview)
        self.dtype_box.setCurrentText(dtype)
        self.update_preview()

    @property
    def dtype(self) -> str:
        return self.dtype_box.currentText()

    def update_preview(self) -> None:
        target = parse_dtype(self.dtype)
        keys = keys_cast_by(self.state_dict, target)
        before = sum(self.state_dict[k].numel() * self.state_dict[k].element_size() for k in keys)
        after = sum(self.state_dict[k].numel() * target.itemsize for k in keys)
        if keys:
            self.summary.setText(
                f"{len(keys):,} floating-point tensor(s) change: {format_bytes(before)} -> "
                f"{format_bytes(after)}. Integer buffers (num_batches_tracked) stay as they are."
            )
        else:
            self.summary.setText(f"Every floating-point tensor is already {self.dtype}.")
        self.ok_button.setEnabled(bool(keys))


TRUST_BUTTON_TEXT = "Load anyway (runs code from this file in a separate process)"


def trust_dialog(
    path: Path, unsafe_globals: tuple[str, ...], parent: QWidget | None
) -> QMessageBox:
    """The one way to open an unsafe file: an explicit choice for this file, Cancel by default."""
    listed = "\n".join(f"  • {name}" for name in unsafe_globals)
    box = QMessageBox(parent)
    box.setObjectName("trustDialog")
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Load a file that runs code?")
    box.setTextFormat(Qt.TextFormat.PlainText)  # names from the file are text, not markup
    box.setText(f"Loading {path.name} runs Python code stored in the file.")
    box.setInformativeText(
        f"{path}\n\nIt names these Python objects, which plain weights never need:\n{listed}\n\n"
        "If you choose to load it, a separate Python process unpickles it and hands back only "
        "its tensors. That process is not a sandbox: the code runs with your permissions. "
        "Load it only if you made this file or trust whoever did."
    )
    box.addButton(TRUST_BUTTON_TEXT, QMessageBox.ButtonRole.AcceptRole).setObjectName(
        "trustLoadAnyway"
    )
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    cancel.setObjectName("trustCancel")
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    return box
