"""The state_dict as a tree of modules and tensors, with sizes, for a QTreeView and its filter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QFont, QGuiApplication, QPalette

from workbench.engine.checkpoints import ModuleNode, TensorInfo, build_module_tree
from workbench.engine.checkpoints.report import format_bytes, format_shape
from workbench.ui.checkpoint_editor.shown_text import shown, tooltip

NAME, LAYER_TYPE, SHAPE, DTYPE, PARAMETERS, SIZE = range(6)
HEADERS = ("Name", "Type (guess)", "Shape", "Dtype", "Parameters", "Size")
HEADER_TIPS = (
    "Module or tensor name; the full key is in the tooltip",
    "The torch layer these tensors look like (a guess from names and shapes)",
    "Tensor shape",
    "Element type; 'mixed' when a module's floating-point tensors differ",
    "Elements, not counting BatchNorm buffers (running_mean, running_var, num_batches_tracked)",
    "Bytes in memory",
)
KEY_ROLE = Qt.ItemDataRole.UserRole + 1  # full key (tensor) or dotted module path
IS_TENSOR_ROLE = Qt.ItemDataRole.UserRole + 2
SORT_ROLE = Qt.ItemDataRole.UserRole + 3  # numbers for numeric columns
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
AnyIndex = QModelIndex | QPersistentModelIndex


class TreeItem:
    """One row: a module (node set) or a tensor (info set), with its totals computed once."""

    __slots__ = (
        "children",
        "dtype",
        "info",
        "name",
        "nbytes",
        "node",
        "parameters",
        "parent",
        "path",
        "row",
    )

    def __init__(
        self,
        parent: TreeItem | None,
        name: str,
        path: str,
        node: ModuleNode | None = None,
        info: TensorInfo | None = None,
    ) -> None:
        self.parent = parent
        self.name = name
        self.path = path
        self.node = node
        self.info = info
        self.children: list[TreeItem] = []
        self.row = 0
        self.parameters = 0
        self.nbytes = 0
        self.dtype = ""

    @property
    def is_tensor(self) -> bool:
        return self.info is not None


def build_items(root_node: ModuleNode, order: Mapping[str, int]) -> TreeItem:
    """TreeItems mirroring the module tree; siblings in file order (by their first key)."""
    root = TreeItem(None, "", "", node=root_node)
    _fill(root, root_node, order)
    return root


def _fill(item: TreeItem, node: ModuleNode, order: Mapping[str, int]) -> int:
    """Add children of `item`; return the file position of its first key."""
    placed: list[tuple[int, TreeItem]] = []
    for info in node.tensors:
        leaf = TreeItem(item, info.key.rsplit(".", 1)[-1], info.key, info=info)
        leaf.parameters = 0 if info.is_buffer else info.numel
        leaf.nbytes = info.nbytes
        leaf.dtype = info.dtype
        placed.append((order.get(info.key, 0), leaf))
    for child_node in node.children:
        child = TreeItem(item, child_node.name, child_node.path, node=child_node)
        placed.append((_fill(child, child_node, order), child))
    placed.sort(key=lambda pair: pair[0])
    item.children = [child for _, child in placed]
    for row, child in enumerate(item.children):
        child.row = row
        item.parameters += child.parameters
        item.nbytes += child.nbytes
    item.dtype = module_dtype([child.dtype for child in item.children])
    return placed[0][0] if placed else 0


def module_dtype(dtypes: list[str]) -> str:
    """The one floating dtype of a module; integer buffers (num_batches_tracked) do not count."""
    distinct = set(dtypes) - {""}
    floating = {d for d in distinct if d == "mixed" or _is_floating(d)}
    chosen = floating or distinct
    if len(chosen) == 1:
        return chosen.pop()
    return "mixed" if chosen else ""


def _is_floating(dtype: str) -> bool:
    value = getattr(torch, dtype, None)
    return isinstance(value, torch.dtype) and value.is_floating_point


class CheckpointTreeModel(QAbstractItemModel):
    """Read-only tree over a state_dict: modules (with a guessed layer type) and their tensors.

    Edits never happen in place: the editor hands over each new state_dict and the model
    rebuilds (a reset), which keeps undo simple and is linear in the number of keys.
    """

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.module_tree = ModuleNode(name="", path="")
        self._root = TreeItem(None, "", "", node=self.module_tree)
        self._by_path: dict[str, TreeItem] = {}
        self._muted = QGuiApplication.palette().color(QPalette.ColorRole.PlaceholderText)
        self._module_font = QFont()
        self._module_font.setBold(True)

    def set_state_dict(
        self,
        state_dict: Mapping[str, torch.Tensor],
        saved_devices: Mapping[str, str] | None = None,
    ) -> None:
        self.beginResetModel()
        self.module_tree = build_module_tree(state_dict, saved_devices)
        order = {key: position for position, key in enumerate(state_dict)}
        self._root = build_items(self.module_tree, order)
        self._by_path = {}
        stack = list(self._root.children)
        while stack:
            item = stack.pop()
            self._by_path[item.path] = item
            stack.extend(item.children)
        self.endResetModel()

    def clear(self) -> None:
        self.set_state_dict({})

    # lookups -----------------------------------------------------------------
    def index_for_path(self, path: str) -> QModelIndex:
        """The index of a tensor key or module path (invalid when there is none)."""
        item = self._by_path.get(path)
        if item is None:
            return QModelIndex()
        return self.createIndex(item.row, NAME, item)

    def item(self, index: AnyIndex) -> TreeItem:
        if index.isValid():
            item: TreeItem = index.internalPointer()
            return item
        return self._root

    @property
    def total_parameters(self) -> int:
        return self._root.parameters

    @property
    def total_bytes(self) -> int:
        return self._root.nbytes

    # QAbstractItemModel ------------------------------------------------------
    def index(self, row: int, column: int, parent: AnyIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        # Checked by hand, not with hasIndex(): views call this for every row, and the round
        # trip through C++ back into rowCount() doubles the cost of expanding a big tree.
        if parent.isValid() and parent.column() != NAME:
            return QModelIndex()
        children = self.item(parent).children
        if 0 <= row < len(children) and 0 <= column < len(HEADERS):
            return self.createIndex(row, column, children[row])
        return QModelIndex()

    def parent(self, index: AnyIndex = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # noqa: B008
        if not index.isValid():
            return QModelIndex()
        parent = self.item(index).parent
        if parent is None or parent is self._root:
            return QModelIndex()
        return self.createIndex(parent.row, NAME, parent)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid() and parent.column() != NAME:
            return 0
        return len(self.item(parent).children)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return len(HEADERS)

    def hasChildren(self, parent: AnyIndex = QModelIndex()) -> bool:  # noqa: B008
        return self.rowCount(parent) > 0

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if self.item(index).is_tensor:
            flags |= Qt.ItemFlag.ItemNeverHasChildren
        return flags

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(HEADERS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole and section in (PARAMETERS, SIZE):
            return int(_RIGHT)
        return None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        item = self.item(index)
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(item, column)
        if role == KEY_ROLE:
            return item.path
        if role == IS_TENSOR_ROLE:
            return item.is_tensor
        if role == SORT_ROLE:
            return self._sort_value(item, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(item)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (PARAMETERS, SIZE):
            return int(_RIGHT)
        if role == Qt.ItemDataRole.ForegroundRole and self._is_buffer(item):
            return self._muted
        if role == Qt.ItemDataRole.FontRole and column == NAME and not item.is_tensor:
            return self._module_font
        return None

    # cells -------------------------------------------------------------------
    @staticmethod
    def _is_buffer(item: TreeItem) -> bool:
        return item.info is not None and item.info.is_buffer

    def _text(self, item: TreeItem, column: int) -> str:
        info = item.info
        if column == NAME:
            return shown(item.name)
        if column == LAYER_TYPE:
            if info is not None:
                return "buffer" if info.is_buffer else ""
            return (item.node.layer_type if item.node else None) or ""
        if column == SHAPE:
            return format_shape(info.shape) if info is not None else ""
        if column == DTYPE:
            return item.dtype
        if column == PARAMETERS:
            count = info.numel if info is not None else item.parameters
            return f"{count:,}"
        if column == SIZE:
            return format_bytes(item.nbytes)
        return ""

    def _sort_value(self, item: TreeItem, column: int) -> Any:
        if column == PARAMETERS:
            return item.info.numel if item.info is not None else item.parameters
        if column == SIZE:
            return item.nbytes
        return self._text(item, column).lower()

    @staticmethod
    def _tooltip(item: TreeItem) -> str:
        info = item.info
        if info is None:
            count = sum(1 for _ in item.node.all_tensors()) if item.node else 0
            return tooltip(f"{item.path}\n{count} tensor(s), {item.parameters:,} parameters")
        saved = f"\nsaved on {info.saved_device}" if info.saved_device != "cpu" else ""
        kind = "buffer (not a parameter)" if info.is_buffer else "parameter"
        return tooltip(f"{info.key}\n{kind}, {info.numel:,} elements{saved}")


class CheckpointFilterModel(QSortFilterProxyModel):
    """Case-insensitive filter on the full key: a match shows its ancestors and descendants."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setRecursiveFilteringEnabled(True)
        self.setAutoAcceptChildRows(True)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterRole(KEY_ROLE)
        self.setFilterKeyColumn(NAME)
        self.setSortRole(SORT_ROLE)
