"""Define a sweep by ticking experiment keys and typing their values, checked as you type."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import MONITORS, Experiment, experiment_to_dict
from workbench.engine.overrides import parse_value, with_overrides
from workbench.engine.sweep_plan import (
    SOURCE,
    RandomRange,
    SweepSpec,
    Trial,
    parse_grid,
    parse_range,
    plan_trials,
)
from workbench.ui.project_document import ProjectDocument
from workbench.ui.widgets import named

DEFAULT_KEYS = ("train.lr", "data.batch_size", "train.optimizer", "train.epochs")
FORM_SOURCE = "Experiments tab"
ERROR_STYLE = "color: #b00020;"
HINT = "values: 0.1, 0.01 (each is tried)  ·  a range for random trials: 1e-4:1e-1:log"


def leaf_keys(value: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key of an experiment's values that holds a value (list entries numbered)."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield from leaf_keys(child, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, child in enumerate(value):
            yield from leaf_keys(child, f"{prefix}.{index}")
    elif prefix:
        yield prefix


def current_value(experiment: Experiment, key: str) -> Any:
    value: Any = experiment_to_dict(experiment)
    for part in key.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def readable(error: WorkbenchError) -> str:
    """The engine's message without the command-line flag it names."""
    text = str(error)
    for prefix in (f"{SOURCE}: --grid ", f"{SOURCE}: --range ", f"{SOURCE}: ", f"{FORM_SOURCE}: "):
        text = text.removeprefix(prefix)
    return text


def is_range(text: str) -> bool:
    """`1e-4:1e-1:log` is a range; `cuda:0` and `0.1, 0.01` are values."""
    head, sep, _ = text.partition(":")
    value = parse_value(head.strip()) if sep else None
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class ParsedRow:
    key: str
    values: tuple[Any, ...] = ()
    range: RandomRange | None = None


def parse_row(experiment: Experiment, key: str, text: str) -> ParsedRow:
    """The row's values, each validated as the experiment takes it; WorkbenchError if not."""
    if is_range(text):
        found = parse_range(f"{key}={text}")
        ends: tuple[Any, ...] = (found.low, found.high)
        if found.scale == "int":
            ends = (int(found.low), int(found.high))
        for value in ends:
            with_overrides(experiment, {key: value}, source=FORM_SOURCE)
        return ParsedRow(key, range=found)
    _, values = parse_grid(f"{key}={text}")
    for value in values:
        with_overrides(experiment, {key: value}, source=FORM_SOURCE)
    return ParsedRow(key, values=values)


class SweepKeyRow:
    """A tick box with the key, the project's current value, the values field and its message."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.check = QCheckBox(key)
        self.check.setObjectName(f"sweepKey:{key}")
        self.values = QLineEdit()
        self.values.setObjectName(f"sweepValues:{key}")
        self.values.setAccessibleName(f"Values of {key}")
        self.values.setEnabled(False)
        self.message = QLabel()
        self.message.setObjectName(f"sweepMessage:{key}")
        self.message.setStyleSheet(ERROR_STYLE)
        self.message.setWordWrap(True)
        self.message.hide()
        self.check.toggled.connect(self.values.setEnabled)
        self.parsed: ParsedRow | None = None

    def validate(self, experiment: Experiment) -> bool:
        """Parse the field; show the engine's message under it when it is wrong."""
        now = current_value(experiment, self.key)
        self.values.setPlaceholderText(f"now {now}; e.g. 0.1, 0.01 or 1e-4:1e-1:log")
        self.check.setToolTip(f"{self.key}: now {now} in the project; tick to sweep it")
        self.parsed = None
        problem = ""
        if self.check.isChecked():
            text = self.values.text().strip()
            try:
                if not text:
                    raise WorkbenchError(f"{self.key}: type the values to try, e.g. {HINT}")
                self.parsed = parse_row(experiment, self.key, text)
            except WorkbenchError as exc:
                problem = readable(exc)
        self.message.setText(problem)
        self.message.setVisible(bool(problem))
        self.values.setToolTip(problem or HINT)
        return not problem


class SweepForm(QWidget):
    """Emits `sweep_requested(spec, trials)` when Add to queue is pressed on a valid sweep."""

    sweep_requested = Signal(object, object)  # SweepSpec, list[Trial]

    def __init__(self, document: ProjectDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.rows: dict[str, SweepKeyRow] = {}
        self.spec: SweepSpec | None = None
        self.trials: list[Trial] = []
        layout = QVBoxLayout(self)
        self.grid = QGridLayout()
        other_key_row, options = self._other_key_row(), self._options()
        self.summary = QLabel()
        named(self.summary, "sweepSummary", "How many trials this sweep plans, or what is wrong")
        self.summary.setWordWrap(True)
        self.add_button = QPushButton("Add to &queue")
        named(self.add_button, "addSweepButton", "Queue this sweep (Run starts the queue)")
        self.add_button.clicked.connect(self.request)
        for key in DEFAULT_KEYS:
            self.add_key(key)
        layout.addLayout(self.grid)
        layout.addLayout(other_key_row)
        layout.addLayout(options)
        layout.addWidget(self.summary)
        layout.addWidget(self.add_button)
        layout.addStretch(1)
        document.changed.connect(self.validate)
        self.validate()

    def _other_key_row(self) -> QHBoxLayout:
        self.other_key = QComboBox()
        self.other_key.setEditable(True)
        named(self.other_key, "otherKeyPicker", "Any key of the experiment, e.g. train.momentum")
        self.other_key.setMinimumContentsLength(8)
        add = QPushButton("Add &key")
        add.setMaximumWidth(80)
        named(add, "addKeyButton", "Add the key as a row to sweep")
        add.clicked.connect(lambda: self.add_key(self.other_key.currentText().strip()))
        row = QHBoxLayout()
        row.addWidget(QLabel("Key:"))
        row.addWidget(self.other_key, 1)
        row.addWidget(add)
        return row

    def _options(self) -> QFormLayout:
        self.random_trials = QSpinBox(minimum=0, maximum=10_000)
        named(self.random_trials, "randomTrialsSpin", "0: every combination; N: N random draws")
        self.random_trials.setSpecialValueText("grid: all")
        self.seed = QSpinBox(minimum=0, maximum=2_147_483_647)
        named(self.seed, "sweepSeedSpin", "The same seed draws the same random trials")
        self.prune = QComboBox()
        self.prune.addItems(["none", "median"])
        named(self.prune, "prunePicker", "median: stop trials that fall behind the median")
        self.metric_picker = QComboBox()
        self.metric_picker.addItems(list(MONITORS))
        self.metric_picker.setCurrentText("val_accuracy")
        named(self.metric_picker, "sweepMetricPicker", "What best epoch and pruning look at")
        form = QFormLayout()
        form.addRow("Random trials", self.random_trials)
        form.addRow("Seed", self.seed)
        form.addRow("Prune", self.prune)
        form.addRow("Metric", self.metric_picker)
        for signal in (self.random_trials.valueChanged, self.seed.valueChanged,
                       self.prune.currentTextChanged, self.metric_picker.currentTextChanged):  # fmt: skip
            signal.connect(lambda *_: self.validate())
        return form

    def add_key(self, key: str) -> SweepKeyRow | None:
        """A row for `key` (ticked when added by hand); the row's message says if it is unknown."""
        if not key:
            return None
        if key in self.rows:
            self.rows[key].check.setChecked(True)
            return self.rows[key]
        row = SweepKeyRow(key)
        line = 2 * len(self.rows)
        self.grid.addWidget(row.check, line, 0)
        self.grid.addWidget(row.values, line, 1)
        self.grid.addWidget(row.message, line + 1, 0, 1, 2)
        self.grid.setColumnStretch(1, 1)
        row.check.toggled.connect(lambda *_: self.validate())
        row.values.textChanged.connect(lambda *_: self.validate())
        self.rows[key] = row
        if key not in DEFAULT_KEYS:
            row.check.setChecked(True)
        self.validate()
        return row

    def set_values(self, key: str, text: str) -> None:
        """Tick `key` and type `text` into its field (as a user would)."""
        row = self.rows.get(key) or self.add_key(key)
        assert row is not None
        row.check.setChecked(True)
        row.values.setText(text)

    def validate(self) -> bool:
        """Check every ticked row and the whole plan; enable Add only for a valid sweep."""
        experiment = self.document.experiment
        self._refresh_key_choices(experiment)
        rows_ok = all([row.validate(experiment) for row in self.rows.values()])
        parsed = [row.parsed for row in self.rows.values() if row.parsed is not None]
        self.spec, self.trials, problem = None, [], ""
        if not rows_ok:
            problem = "Fix the values marked in red."
        elif not parsed:
            problem = "Tick a setting and type the values to try."
        elif any(p.range for p in parsed) and not self.random_trials.value():
            problem = "A range is drawn from: set Random trials to how many trials to draw."
        else:
            spec = SweepSpec(
                experiment=experiment,
                grid=tuple((p.key, p.values) for p in parsed if p.range is None),
                ranges=tuple(p.range for p in parsed if p.range is not None),
                random_trials=self.random_trials.value() or None,
                seed=self.seed.value(),
                prune=None if self.prune.currentText() == "none" else self.prune.currentText(),
                metric=self.metric_picker.currentText(),
            )
            try:
                self.trials = plan_trials(spec)
                self.spec = spec
            except WorkbenchError as exc:
                problem = readable(exc)
        ok = self.spec is not None
        self.summary.setStyleSheet("" if ok else ERROR_STYLE)
        self.summary.setText(f"{len(self.trials)} trials planned." if ok else problem)
        self.add_button.setEnabled(ok)
        return ok

    def _refresh_key_choices(self, experiment: Experiment) -> None:
        keys = list(leaf_keys(experiment_to_dict(experiment)))
        completer = self.other_key.completer()
        if completer is None or completer.model().rowCount() != len(keys):
            text = self.other_key.currentText()
            self.other_key.clear()
            self.other_key.addItems(keys)
            self.other_key.setCompleter(QCompleter(keys, self.other_key))
            self.other_key.setCurrentText(text)

    def request(self) -> None:
        if self.validate() and self.spec is not None:
            self.sweep_requested.emit(self.spec, list(self.trials))
