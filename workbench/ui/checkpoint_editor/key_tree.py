"""The filterable tree of modules and tensors, keeping what was open and selected across edits."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLineEdit,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from workbench.ui.checkpoint_editor.tree_model import (
    DTYPE,
    LAYER_TYPE,
    NAME,
    PARAMETERS,
    SHAPE,
    SIZE,
    CheckpointFilterModel,
    CheckpointTreeModel,
    TreeItem,
)
from workbench.ui.widgets import named

EXPAND_ALL_LIMIT = 64  # files with at most this many keys open fully expanded
EXPAND_FILTERED_LIMIT = 500  # filter matches up to this many keys are shown fully expanded
FILTER_DELAY_MS = 150
COLUMN_WIDTHS = ((LAYER_TYPE, 110), (SHAPE, 110), (DTYPE, 70), (PARAMETERS, 86), (SIZE, 70))


class KeyTree(QWidget):
    """A filter box over a tree of the state_dict; `current_item_changed` carries the TreeItem
    (None when nothing is current), for the side panel to describe."""

    current_item_changed = Signal(object)
    selection_changed = Signal()
    status_message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state: Mapping[str, torch.Tensor] = {}
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        self.filter_edit = QLineEdit()
        named(self.filter_edit, "checkpointFilter", "Show only keys containing this text")
        self.filter_edit.setPlaceholderText("Filter keys (e.g. conv, bias, layer1.0)")
        self.filter_edit.setClearButtonEnabled(True)
        # Filter once typing pauses: each pass re-filters and re-expands the whole tree.
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(FILTER_DELAY_MS)
        self._filter_timer.timeout.connect(self._apply_filter)
        self.filter_edit.textChanged.connect(self._on_filter_text_changed)
        column.addWidget(self.filter_edit)
        self.tree_model = CheckpointTreeModel(self)
        self.proxy = CheckpointFilterModel(self)
        self.proxy.setSourceModel(self.tree_model)
        self.tree = self._build_tree()
        column.addWidget(self.tree, 1)
        selection = self.tree.selectionModel()
        selection.currentChanged.connect(self._on_current_changed)
        selection.selectionChanged.connect(self._on_selection_changed)
        self.tree_model.modelReset.connect(self._on_model_reset)

    def _build_tree(self) -> QTreeView:
        tree = QTreeView()
        named(tree, "checkpointTree", "Modules and tensors of the state_dict")
        tree.setModel(self.proxy)
        tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        tree.setUniformRowHeights(True)
        tree.setAlternatingRowColors(True)
        tree.header().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        tree.setSortingEnabled(True)  # click a header to sort; file order until then
        header = tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        for column_index, width in COLUMN_WIDTHS:
            header.resizeSection(column_index, width)
        tree.setIndentation(16)
        return tree

    # what to show ------------------------------------------------------------
    def reset(self, state: Mapping[str, torch.Tensor], devices: Mapping[str, str]) -> None:
        """A new file: no filter, the default expansion, nothing selected."""
        self.filter_edit.clear()
        self._filter_timer.stop()
        self.proxy.setFilterFixedString("")
        self._state = state
        self.tree_model.set_state_dict(state, devices)
        self._default_expansion()

    def update_state(self, state: Mapping[str, torch.Tensor], devices: Mapping[str, str]) -> None:
        """An edit: small files stay fully open; big ones keep what was expanded and current."""
        expanded = self._expanded_paths()
        current = self.current_path()
        self._state = state
        self.tree_model.set_state_dict(state, devices)
        self._default_expansion()
        for path in expanded:
            index = self.proxy.mapFromSource(self.tree_model.index_for_path(path))
            if index.isValid():
                self.tree.setExpanded(index, True)
        if current is not None:
            self.select_path(current)

    # selection ---------------------------------------------------------------
    def current_path(self) -> str | None:
        index = self.tree.currentIndex()
        if not index.isValid():
            return None
        return self.tree_model.item(self.proxy.mapToSource(index)).path

    def selected_paths(self) -> list[str]:
        """Keys and module paths of the selected rows (a module stands for all below it)."""
        rows = self.tree.selectionModel().selectedRows(NAME)
        paths = [self.tree_model.item(self.proxy.mapToSource(index)).path for index in rows]
        return [p for p in paths if not any(p.startswith(other + ".") for other in paths)]

    def has_selection(self) -> bool:
        return self.tree.selectionModel().hasSelection()

    def select_path(self, path: str) -> bool:
        """Make a key or module the current row (the side panel shows it)."""
        index = self.proxy.mapFromSource(self.tree_model.index_for_path(path))
        if not index.isValid():
            return False
        self.tree.scrollTo(index)
        self.tree.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        return True

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        item: TreeItem | None = None
        if current.isValid():
            item = self.tree_model.item(self.proxy.mapToSource(current))
        self.current_item_changed.emit(item)

    def _on_selection_changed(self, *_args: object) -> None:
        self.selection_changed.emit()

    def _on_model_reset(self) -> None:
        self.current_item_changed.emit(None)

    # expansion and filter ----------------------------------------------------
    def _expanded_paths(self) -> set[str]:
        expanded = set()
        stack = [QModelIndex()]
        while stack:
            parent = stack.pop()
            for row in range(self.proxy.rowCount(parent)):
                index = self.proxy.index(row, NAME, parent)
                if self.tree.isExpanded(index):
                    expanded.add(self.tree_model.item(self.proxy.mapToSource(index)).path)
                    stack.append(index)
        return expanded

    def _default_expansion(self) -> None:
        if len(self._state) <= EXPAND_ALL_LIMIT:
            self.tree.expandAll()
        else:
            self.tree.expandToDepth(0)

    def _on_filter_text_changed(self, _text: str) -> None:
        self._filter_timer.start()

    def _apply_filter(self) -> None:
        text = self.filter_edit.text().strip()
        self.proxy.setFilterFixedString(text)
        if not text:
            self._default_expansion()
            return
        # A key is shown when it or a module above it contains the text, and a module path is
        # a prefix of its keys: counting the keys that contain it is exact.
        matching = sum(1 for key in self._state if text.lower() in key.lower())
        if matching <= EXPAND_FILTERED_LIMIT:
            self.tree.expandAll()
        else:
            self.tree.expandToDepth(1)
        self.status_message.emit(f"{matching:,} of {len(self._state):,} keys match '{text}'")
