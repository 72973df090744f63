"""What the file held besides the weights: format, layout, epoch, optimizer, hyper-parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.checkpoints import Checkpoint
from workbench.engine.checkpoints.report import format_bytes
from workbench.ui.checkpoint_editor.shown_text import shown, tooltip

OPTIMIZER_KEYS = ("optimizer", "optimizer_state_dict", "optimizer_states", "optim", "opt")
HYPER_PARAMETER_KEYS = ("hyper_parameters", "hparams", "args", "config", "hyperparameters")
STEP_KEYS = ("global_step", "step", "iteration", "iter")


def _first(metadata: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str, Any] | None:
    return next(((key, metadata[key]) for key in keys if key in metadata), None)


def _short(value: Any, limit: int = 3) -> str:
    if isinstance(value, Mapping):
        items = [f"{k}={_short(v)}" for k, v in list(value.items())[:limit]]
        more = ", …" if len(value) > limit else ""
        return ", ".join(items) + more
    if isinstance(value, list):
        return f"[{len(value)} items]"
    return str(value)


def highlights(metadata: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """The facts about a training checkpoint a user looks for first: (label, value, short)."""
    found = []
    if "epoch" in metadata:
        found.append(("Epoch", str(metadata["epoch"]), f"epoch {metadata['epoch']}"))
    step = _first(metadata, STEP_KEYS)
    if step is not None:
        name = step[0].replace("_", " ")
        found.append((name.capitalize(), str(step[1]), f"{name} {step[1]}"))
    optimizer = _first(metadata, OPTIMIZER_KEYS)
    if optimizer is not None:
        found.append(("Optimizer", f"state present (under '{optimizer[0]}')", "optimizer state"))
    hyper = _first(metadata, HYPER_PARAMETER_KEYS)
    if hyper is not None and hyper[1]:
        found.append(("Hyper-parameters", _short(hyper[1], limit=8), "hyper-parameters"))
    return found


def add_metadata_items(parent: QTreeWidgetItem | QTreeWidget, value: Any) -> None:
    """Nested dicts and lists as an expandable tree of key / value rows."""
    entries = (
        list(value.items())
        if isinstance(value, Mapping)
        else [(f"[{index}]", item) for index, item in enumerate(value)]
    )
    for key, item in entries:
        nested = isinstance(item, Mapping | list) and bool(item)
        text = "" if nested else shown(item)
        row = QTreeWidgetItem([shown(key), text])
        row.setToolTip(1, tooltip(item) if text else "")
        if isinstance(parent, QTreeWidget):
            parent.addTopLevelItem(row)
        else:
            parent.addChild(row)
        if nested:
            add_metadata_items(row, item)


class FileInfoView(QWidget):
    """The opened file's format and layout, and its non-weight contents as a tree."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("checkpointFileInfo")
        self.setAccessibleName("checkpointFileInfo")
        layout = QVBoxLayout(self)
        self.facts_box = QGroupBox("File")
        self.facts = QFormLayout(self.facts_box)
        layout.addWidget(self.facts_box)
        self.metadata_box = QGroupBox("Also in the file (not weights)")
        box_layout = QVBoxLayout(self.metadata_box)
        self.metadata_tree = QTreeWidget()
        self.metadata_tree.setObjectName("checkpointMetadata")
        self.metadata_tree.setAccessibleName("checkpointMetadata")
        self.metadata_tree.setHeaderLabels(["Entry", "Value"])
        self.metadata_tree.setColumnWidth(0, 200)
        box_layout.addWidget(self.metadata_tree)
        self.no_metadata = QLabel("Nothing else: the file holds only the state_dict.")
        box_layout.addWidget(self.no_metadata)
        layout.addWidget(self.metadata_box, 1)

    def show_checkpoint(self, checkpoint: Checkpoint | None) -> None:
        while self.facts.rowCount():
            self.facts.removeRow(0)
        self.metadata_tree.clear()
        if checkpoint is None:
            self.no_metadata.setText("No file open.")
            self.no_metadata.show()
            self.metadata_tree.hide()
            return
        for label, value in self._facts(checkpoint):
            field = QLabel(value)
            field.setTextFormat(Qt.TextFormat.PlainText)  # file contents are text, not markup
            field.setWordWrap(True)
            self.facts.addRow(label, field)
        add_metadata_items(self.metadata_tree, checkpoint.metadata)
        self.metadata_tree.expandToDepth(0)
        has_metadata = bool(checkpoint.metadata)
        self.metadata_tree.setVisible(has_metadata)
        self.no_metadata.setText("Nothing else: the file holds only the state_dict.")
        self.no_metadata.setVisible(not has_metadata)

    @staticmethod
    def _facts(checkpoint: Checkpoint) -> list[tuple[str, str]]:
        try:
            size = format_bytes(checkpoint.path.stat().st_size)
        except OSError:
            size = "unknown"
        facts = [
            ("Path", str(checkpoint.path)),
            ("Size on disk", size),
            ("Format", checkpoint.format_description),
            ("Layout", checkpoint.layout),
        ]
        if checkpoint.location:
            facts.append(("Weights under", repr(checkpoint.location)))
        devices = sorted(set(checkpoint.saved_devices.values()) - {"cpu"})
        if devices:
            facts.append(("Saved on", ", ".join(devices) + " (opened on the CPU)"))
        if checkpoint.loaded_in_subprocess:
            facts.append(("Loaded", "in a separate process (trusted file; only tensors kept)"))
        facts.extend((label, value) for label, value, _short in highlights(checkpoint.metadata))
        return facts
