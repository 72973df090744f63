"""The add-layer picker: the catalogue by category, filtered as you type, Enter to add."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QModelIndex, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.layers import CATALOGUE, LayerType, categories

TYPE_ROLE = Qt.ItemDataRole.UserRole + 1  # the layer type name on leaf items


def matches(layer: LayerType, text: str) -> bool:
    """Every word of `text` appears in the layer's name, category or help (case-insensitive)."""
    haystack = f"{layer.name} {layer.category} {layer.help}".lower()
    return all(word in haystack for word in text.lower().split())


class LayerCatalogueDialog(QDialog):
    """Pick a layer type: the search box filters, arrows move, Enter or double-click chooses.

    `layer_chosen(type_name)` is emitted when the user accepts; `choose(name)` does the same
    from code (tests, scripts) without showing anything.
    """

    layer_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("layerCatalogue")
        self.setWindowTitle("Add layer")
        self.resize(560, 480)
        self.search = QLineEdit()
        self.search.setObjectName("layerSearch")
        self.search.setAccessibleName("layerSearch")
        self.search.setPlaceholderText("Search layers: name, category or purpose (e.g. conv, pool)")
        self.search.setClearButtonEnabled(True)
        self.search.setToolTip("Type to filter; Up/Down to move; Enter adds the selected layer")
        self.tree = QTreeWidget()
        self.tree.setObjectName("layerCatalogueTree")
        self.tree.setAccessibleName("layerCatalogueTree")
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Layer", "What it does"])
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.empty_label = QLabel("No layer matches; try another word.")
        self.empty_label.setObjectName("layerCatalogueEmpty")
        self.empty_label.hide()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Add")
        ok.setDefault(False)  # Enter in the search box is handled below, once
        ok.setAutoDefault(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.empty_label)
        layout.addWidget(self.buttons)
        self._fill()
        self.search.textChanged.connect(self.set_filter)
        self.search.installEventFilter(self)
        self.tree.itemActivated.connect(self._item_activated)
        self.tree.currentItemChanged.connect(self._update_ok)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.set_filter("")

    def _fill(self) -> None:
        for category, layers in categories().items():
            group = QTreeWidgetItem(self.tree, [category])
            group.setFlags(Qt.ItemFlag.ItemIsEnabled)
            font = group.font(0)
            font.setBold(True)
            group.setFont(0, font)
            for layer in layers:
                item = QTreeWidgetItem(group, [layer.name, layer.help])
                item.setData(0, TYPE_ROLE, layer.name)
                item.setToolTip(0, layer.help)
                item.setToolTip(1, layer.help)
        self.tree.expandAll()

    # searching -------------------------------------------------------------
    def set_filter(self, text: str) -> None:
        """Show only the layers matching `text` and select the first of them."""
        first: QTreeWidgetItem | None = None
        for group in self._groups():
            shown = 0
            for item in self._leaves(group):
                visible = matches(self._layer(item), text)
                item.setHidden(not visible)
                shown += visible
                if visible and first is None:
                    first = item
            group.setHidden(shown == 0)
        current = self.tree.currentItem()
        stale = current is None or current.isHidden() or current.data(0, TYPE_ROLE) is None
        if stale and first is not None:
            self.tree.setCurrentItem(first)
        elif first is None:
            self.tree.setCurrentIndex(QModelIndex())
        self.empty_label.setVisible(first is None)
        self._update_ok()

    def matching_types(self) -> list[str]:
        """The type names the filter shows, in catalogue order."""
        return [
            str(item.data(0, TYPE_ROLE))
            for group in self._groups()
            for item in self._leaves(group)
            if not item.isHidden()
        ]

    def selected_type(self) -> str | None:
        item = self.tree.currentItem()
        if item is None or item.isHidden():
            return None
        name = item.data(0, TYPE_ROLE)
        return None if name is None else str(name)

    def select_type(self, name: str) -> bool:
        for group in self._groups():
            for item in self._leaves(group):
                if item.data(0, TYPE_ROLE) == name and not item.isHidden():
                    self.tree.setCurrentItem(item)
                    return True
        return False

    # choosing --------------------------------------------------------------
    def start(self) -> None:
        """Show the picker fresh: empty search, first layer selected, typing goes to search."""
        self.search.clear()
        self.set_filter("")
        self.open()
        self.search.setFocus()

    def choose(self, name: str) -> None:
        """Choose `name` as if the user had picked it."""
        if self.select_type(name):
            self.accept()

    def accept(self) -> None:
        name = self.selected_type()
        if name is None:
            return  # a category row or nothing matches: keep the picker open
        super().accept()
        self.layer_chosen.emit(name)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.search and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.accept()
                return True
            if event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down):
                self._step(-1 if event.key() == Qt.Key.Key_Up else 1)
                return True
        return super().eventFilter(watched, event)

    def _step(self, offset: int) -> None:
        """Move the selection among the visible layers, skipping category rows."""
        visible = self.matching_types()
        if not visible:
            return
        current = self.selected_type()
        position = visible.index(current) + offset if current in visible else 0
        self.select_type(visible[max(0, min(position, len(visible) - 1))])

    def _item_activated(self, item: QTreeWidgetItem, column: int) -> None:
        self.accept()

    def _update_ok(self, *_: object) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(self.selected_type() is not None)

    # tree helpers ----------------------------------------------------------
    def _groups(self) -> list[QTreeWidgetItem]:
        root = self.tree.invisibleRootItem()
        children = (root.child(i) for i in range(root.childCount()))
        return [child for child in children if child is not None]

    @staticmethod
    def _leaves(group: QTreeWidgetItem) -> list[QTreeWidgetItem]:
        children = (group.child(i) for i in range(group.childCount()))
        return [child for child in children if child is not None]

    @staticmethod
    def _layer(item: QTreeWidgetItem) -> LayerType:
        return CATALOGUE[str(item.data(0, TYPE_ROLE))]
