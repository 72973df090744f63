"""The layer stack as a Qt table model: one row per layer, re-planned on every edit, undoable."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from PySide6.QtCore import (
    QAbstractTableModel,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QIcon
from PySide6.QtWidgets import QApplication, QStyle

from workbench.engine.datasets import DatasetInfo
from workbench.engine.errors import ModelBuildError
from workbench.engine.experiment import LayerSpec, ModelSpec
from workbench.engine.experiment_model import model_input_dtype, model_input_shape
from workbench.engine.layer_rules import UNKNOWN as UNKNOWN
from workbench.engine.layer_rules import show_value as show_value
from workbench.engine.layers import CATALOGUE
from workbench.engine.layers import layer_label as layer_label
from workbench.engine.model_builder import LayerRow, ModelPlan, plan_model
from workbench.engine.model_edits import (
    ModelEditError,
    connected,
    current_inputs,
    parse_inputs,
    renamed,
    with_input_shape,
    with_inputs,
)
from workbench.ui.project_document import ProjectDocument

AnyIndex = QModelIndex | QPersistentModelIndex
Shape = tuple[int, ...]

PROBLEM_COLOUR = QColor("#b71c1c")
PROBLEM_BACKGROUND = QColor("#fdecea")
UNKNOWN_COLOUR = QColor("#8a8a8a")

Item = TypeVar("Item")


def new_layer(type_name: str) -> LayerSpec:
    """A fresh layer as the add flow creates it: required sizes get the catalogue's suggestion,
    everything else stays unset so it shows (and saves) as torch's default or an inferred size."""
    kind = CATALOGUE[type_name]
    return LayerSpec(type_name, {p.name: p.initial for p in kind.params if p.required})


def show_shape(shape: Sequence[int] | None) -> str:
    return UNKNOWN if shape is None else "[" + ", ".join(str(size) for size in shape) + "]"


# --------------------------------------------------------------------------- edits


def moved(items: Sequence[Item], rows: Iterable[int], destination: int) -> list[Item]:
    """The list with `rows` taken out and put back, in order, before old row `destination`."""
    picked = sorted(set(rows))
    kept = [item for row, item in enumerate(items) if row not in picked]
    target = destination - sum(1 for row in picked if row < destination)
    return kept[:target] + [items[row] for row in picked] + kept[target:]


def _counted(count: int, type_name: str) -> str:
    return type_name if count == 1 else f"{count} layers"


@dataclass(frozen=True)
class _Entry:
    """What one row shows: the layer, its planned row (None past a problem) and its problem."""

    layer: LayerSpec
    planned: LayerRow | None
    problem: str | None


def _entries(layers: Sequence[LayerSpec], plan: ModelPlan) -> list[_Entry]:
    def problem(row: int) -> str | None:
        found = plan.problem_at(row)
        return None if found is None else str(found)

    return [_Entry(layer, plan.row_at(row), problem(row)) for row, layer in enumerate(layers)]


class LayerStackModel(QAbstractTableModel):
    """Rows are the document's layers; columns show the layer, its output shape, parameters,
    its name and (set for merge layers) its inputs; name and inputs are edited in place.

    Every edit method pushes one undoable `document.set_layers` call; the model itself only
    follows `document.layers_changed`, so undo, redo and other views stay in step for free.
    """

    LAYER_COLUMN, SHAPE_COLUMN, PARAMETERS_COLUMN, NAME_COLUMN, INPUTS_COLUMN = range(5)
    HEADERS = ("Layer", "Output shape", "Parameters", "Name", "Inputs")
    ProblemRole = Qt.ItemDataRole.UserRole + 1  # str | None: the builder's message for the row
    LayerSpecRole = Qt.ItemDataRole.UserRole + 2  # LayerSpec: what the user set
    LayerRowRole = Qt.ItemDataRole.UserRole + 3  # LayerRow | None: the plan, None after a problem
    MIME_TYPE = "application/x-workbench-layer-rows"

    plan_changed = Signal(object)  # ModelPlan
    edit_refused = Signal(str)  # an edit that cannot be made: the message naming the fix

    def __init__(
        self,
        document: ProjectDocument,
        input_shape: Sequence[int] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.document = document
        self._input_shape: Shape | None = tuple(input_shape) if input_shape else None
        self._data: DatasetInfo | None = None  # the dataset's description, once known
        self._plan = self._make_plan()
        # Rows are cached entries so that, while Qt announces an insert, remove or move, the
        # untouched rows keep showing what they showed before; the re-plan follows as dataChanged.
        self._rows = _entries(document.experiment.model.layers, self._plan)
        self._file_input_shape = document.experiment.model.input_shape
        document.layers_changed.connect(self._follow_document)
        document.changed.connect(self._follow_file_input_shape)

    # facts -----------------------------------------------------------------
    @property
    def layers(self) -> tuple[LayerSpec, ...]:
        return tuple(entry.layer for entry in self._rows)

    @property
    def plan(self) -> ModelPlan:
        return self._plan

    @property
    def input_shape(self) -> Shape | None:
        """The experiment's own model.input_shape wins (as in training); else the dataset's."""
        explicit = self.document.experiment.model.input_shape
        return tuple(explicit) if explicit is not None else self._input_shape

    @property
    def total_parameters(self) -> int:
        """Parameters of the layers that could be planned (all of them when the stack is ok)."""
        return sum(row.parameters for row in self._plan.rows)

    def problem(self) -> ModelBuildError | None:
        """The first reason the stack cannot be built, or None."""
        return self._plan.problem

    def layer(self, row: int) -> LayerSpec:
        return self._rows[row].layer

    def layer_row(self, row: int) -> LayerRow | None:
        """The builder's row for layer `row`, or None when a problem before it stops the plan."""
        return self._rows[row].planned if 0 <= row < len(self._rows) else None

    def row_problem(self, row: int) -> str | None:
        """The builder's message for layer `row`, or None when it has no problem."""
        return self._rows[row].problem if 0 <= row < len(self._rows) else None

    @property
    def data_shape(self) -> Shape | None:
        """The shape one sample of the dataset has (None until the data is described)."""
        return self._input_shape

    def set_input_shape(self, shape: Sequence[int] | None) -> None:
        """Plan for this per-sample shape (the dataset's); None falls back to model.input_shape."""
        new = tuple(shape) if shape else None
        if new != self._input_shape:
            self._input_shape = new
            if self._data is not None and self._data.input_shape != new:
                self._data = None  # a shape from elsewhere: the old vocabulary no longer holds
            self._replan()

    def set_data_info(self, info: DatasetInfo | None) -> None:
        """Plan for this dataset: its sample shape, its dtype and its vocabulary (token ids);
        None: the data is not described (yet), so plan with the experiment's model.input_shape."""
        shape = tuple(info.input_shape) if info is not None else None
        if (info, shape) == (self._data, self._input_shape):
            return
        self._data, self._input_shape = info, shape
        self._replan()

    @property
    def data_options(self) -> tuple[int | None, str | None]:
        """(vocab_size, input_dtype) of the data for `plan_model` / `build_model`: token ids
        and their vocabulary for text data, else (None, None) (the model's own dtype)."""
        data = self._data
        if data is None:
            return None, None
        return data.vocab_size, "long" if data.input_dtype == "long" else None

    def input_problem(self) -> str | None:
        """Why the model's input layer and the data disagree (shape or dtype), or None."""
        spec, data = self.document.experiment.model, self._data
        name = data.name if data is not None else self.document.experiment.data.name
        try:
            if spec.input_shape is not None and self._input_shape is not None:
                model_input_shape(spec, self._input_shape, name)
            if data is not None:
                model_input_dtype(spec, data)
        except ModelBuildError as problem:
            return str(problem)
        return None

    # Qt model ----------------------------------------------------------------
    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section] if 0 <= section < len(self.HEADERS) else None
        # Numbered from 0 like the builder's messages ("layer 7 (Linear) receives ...").
        return str(section) if 0 <= section < len(self._rows) else None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not self.checkIndex(index, QAbstractTableModel.CheckIndexOption.IndexIsValid):
            return None
        row, column = index.row(), index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, column)
        if role == Qt.ItemDataRole.EditRole and column == self.INPUTS_COLUMN:
            return ", ".join(current_inputs(self.layers, row))  # start from what it takes now
        if role == Qt.ItemDataRole.EditRole and column == self.NAME_COLUMN:
            return self._display(row, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.row_problem(row) or self._description(row)
        if role == self.ProblemRole:
            return self.row_problem(row)
        if role == self.LayerSpecRole:
            return self._rows[row].layer
        if role == self.LayerRowRole:
            return self.layer_row(row)
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._foreground(row)
        if role == Qt.ItemDataRole.BackgroundRole and self.row_problem(row):
            return PROBLEM_BACKGROUND
        if role == Qt.ItemDataRole.DecorationRole and column == self.LAYER_COLUMN:
            return _warning_icon() if self.row_problem(row) else None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _alignment(column)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return self._accessible_text(row)
        return None

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled  # drops land between rows, never on one
        flags = (
            Qt.ItemFlag.ItemIsSelectable
            | Qt.ItemFlag.ItemIsEnabled
            | Qt.ItemFlag.ItemIsDragEnabled
            | Qt.ItemFlag.ItemNeverHasChildren
        )
        if index.column() in (self.NAME_COLUMN, self.INPUTS_COLUMN):
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def setData(self, index: AnyIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        """Typing a name or inputs into the table: one undo step, or `edit_refused(message)`."""
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        if index.column() == self.NAME_COLUMN:
            return self.rename_layer(index.row(), str(value or "").strip())
        if index.column() == self.INPUTS_COLUMN:
            return self.set_inputs(index.row(), str(value or ""))
        return False

    # drag and drop: a move inside the view becomes one undoable set_layers ---------------
    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:
        return [self.MIME_TYPE]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        rows = sorted({index.row() for index in indexes if index.isValid()})
        mime = QMimeData()
        mime.setData(self.MIME_TYPE, json.dumps(rows).encode())
        return mime

    def canDropMimeData(
        self,
        data: QMimeData,
        action: Qt.DropAction,
        row: int,
        column: int,
        parent: AnyIndex,
    ) -> bool:
        return action == Qt.DropAction.MoveAction and data.hasFormat(self.MIME_TYPE)

    def dropMimeData(
        self,
        data: QMimeData,
        action: Qt.DropAction,
        row: int,
        column: int,
        parent: AnyIndex,
    ) -> bool:
        if not self.canDropMimeData(data, action, row, column, parent):
            return False
        rows = _decode_rows(bytes(data.data(self.MIME_TYPE).data()), len(self._rows))
        if not rows:
            return False
        if parent.isValid():  # dropped onto a row: insert before it
            row = parent.row()
        destination = len(self._rows) if row < 0 else min(row, len(self._rows))
        self.move_layers(rows, destination)
        # The view follows a successful MoveAction with removeRows on the dragged rows; this
        # model does not implement removeRows, so that call is a no-op and the move stands.
        return True

    def moveRows(
        self,
        source_parent: AnyIndex,
        source_row: int,
        count: int,
        destination_parent: AnyIndex,
        destination_child: int,
    ) -> bool:
        if source_parent.isValid() or destination_parent.isValid() or count < 1:
            return False
        if source_row < 0 or source_row + count > len(self._rows):
            return False
        rows = range(source_row, source_row + count)
        return self.move_layers(rows, destination_child)

    # edits (each is one undo step) -----------------------------------------------------
    def insert_layer(self, row: int, layer: LayerSpec, text: str = "") -> int:
        """Insert `layer` before `row` (clamped to the stack); returns the row it landed in."""
        row = max(0, min(row, len(self._rows)))
        layers = (*self.layers[:row], layer, *self.layers[row:])
        self._push(layers, text or f"Add {layer.type}")
        return row

    def add_layer(self, type_name: str, after: int | None = None) -> int:
        """A new catalogue layer after row `after` (at the end when None); returns its row."""
        row = len(self._rows) if after is None else after + 1
        return self.insert_layer(row, new_layer(type_name))

    def remove_layers(self, rows: Iterable[int]) -> None:
        picked = sorted({row for row in rows if 0 <= row < len(self._rows)})
        if not picked:
            return
        layers = tuple(layer for row, layer in enumerate(self.layers) if row not in picked)
        name = _counted(len(picked), self.layers[picked[0]].type)
        self._push(layers, f"Remove {name}")

    def duplicate_layer(self, row: int) -> int:
        """Put a copy of layer `row` right after it (without its name: names are unique);
        returns the copy's row."""
        layer = self._rows[row].layer
        copy = dataclasses.replace(layer, name=None)
        return self.insert_layer(row + 1, copy, f"Duplicate {layer.type}")

    def move_layers(self, rows: Iterable[int], destination: int) -> bool:
        """Move `rows` before old row `destination` (Qt's convention); False when nothing moves."""
        picked = sorted({row for row in rows if 0 <= row < len(self._rows)})
        if not picked:
            return False
        layers = tuple(moved(self.layers, picked, destination))
        if layers == self.layers:
            return False
        name = _counted(len(picked), self.layers[picked[0]].type)
        self._push(layers, f"Move {name}")
        return True

    def move_layer(self, row: int, offset: int) -> int:
        """Move one layer up (-1) or down (+1); returns the row it ends in."""
        target = max(0, min(row + offset, len(self._rows) - 1))
        if target != row:
            self.move_layers([row], target + 1 if target > row else target)
        return target

    def set_params(self, row: int, params: Mapping[str, Any], text: str = "") -> None:
        """Replace layer `row`'s parameters (None values are dropped: default or inferred)."""
        layer = self._rows[row].layer
        kept = {name: value for name, value in params.items() if value is not None}
        new = dataclasses.replace(layer, params=kept)
        if new != layer:
            layers = (*self.layers[:row], new, *self.layers[row + 1 :])
            self._push(layers, text or f"Edit {layer.type}")

    def set_param(self, row: int, name: str, value: Any) -> None:
        """Set one parameter; None or torch's default removes it from the file."""
        layer = self._rows[row].layer
        params = dict(layer.params)
        kind = CATALOGUE.get(layer.type)
        default = kind.param(name).default if kind and name in kind.param_names else None
        required = bool(kind and name in kind.param_names and kind.param(name).required)
        if value is None or (value == default and not required and type(value) is type(default)):
            params.pop(name, None)
        else:
            params[name] = value
        self.set_params(row, params, f"Edit {layer.type} {name}")

    def rename_layer(self, row: int, name: str) -> bool:
        """Name layer `row` (empty: its position); layers taking it by name follow."""
        layer = self._rows[row].layer
        if (layer.name or "") == name:
            return False
        return self._push_model(lambda spec: renamed(spec, row, name), f"Rename {layer.type}")

    def set_inputs(self, row: int, text: str) -> bool:
        """Layer `row` takes the layers named in `text` (`bn2, relu1`; empty: the previous)."""
        layer = self._rows[row].layer
        inputs = parse_inputs(text)
        if inputs == layer.inputs:
            return False
        return self._push_model(
            lambda spec: with_inputs(spec, row, inputs), f"Edit {layer.type} inputs"
        )

    def connect_layers(self, source: str, row: int) -> bool:
        """Merge layer `row` also takes `source`'s output (a skip connection); one undo step."""
        text = f"Connect {source} to {self._rows[row].layer.type}"
        return self._push_model(lambda spec: connected(spec, source, row), text)

    def set_input_text(self, text: str) -> bool:
        """The input layer's shape as typed (`50`, `3, 32, 32`); empty: the data's shape."""
        return self._push_model(lambda spec: with_input_shape(spec, text), "Edit input shape")

    def _push_model(self, edit: Callable[[ModelSpec], ModelSpec], text: str) -> bool:
        """Apply one model edit as one undo step; a refused edit says why (`edit_refused`)."""
        before = self.document.experiment.model
        try:
            after = edit(before)
        except ModelEditError as refusal:
            self.edit_refused.emit(str(refusal))
            return False
        self.document.set_model(after, text)
        return self.document.experiment.model != before

    def _push(self, layers: tuple[LayerSpec, ...], text: str) -> None:
        self.document.set_layers(layers, text)

    # following the document ------------------------------------------------------------
    def _make_plan(self) -> ModelPlan:
        vocab, dtype = self.data_options
        model = self.document.experiment.model
        return plan_model(model, self.input_shape, vocab_size=vocab, input_dtype=dtype)

    def _replan(self) -> None:
        """Plan the document's stack again and show the result in every row."""
        self._plan = self._make_plan()
        self._file_input_shape = self.document.experiment.model.input_shape
        self._rows = _entries(self.document.experiment.model.layers, self._plan)
        if self._rows:
            last = self.index(len(self._rows) - 1, len(self.HEADERS) - 1)
            self.dataChanged.emit(self.index(0, 0), last)
            self.headerDataChanged.emit(Qt.Orientation.Vertical, 0, len(self._rows) - 1)
        self.plan_changed.emit(self._plan)

    def _follow_file_input_shape(self) -> None:
        """Re-plan when the experiment's own model.input_shape changed (another project)."""
        if self.document.experiment.model.input_shape != self._file_input_shape:
            self._replan()

    def _follow_document(self) -> None:
        """Announce the change as an insert, remove or move when it is one, so selections and
        persistent indexes follow the layers (a reset otherwise), then show the new plan."""
        old, new = self.layers, self.document.experiment.model.layers
        if old != new:
            self._announce(old, new)
        self._replan()

    def _announce(self, old: tuple[LayerSpec, ...], new: tuple[LayerSpec, ...]) -> None:
        start, end_old, end_new = _differing_span(old, new)
        root = QModelIndex()
        rows = self._rows
        if end_old == start and end_new > start:
            self.beginInsertRows(root, start, end_new - 1)
            added = [_Entry(layer, None, None) for layer in new[start:end_new]]
            self._rows = [*rows[:start], *added, *rows[start:]]
            self.endInsertRows()
        elif end_new == start and end_old > start:
            self.beginRemoveRows(root, start, end_old - 1)
            self._rows = [*rows[:start], *rows[end_old:]]
            self.endRemoveRows()
        elif (block := _rotation(old[start:end_old], new[start:end_new])) is not None:
            first, last, destination = (start + value for value in block)
            self.beginMoveRows(root, first, last, root, destination)
            self._rows = moved(rows, range(first, last + 1), destination)
            self.endMoveRows()
        elif len(old) == len(new):
            pass  # layers edited in place: the re-plan's dataChanged says it all
        else:
            self.beginResetModel()
            self._rows = _entries(new, self._make_plan())
            self.endResetModel()

    # presentation ------------------------------------------------------------------------
    def _display(self, row: int, column: int) -> str:
        planned = self.layer_row(row)
        layer = self._rows[row].layer
        if column == self.LAYER_COLUMN:
            return layer_label(layer, planned.resolved if planned else None)
        if column == self.NAME_COLUMN:
            return layer.name or ""
        if column == self.INPUTS_COLUMN:
            return ", ".join(layer.inputs) if layer.inputs is not None else ""
        if planned is None:
            return UNKNOWN
        if column == self.SHAPE_COLUMN:
            return show_shape(planned.output_shape)
        return f"{planned.parameters:,}"

    def _foreground(self, row: int) -> QColor | None:
        if self.row_problem(row):
            return PROBLEM_COLOUR
        return UNKNOWN_COLOUR if self.layer_row(row) is None else None

    def _description(self, row: int) -> str:
        layer = self._rows[row].layer
        kind = CATALOGUE.get(layer.type)
        planned = self.layer_row(row)
        lines = [f"{layer.type}: {kind.help}" if kind else layer.type]
        if planned is not None:
            lines.append(f"input {show_shape(planned.input_shape)}")
            lines.append(f"output {show_shape(planned.output_shape)}")
            lines.append(f"{planned.macs:,} multiply-accumulates per sample")
        else:
            lines.append("shapes unknown until the problem above is fixed")
        return "\n".join(lines)

    def _accessible_text(self, row: int) -> str:
        problem = self.row_problem(row)
        planned = self.layer_row(row)
        label = layer_label(self._rows[row].layer, planned.resolved if planned else None)
        if problem:
            return f"{label}: problem: {problem}"
        if planned is None:
            return f"{label}: output unknown"
        return f"{label}: output {show_shape(planned.output_shape)}, {planned.parameters:,} params"


def _decode_rows(payload: bytes, count: int) -> list[int]:
    try:
        rows = json.loads(payload.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return []
    if not isinstance(rows, list):
        return []
    return [row for row in rows if isinstance(row, int) and 0 <= row < count]


def _differing_span(old: Sequence[LayerSpec], new: Sequence[LayerSpec]) -> tuple[int, int, int]:
    """(start, end in old, end in new) of the part that differs between two stacks."""
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    tail = 0
    while (
        tail < min(len(old), len(new)) - start
        and old[len(old) - 1 - tail] == new[len(new) - 1 - tail]
    ):
        tail += 1
    return start, len(old) - tail, len(new) - tail


def _rotation(old: Sequence[LayerSpec], new: Sequence[LayerSpec]) -> tuple[int, int, int] | None:
    """(first, last, destination) of the smallest block move that turns `old` into `new`."""
    size = len(old)
    if size != len(new) or size < 2:
        return None
    for shift in range(1, size):
        if list(new) == [*old[shift:], *old[:shift]]:
            if shift <= size - shift:
                return 0, shift - 1, size  # the first `shift` rows went to the end
            return shift, size - 1, 0  # the last rows came to the front
    return None


def _alignment(column: int) -> Qt.AlignmentFlag:
    if column == LayerStackModel.PARAMETERS_COLUMN:
        return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
    return Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter


_ICON: list[QIcon] = []


def _warning_icon() -> QIcon | None:
    if QApplication.instance() is None:
        return None  # icons need a GUI application; the colour and message still show
    if not _ICON:
        style = QApplication.style()
        _ICON.append(style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning))
    return _ICON[0]
