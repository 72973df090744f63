"""The module tree of a model from code, as a read-only Qt item model: name, type, output shape
and parameters per module, nested as `print(model)` nests them."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel

from workbench.engine.layer_rules import show
from workbench.engine.module_summary import ModuleRow, child_rows

HEADERS = ("Module", "Type", "Output shape", "Parameters")
PATH_ROLE = Qt.ItemDataRole.UserRole + 1  # the module's qualified name (`layer1.0.conv1`)


class ModuleTreeModel(QStandardItemModel):
    """Rows from the engine's per-module summary (forward hooks); nothing here is editable."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(0, len(HEADERS), parent)
        self.setHorizontalHeaderLabels(list(HEADERS))

    def set_rows(self, rows: Sequence[ModuleRow]) -> None:
        self.removeRows(0, self.rowCount())
        self._add_children(self.invisibleRootItem(), rows, "")

    def _add_children(self, parent: QStandardItem, rows: Sequence[ModuleRow], path: str) -> None:
        for row in child_rows(rows, path):
            cells = _cells(row)
            parent.appendRow(cells)
            self._add_children(cells[0], rows, row.path)

    def paths(self) -> list[str]:
        """Every module's qualified name, depth first (what the tree shows, in order)."""
        found: list[str] = []

        def walk(item: QStandardItem) -> None:
            for number in range(item.rowCount()):
                child = item.child(number, 0)
                found.append(str(child.data(PATH_ROLE)))
                walk(child)

        walk(self.invisibleRootItem())
        return found


def _cells(row: ModuleRow) -> list[QStandardItem]:
    kind = row.type if row.calls <= 1 else f"{row.type} ×{row.calls}"
    shape = show(row.output_shape) if row.output_shape is not None else "—"
    texts = (row.name, kind, shape, f"{row.parameters:,}")
    cells = [QStandardItem(text) for text in texts]
    for cell in cells:
        cell.setEditable(False)
    cells[0].setData(row.path, PATH_ROLE)
    cells[0].setToolTip(row.path)
    if row.output_shape is None:
        cells[2].setToolTip("forward never called this module, or it gave no tensor")
    cells[3].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if row.trainable != row.parameters:
        cells[3].setToolTip(f"{row.trainable:,} trainable")
    return cells
