"""Every finished run of the project side by side, kept in a side file, overlaid on the plots."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, Signal, Slot
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from workbench.controllers.training_controller import TrainingController
from workbench.engine.experiment import Experiment
from workbench.engine.reports import EpochReport
from workbench.ui.insight.run_list import RunListModel, RunRecord, run_record
from workbench.ui.plots import PlotsPanel

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()
COLUMNS = ("name", "dataset", "parameters", "epochs", "val accuracy", "val loss", "wall time")
_EPOCH_FIELDS = tuple(field.name for field in dataclasses.fields(EpochReport))
# Opened straight from here, a preset keeps its runs in memory: never write into the install.
BUNDLED_PRESETS = Path(__file__).resolve().parents[2] / "resources" / "presets"


def runs_side_file(project: str | Path) -> Path:
    """Where a project's runs are kept: `moons.toml` -> `moons.runs.json` beside it."""
    path = Path(project)
    return path.with_name(f"{path.stem}.runs.json")


def epoch_history(run: RunRecord) -> list[EpochReport]:
    """The run's per-epoch reports, as kept in its record (rows with missing fields skipped)."""
    rows = run.metrics.get("history") or []
    reports = []
    for row in rows:
        if isinstance(row, Mapping) and all(name in row for name in _EPOCH_FIELDS[:-1]):
            reports.append(EpochReport(**{k: row[k] for k in _EPOCH_FIELDS if k in row}))
    return reports


def _count(value: Any) -> str:
    if not isinstance(value, int | float):
        return ""
    if value >= 1e6:
        return f"{value / 1e6:.1f} M"
    if value >= 1e4:
        return f"{value / 1e3:.0f} k"
    return f"{int(value):,}"


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return (
        f"{minutes} min {rest:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
    )


class RunsTableModel(RunListModel):
    """The run list with the columns a comparison needs and a check box per run: checked runs
    are overlaid on the plots."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.checked: list[bool] = []

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole or orientation != Qt.Orientation.Horizontal:
            return None
        return COLUMNS[section] if 0 <= section < len(COLUMNS) else None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.runs):
            return None
        run, column = self.runs[index.row()], index.column()
        if role == Qt.ItemDataRole.CheckStateRole and column == 0:
            checked = self.checked[index.row()]
            return Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.EditRole:
            return run.name if column == 0 else None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(run, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = f"{run.name}: {run.settings}"
            return tip + (f"\nfiles in {run.folder}" if run.folder else "")
        if role == Qt.ItemDataRole.TextAlignmentRole and column >= 2:
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        return None

    @staticmethod
    def _text(run: RunRecord, column: int) -> str:
        metrics = run.metrics
        if column == 0:
            return run.name
        if column == 1:
            return str(metrics.get("dataset") or run.settings.split(" · ")[0])
        if column == 2:
            return _count(metrics.get("parameters"))
        if column == 3:
            status = metrics.get("status")
            done = str(metrics.get("epochs_completed", ""))
            return done if status in (None, "completed") else f"{done} ({status.replace('_', ' ')})"
        if column == 4:
            accuracy = metrics.get("val_accuracy")
            return "n/a" if accuracy is None else f"{float(accuracy):.2%}"
        if column == 5:
            loss = metrics.get("val_loss")
            return "n/a" if loss is None else f"{float(loss):.4f}"
        return _duration(metrics.get("wall_seconds"))

    def flags(self, index: Index) -> Qt.ItemFlag:
        flags = super().flags(index)
        if index.isValid() and index.column() == 0:
            flags |= Qt.ItemFlag.ItemIsUserCheckable
        return flags

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role == Qt.ItemDataRole.CheckStateRole and index.isValid() and index.column() == 0:
            return self.set_checked(index.row(), _is_checked(value))
        return super().setData(index, value, role)

    def set_checked(self, row: int, checked: bool) -> bool:
        if not 0 <= row < len(self.runs) or self.checked[row] == checked:
            return False
        self.checked[row] = checked
        index = self.index(row, 0)
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.CheckStateRole])
        return True

    def add_run(self, run: RunRecord) -> None:
        self.checked.append(False)
        super().add_run(run)

    def delete_run(self, row: int) -> RunRecord:
        del self.checked[row]
        return super().delete_run(row)

    def load(self, path: str | Path) -> None:
        super().load(path)
        self.checked = [False] * len(self.runs)

    def replace_runs(self, runs: Sequence[RunRecord]) -> None:
        self.beginResetModel()
        self.runs, self.checked = list(runs), [False] * len(runs)
        self.endResetModel()

    def overlaid(self) -> list[RunRecord]:
        return [run for run, checked in zip(self.runs, self.checked, strict=True) if checked]


def _is_checked(value: Any) -> bool:
    if isinstance(value, Qt.CheckState):
        return value == Qt.CheckState.Checked
    return bool(value == Qt.CheckState.Checked.value or value is True)


class RunsTable(QTableView):
    """The table; Delete (or Backspace) asks to remove the selected runs, unless editing."""

    delete_requested = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        editing = self.state() == QAbstractItemView.State.EditingState
        if not editing and event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.delete_requested.emit()
            event.accept()
            return
        super().keyPressEvent(event)


class RunsPanel(QWidget):
    """Finished runs: rename in place (double-click or F2), Delete removes a run from the list
    (its folder stays), ticked runs are overlaid on the epoch plots. Bound to a project, the
    list lives in `<project>.runs.json` and is saved after every change."""

    runs_changed = Signal()

    def __init__(
        self,
        plots: PlotsPanel,
        controller: TrainingController,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("runsPanel")
        self.setAccessibleName("runsPanel")
        self.plots, self.controller = plots, controller
        self.side_file: Path | None = None
        self.model = RunsTableModel(self)
        self._build()
        controller.run_succeeded.connect(self._run_succeeded)
        self.model.dataChanged.connect(self._data_changed)

    def _build(self) -> None:
        self.table = RunsTable()
        self.table.setObjectName("runsTable")
        self.table.setAccessibleName("runsTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.delete_requested.connect(self.delete_selected)
        self.overlay_button = QPushButton("Overlay selected")
        self.overlay_button.setObjectName("overlayRunsButton")
        self.overlay_button.setToolTip("Draw the selected runs' epoch curves on the plots")
        self.overlay_button.clicked.connect(self.overlay_selected)
        self.clear_button = QPushButton("Clear overlays")
        self.clear_button.setObjectName("clearOverlaysButton")
        self.clear_button.clicked.connect(self.clear_overlays)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setObjectName("deleteRunsButton")
        self.delete_button.setToolTip("Remove the selected runs from the list (Delete key)")
        self.delete_button.clicked.connect(self.delete_selected)
        self.message = QLabel("Finished runs appear here. Tick a run to overlay its curves.")
        self.message.setObjectName("runsMessage")
        self.message.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.overlay_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        buttons.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.message)

    # ------------------------------------------------------------------ runs

    @property
    def runs(self) -> list[RunRecord]:
        return self.model.runs

    @Slot(dict)
    def _run_succeeded(self, summary: dict[str, Any]) -> None:
        trainer = self.controller.trainer
        # A run stopped before its first epoch ended has nothing to compare.
        if trainer is not None and trainer.history:
            self.record_run(trainer.experiment, summary, trainer.history, trainer.out_dir)

    def record_run(
        self,
        experiment: Experiment,
        summary: Mapping[str, Any],
        history: Sequence[Mapping[str, Any] | EpochReport],
        folder: str | Path | None = None,
    ) -> RunRecord:
        """Add a finished run (the controller's runs arrive by themselves; a DDP run's summary
        and epoch reports can be handed in here)."""
        record = run_record(self._next_name(), experiment, summary, folder)
        rows = [dataclasses.asdict(row) if isinstance(row, EpochReport) else dict(row)
                for row in history]  # fmt: skip
        extra = {
            "dataset": experiment.data.name,
            "parameters": summary.get("parameters"),
            "history": rows,
        }
        run = dataclasses.replace(record, metrics={**record.metrics, **extra})
        self.add_run(run)
        return run

    def _next_name(self) -> str:
        taken = {run.name for run in self.runs}
        number = len(self.runs) + 1
        while f"run {number}" in taken:
            number += 1
        return f"run {number}"

    def add_run(self, run: RunRecord) -> None:
        self.model.add_run(run)
        self.table.scrollToBottom()
        self._changed(f"Recorded {run.name}.")

    def rename(self, row: int, name: str) -> bool:
        """Rename a run (what editing the name cell does)."""
        return self.model.setData(self.model.index(row, 0), name)

    def delete_rows(self, rows: Sequence[int]) -> None:
        """Remove runs from the list (their folders on disk are left alone)."""
        names = [self.model.delete_run(row).name for row in sorted(set(rows), reverse=True)]
        if names:
            self._redraw_overlays()
            self._changed(f"Removed {', '.join(reversed(names))} from the list (files kept).")

    def selected_rows(self) -> list[int]:
        return sorted({index.row() for index in self.table.selectionModel().selectedRows()})

    @Slot()
    def delete_selected(self) -> None:
        self.delete_rows(self.selected_rows())

    # ------------------------------------------------------------------ overlays

    def set_overlaid(self, row: int, overlaid: bool) -> None:
        self.model.set_checked(row, overlaid)

    @Slot()
    def overlay_selected(self) -> None:
        for row in self.selected_rows():
            self.model.set_checked(row, True)

    @Slot()
    def clear_overlays(self) -> None:
        for row in range(len(self.runs)):
            self.model.set_checked(row, False)

    def _data_changed(self, top: QModelIndex, bottom: QModelIndex, roles: Sequence[int]) -> None:
        if Qt.ItemDataRole.CheckStateRole in roles:
            self._redraw_overlays()
            return
        renamed = self.model.runs[top.row()].name
        if any(self.model.checked[top.row() : bottom.row() + 1]):
            self._redraw_overlays()
        self._changed(f"Renamed to {renamed}.")

    def _redraw_overlays(self) -> None:
        self.plots.clear_overlays()
        for run in self.model.overlaid():
            self.plots.add_overlay(run.name, epoch_history(run))

    # ------------------------------------------------------------------ files

    def _changed(self, message: str) -> None:
        self.message.setText(message)
        if self.side_file is not None:
            self._save_quietly(self.side_file)
        self.runs_changed.emit()

    def save(self, path: str | Path) -> None:
        """Write the list as JSON, atomically (raises OSError when the folder is not writable)."""
        self.model.save(path)

    def load(self, path: str | Path) -> None:
        """Replace the list with a saved one (ValueError says why a file is not a run list)."""
        self.model.load(path)
        self._redraw_overlays()
        self.runs_changed.emit()

    def _save_quietly(self, path: Path) -> None:
        try:
            self.save(path)
        except OSError as exc:
            self.message.setText(f"Cannot save the run list to {path}: {exc.strerror or exc}")

    def bind_project(self, project: str | Path | None, keep_runs: bool = False) -> None:
        """Follow the project file: show its runs (from its side file, if any) and save there.

        `keep_runs` (a Save As) moves the current runs to the new project instead. None (an
        untitled project) keeps runs in memory only; a new project starts with an empty list.
        """
        kept = list(self.runs) if keep_runs else []
        self.side_file = runs_side_file(project) if project else None
        if project and Path(project).resolve().parent == BUNDLED_PRESETS:
            self.side_file = None
            self.message.setText(
                "A bundled preset: its runs are not saved. Save the project to keep them."
            )
        self.model.replace_runs([])
        if self.side_file is not None and self.side_file.is_file():
            self._load_side_file(self.side_file)
        if kept:
            for run in kept:
                self.model.add_run(run)
            if self.side_file is not None:
                self._save_quietly(self.side_file)
        self._redraw_overlays()
        self.runs_changed.emit()

    def _load_side_file(self, path: Path) -> None:
        try:
            self.model.load(path)
        except ValueError as exc:
            # Never overwrite what could not be read: set it aside and say so.
            aside = path.with_name(path.name + ".unreadable")
            try:
                path.replace(aside)
                where = f"; it was renamed to {aside.name}"
            except OSError:
                self.side_file, where = None, "; runs will not be saved until it is fixed"
            self.message.setText(f"Cannot read the run list: {exc}{where}.")
            return
        count = len(self.runs)
        self.message.setText(f"{count} run{'s' if count != 1 else ''} of this project.")
