"""The form for the selected layer's parameters, drawn from the catalogue's ParamSpecs alone."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.experiment import LayerSpec
from workbench.engine.layers import CATALOGUE, LayerType, ParamSpec
from workbench.engine.model_builder import LayerRow
from workbench.ui.field_validation import check_typed_values, clear_invalid, mark_invalid
from workbench.ui.layer_stack_model import LayerStackModel, show_value

INT_LIMIT = 10_000_000  # wide enough for any layer size, narrow enough for a compact spin box
UNSET = object()  # a field whose text cannot be read yet: nothing is committed


class CompactDoubleSpinBox(QDoubleSpinBox):
    """A float spin box that shows 0.25 and 1e-05 rather than 0.2500000000."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDecimals(12)  # the value keeps its precision; the text is shortened below

    def textFromValue(self, value: float) -> str:
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        try:
            number = float(text)
        except ValueError:
            plausible = re.fullmatch(r"[-+]?[0-9]*\.?[0-9]*(e[-+]?[0-9]*)?", text.strip(), re.I)
            state = QValidator.State.Intermediate if plausible else QValidator.State.Invalid
            return state, text, pos
        inside = self.minimum() <= number <= self.maximum()
        state = QValidator.State.Acceptable if inside else QValidator.State.Intermediate
        return state, text, pos


def parse_sizes(text: str, choices: tuple[str, ...] = ()) -> Any:
    """`3` -> 3, `3, 3` -> (3, 3), '' -> None (unset), a listed word -> the word.

    Raises ValueError for anything else; the validator keeps such text out in practice.
    """
    cleaned = text.strip().strip("[]()").strip()
    if not cleaned:
        return None
    if cleaned in choices:
        return cleaned
    if not re.fullmatch(r"\d+(?:\s*[,x×\s]\s*\d+)*", cleaned):
        raise ValueError(f"{text!r} is not a size")
    numbers = [int(part) for part in re.split(r"[\s,x×]+", cleaned) if part]
    return numbers[0] if len(numbers) == 1 else tuple(numbers)


def _size_problem(param: ParamSpec, text: str) -> str:
    """Why TEXT is not a value of the size parameter PARAM."""
    shape = "a whole number" if param.kind == "int" else "a whole number or numbers like 3, 3"
    words = f", or one of {', '.join(param.choices)}" if param.choices else ""
    return f"{param.name}: “{text.strip()}” is not {shape} of 0 or more{words}; nothing changed"


class _Field:
    """One parameter's control: shows the given or resolved value, reads what the user set."""

    def __init__(self, param: ParamSpec, widget: QWidget) -> None:
        self.param = param
        self.widget = widget

    def show(self, given: Any, resolved: Any) -> None:
        raise NotImplementedError

    def read(self) -> Any:
        raise NotImplementedError

    def on_commit(self, commit: Callable[[], None]) -> None:
        raise NotImplementedError

    def show_row(self, planned: LayerRow | None) -> None:
        """What the plan says about the whole layer (a Backbone's frozen parameters)."""


class _IntField(_Field):
    def __init__(self, param: ParamSpec) -> None:
        spin = QSpinBox()
        spin.setRange(_bound(param.minimum, -INT_LIMIT), _bound(param.maximum, INT_LIMIT))
        spin.setKeyboardTracking(False)  # commit on Enter, focus-out or an arrow step
        spin.setAccelerated(True)
        check_typed_values(spin)
        super().__init__(param, spin)
        self.spin = spin

    def show(self, given: Any, resolved: Any) -> None:
        value = given if given is not None else resolved
        self.spin.setValue(int(value) if isinstance(value, int) else self.spin.minimum())

    def read(self) -> Any:
        return self.spin.value()

    def on_commit(self, commit: Callable[[], None]) -> None:
        self.spin.valueChanged.connect(lambda *_: commit())


class _FloatField(_Field):
    def __init__(self, param: ParamSpec) -> None:
        spin = CompactDoubleSpinBox()
        spin.setRange(
            param.minimum if param.minimum is not None else -1e9,
            param.maximum if param.maximum is not None else 1e9,
        )
        spin.setSingleStep(_step(param.default))
        spin.setKeyboardTracking(False)
        check_typed_values(spin)
        super().__init__(param, spin)
        self.spin = spin

    def show(self, given: Any, resolved: Any) -> None:
        value = given if given is not None else resolved
        if isinstance(value, int | float):
            self.spin.setValue(float(value))

    def read(self) -> Any:
        return self.spin.value()

    def on_commit(self, commit: Callable[[], None]) -> None:
        self.spin.valueChanged.connect(lambda *_: commit())


class _BoolField(_Field):
    def __init__(self, param: ParamSpec) -> None:
        self.box = QCheckBox()
        super().__init__(param, self.box)

    def show(self, given: Any, resolved: Any) -> None:
        value = given if given is not None else resolved
        self.box.setChecked(bool(value))

    def read(self) -> Any:
        return self.box.isChecked()

    def on_commit(self, commit: Callable[[], None]) -> None:
        self.box.toggled.connect(lambda *_: commit())


class _ChoiceField(_Field):
    def __init__(self, param: ParamSpec) -> None:
        self.combo = QComboBox()
        self.combo.addItems(list(param.choices))
        super().__init__(param, self.combo)

    def show(self, given: Any, resolved: Any) -> None:
        value = given if given is not None else resolved
        self.combo.setCurrentIndex(max(self.combo.findText(str(value)), 0))

    def read(self) -> Any:
        return self.combo.currentText()

    def on_commit(self, commit: Callable[[], None]) -> None:
        self.combo.activated.connect(lambda *_: commit())


class _SizesField(_Field):
    """Text for `3` or `3, 3` (and words like 'same'); empty means inferred or default."""

    def __init__(self, param: ParamSpec) -> None:
        self.edit = QLineEdit()
        self.edit.textEdited.connect(lambda _text: clear_invalid(self.edit))
        super().__init__(param, self.edit)

    def show(self, given: Any, resolved: Any) -> None:
        param = self.param
        clear_invalid(self.edit)
        if given is not None:
            self.edit.setText(show_value(given))
        elif param.inferred:
            self.edit.clear()
        elif param.default is not None:
            self.edit.setText(show_value(param.default))
        else:
            self.edit.clear()
        self.edit.setPlaceholderText(_placeholder(param, resolved))

    def read(self) -> Any:
        """The typed size; text that is not one marks the field and commits nothing."""
        try:
            value = parse_sizes(self.edit.text(), self.param.choices)
        except ValueError:
            value = UNSET
        if value is UNSET:
            mark_invalid(self.edit, _size_problem(self.param, self.edit.text()))
            return UNSET
        clear_invalid(self.edit)
        return value

    def on_commit(self, commit: Callable[[], None]) -> None:
        self.edit.editingFinished.connect(commit)


def _placeholder(param: ParamSpec, resolved: Any) -> str:
    known = "" if resolved is None else show_value(resolved)
    if param.inferred:
        return f"inferred: {known}" if known else "inferred from the previous layer"
    if known:
        return f"default: {known}"
    return "required" if param.required else "default"


def _bound(value: float | None, fallback: int) -> int:
    return fallback if value is None else int(value)


def _step(default: Any) -> float:
    """A spin step matched to the value's size: 0.1 for p = 0.5, 1e-05 for eps = 1e-05."""
    if not isinstance(default, int | float) or default <= 0 or default >= 1:
        return 0.1
    return float(10 ** math.floor(math.log10(default)))


def make_field(param: ParamSpec) -> _Field:
    """The control for a ParamSpec: its kind decides, inferred sizes are text with a hint."""
    if param.kind in ("text", "bool_or_text"):
        from workbench.ui.backbone_fields import backbone_field

        return backbone_field(param)
    if param.inferred or param.kind == "int_or_tuple":
        return _SizesField(param)
    if param.kind == "int":
        return _IntField(param)
    if param.kind == "float":
        return _FloatField(param)
    if param.kind == "bool":
        return _BoolField(param)
    return _ChoiceField(param)


class LayerParamEditor(QWidget):
    """Edits the parameters of one row of a LayerStackModel; each commit is one undo step."""

    def __init__(
        self,
        model: LayerStackModel,
        parent: QWidget | None = None,
        *,
        repeat_first_problem: bool = True,
    ) -> None:
        """`repeat_first_problem=False` leaves the stack's first problem to a footer that shows
        it already; the editor then only shows problems of later rows."""
        super().__init__(parent)
        self.setObjectName("layerParamEditor")
        self.setAccessibleName("layerParamEditor")
        self.model = model
        self.repeat_first_problem = repeat_first_problem
        self._row: int | None = None
        self._type: str | None = None
        self.fields: dict[str, _Field] = {}
        self.title = QLabel()
        self.title.setObjectName("layerParamTitle")
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.help = QLabel()
        self.help.setWordWrap(True)
        self.help.setObjectName("layerParamHelp")
        self.problem = QLabel()
        self.problem.setObjectName("layerParamProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #b71c1c;")
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.form = QFormLayout()
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.help)
        layout.addWidget(self.problem)
        layout.addLayout(self.form)
        layout.addStretch(1)
        model.plan_changed.connect(self._plan_changed)
        self.set_row(None)

    @property
    def row(self) -> int | None:
        return self._row

    def set_row(self, row: int | None) -> None:
        """Edit layer `row` (None: nothing selected)."""
        if row is not None and not 0 <= row < self.model.rowCount():
            row = None
        self._row = row
        self.refresh()

    def _plan_changed(self, plan: object) -> None:
        self.refresh()

    def field(self, name: str) -> QWidget:
        """The control editing parameter `name` (for tests and accessibility tools)."""
        return self.fields[name].widget

    def refresh(self) -> None:
        """Show the row's current values; rebuild the form when the layer type changed."""
        if self._row is not None and self._row >= self.model.rowCount():
            self._row = None
        if self._row is None:
            self._show_nothing()
            return
        layer = self.model.layer(self._row)
        kind = CATALOGUE.get(layer.type)
        if kind is None and layer.type in self.model.document.experiment.model.blocks:
            self._show_nothing(
                f"A use of the block {layer.type}: its layers are set under "
                f"[model.blocks.{layer.type}] and shown in the Graph tab (open it with ▸)."
            )
            self.title.setText(f"Layer {self._row}: block {layer.type}")
            return
        if kind is None:
            self._show_nothing(f"{layer.type} is not a known layer type.")
            return
        if kind.name != self._type:
            self._rebuild(kind)
        self._show_values(layer, self.model.layer_row(self._row))
        self.title.setText(f"Layer {self._row}: {kind.name}")
        self.help.setText(kind.help if kind.params else f"{kind.help}. No parameters to set.")
        problem = self.model.row_problem(self._row)
        first = self.model.problem()
        if not self.repeat_first_problem and first is not None and problem == str(first):
            problem = None
        self.problem.setText(problem or "")
        self.problem.setVisible(bool(problem))

    def _show_nothing(self, text: str = "Select a layer to edit its parameters.") -> None:
        self._rebuild(None)
        self.title.setText("No layer selected" if self._row is None else "Unknown layer")
        self.help.setText(text)
        self.problem.hide()

    def _rebuild(self, kind: LayerType | None) -> None:
        for field in self.fields.values():
            field.widget.blockSignals(True)  # a focused field must not commit while it goes
        while self.form.rowCount():
            taken = self.form.takeRow(0)
            for item in (taken.labelItem, taken.fieldItem):
                widget = item.widget() if item is not None else None
                if widget is not None:
                    widget.hide()
                    widget.deleteLater()
        self.fields = {}
        self._type = kind.name if kind else None
        for param in kind.params if kind else ():
            field = make_field(param)
            name = f"param_{param.name}"
            field.widget.setObjectName(name)
            field.widget.setAccessibleName(param.name)
            field.widget.setToolTip(_tooltip(param))
            label = QLabel(param.name)
            label.setToolTip(_tooltip(param))
            label.setBuddy(field.widget)
            self.form.addRow(label, field.widget)
            field.on_commit(self._committer(field))
            self.fields[param.name] = field

    def _committer(self, field: _Field) -> Callable[[], None]:
        return lambda: self._commit(field)

    def _show_values(self, layer: LayerSpec, planned: LayerRow | None) -> None:
        resolved = planned.resolved if planned else {}
        for name, field in self.fields.items():
            blocker = QSignalBlocker(field.widget)
            field.show(layer.params.get(name), resolved.get(name, field.param.default))
            field.show_row(planned)
            del blocker

    def _commit(self, field: _Field) -> None:
        if self._row is None or self._row >= self.model.rowCount():
            return
        value = field.read()
        if value is UNSET:
            return
        name = field.param.name
        current = self.model.layer(self._row).params.get(name)
        shown_default = field.param.default if not field.param.inferred else None
        if value == (current if current is not None else shown_default):
            return  # focus left a field the user did not change
        self.model.set_param(self._row, name, value)


def _tooltip(param: ParamSpec) -> str:
    notes = []
    if param.inferred:
        notes.append("inferred from the previous layer; type a value to override it")
    elif param.required:
        notes.append("required")
    elif param.default is not None:
        notes.append(f"default: {show_value(param.default)}")
    return f"{param.name}: {param.help}" + (f" ({'; '.join(notes)})" if notes else "")
