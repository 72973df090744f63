"""Every run of the project side by side, read back from the run folders, overlaid on the plots."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, Signal, Slot
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from workbench.controllers.run_session import RunSession
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import Experiment
from workbench.engine.reports import EpochReport
from workbench.engine.run_history import (
    RunResult,
    epoch_reports,
    list_runs,
    project_key,
    update_run_label,
)
from workbench.ui.insight.run_list import RunListModel, RunRecord, run_record
from workbench.ui.plots import PlotsPanel

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()
COLUMNS = ("name", "dataset", "parameters", "epochs", "val accuracy", "val loss", "wall time")
# Opened straight from here, a preset keeps its runs in memory: never write into the install.
BUNDLED_PRESETS = Path(__file__).resolve().parents[2] / "resources" / "presets"


def runs_side_file(project: str | Path) -> Path:
    """Where a project's runs are kept: `moons.toml` -> `moons.runs.json` beside it."""
    path = Path(project)
    return path.with_name(f"{path.stem}.runs.json")


def epoch_history(run: RunRecord) -> list[EpochReport]:
    """The run's per-epoch reports, as kept in its record: rows missing a required field are
    skipped; fields a row lacks that came later (perplexity...) take their defaults, fields it
    has that this version does not know are ignored."""
    rows = [row for row in run.metrics.get("history") or [] if isinstance(row, Mapping)]
    return list(epoch_reports(rows, len(rows)))


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
            accuracy, perplexity = metrics.get("val_accuracy"), metrics.get("val_perplexity")
            if accuracy is None and perplexity is not None:  # a text run: no accuracy to show
                return f"perplexity {float(perplexity):.2f}"
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

    def replace_run(self, row: int, run: RunRecord) -> None:
        """Put a newer record of the same run in its place (a resumed run that finished)."""
        self.runs[row] = run
        self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))

    def row_of(self, folder: str | Path | None) -> int | None:
        if folder is None:
            return None
        found = [i for i, run in enumerate(self.runs) if run.folder == str(folder)]
        return found[0] if found else None

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
    """Every run of the project: rename in place (double-click or F2), Delete takes a run off
    the list (its folder stays), ticked runs are overlaid on the epoch plots. The list is read
    from the run folders under `runs_dir` labelled with the project (so runs of presets and
    unsaved projects are there after a restart) and, bound to a project file, from
    `<project>.runs.json` beside it, saved after every change. A run that never finished (a
    crash, a kill) is listed as interrupted: Resume continues it from its checkpoint.pt."""

    runs_changed = Signal()
    run_recorded = Signal(object, object)  # RunRecord, RunResult: a run of the session ended
    resume_requested = Signal(str)  # the interrupted run's folder

    def __init__(
        self,
        plots: PlotsPanel,
        session: RunSession,
        runs_dir: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("runsPanel")
        self.setAccessibleName("runsPanel")
        self.plots, self.session, self.runs_dir = plots, session, runs_dir
        self.side_file: Path | None = None
        self.project_path: Path | None = None
        self.project_key = project_key(None)
        self.model = RunsTableModel(self)
        self._build()
        session.run_ended.connect(self.record_result)
        session.state_changed.connect(lambda _state: self._update_buttons())
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
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.overlay_button = QPushButton("Overlay selected")
        self.overlay_button.setObjectName("overlayRunsButton")
        self.overlay_button.setToolTip("Draw the selected runs' epoch curves on the plots")
        self.overlay_button.clicked.connect(self.overlay_selected)
        self.clear_button = QPushButton("Clear overlays")
        self.clear_button.setObjectName("clearOverlaysButton")
        self.clear_button.clicked.connect(self.clear_overlays)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setObjectName("resumeRunButton")
        self.resume_button.setToolTip("Continue the selected interrupted run from its checkpoint")
        self.resume_button.clicked.connect(self.resume_selected)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setObjectName("deleteRunsButton")
        self.delete_button.setToolTip("Remove the selected runs from the list (Delete key)")
        self.delete_button.clicked.connect(self.delete_selected)
        self.all_projects = QCheckBox("All projects")
        self.all_projects.setObjectName("allProjectsToggle")
        self.all_projects.setToolTip("Also list the runs of every other project kept here")
        self.all_projects.toggled.connect(lambda _on: self.rebind())
        self.message = QLabel("Finished runs appear here. Tick a run to overlay its curves.")
        self.message.setObjectName("runsMessage")
        self.message.setWordWrap(True)
        buttons = QHBoxLayout()
        for widget in (self.overlay_button, self.clear_button, self.all_projects):
            buttons.addWidget(widget)
        buttons.addStretch(1)
        buttons.addWidget(self.resume_button)
        buttons.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        self._update_buttons()

    # ------------------------------------------------------------------ runs

    @property
    def runs(self) -> list[RunRecord]:
        return self.model.runs

    @Slot(object)
    def record_result(self, result: RunResult) -> RunRecord | None:
        """List a run of the session that ended (one stopped before its first epoch ended has
        nothing to compare and is left out); a resumed run takes its old row."""
        if not result.history:
            return None
        row = self.model.row_of(result.folder)
        name = self.runs[row].name if row is not None else result.name or self._next_name()
        run = self.record_run(result.experiment, result.summary, result.history, result.folder,
                              name=name, replace=row)  # fmt: skip
        self._label(run, name=run.name)
        self.run_recorded.emit(run, result)
        return run

    def record_run(
        self,
        experiment: Experiment,
        summary: Mapping[str, Any],
        history: Sequence[Mapping[str, Any] | EpochReport],
        folder: str | Path | None = None,
        *,
        name: str = "",
        replace: int | None = None,
    ) -> RunRecord:
        """Add a run to the list from its experiment, summary and epoch reports."""
        run = self._record(experiment, summary, history, folder, name or self._next_name())
        if replace is None:
            self.add_run(run)
        else:
            self.model.replace_run(replace, run)
            self._redraw_overlays()
            self._changed(f"{run.name} is {run.metrics.get('status') or 'done'}.")
        return run

    @staticmethod
    def _record(
        experiment: Experiment,
        summary: Mapping[str, Any],
        history: Sequence[Mapping[str, Any] | EpochReport],
        folder: str | Path | None,
        name: str,
    ) -> RunRecord:
        record = run_record(name, experiment, summary, folder)
        rows = [dataclasses.asdict(row) if isinstance(row, EpochReport) else dict(row)
                for row in history]  # fmt: skip
        extra = {
            "dataset": experiment.data.name,
            "parameters": summary.get("parameters"),
            "history": rows,
        }
        return dataclasses.replace(record, metrics={**record.metrics, **extra})

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
        removed = [self.model.delete_run(row) for row in sorted(set(rows), reverse=True)]
        for run in removed:
            self._label(run, hidden=True)
        if removed:
            self._redraw_overlays()
            names = ", ".join(run.name for run in reversed(removed))
            self._changed(f"Removed {names} from the list (files kept).")

    def selected_rows(self) -> list[int]:
        return sorted({index.row() for index in self.table.selectionModel().selectedRows()})

    @Slot()
    def delete_selected(self) -> None:
        self.delete_rows(self.selected_rows())

    def resumable(self, row: int) -> bool:
        """An interrupted run whose checkpoint.pt is still there."""
        run = self.runs[row]
        interrupted = run.metrics.get("status") == "interrupted"
        return (
            interrupted
            and run.folder is not None
            and (Path(run.folder) / "checkpoint.pt").is_file()
        )

    @Slot()
    def resume_selected(self) -> None:
        rows = self.selected_rows()
        if len(rows) == 1 and self.resumable(rows[0]) and not self.session.is_running:
            folder = self.runs[rows[0]].folder
            assert folder is not None
            self.resume_requested.emit(folder)

    def _update_buttons(self) -> None:
        rows = self.selected_rows()
        can_resume = len(rows) == 1 and self.resumable(rows[0]) and not self.session.is_running
        self.resume_button.setEnabled(can_resume)
        self.delete_button.setEnabled(bool(rows))

    def _label(self, run: RunRecord, **changes: Any) -> None:
        """Keep a rename or a removal in the run folder's label too (it lasts a restart)."""
        if run.folder is not None:
            with contextlib.suppress(WorkbenchError, OSError):
                update_run_label(Path(run.folder), **changes)

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
        if any(self.model.checked[top.row() : bottom.row() + 1]):
            self._redraw_overlays()
        if top.column() == bottom.column() == 0:  # a rename (a replaced row spans every column)
            run = self.model.runs[top.row()]
            self._label(run, name=run.name)
            self._changed(f"Renamed to {run.name}.")

    def _redraw_overlays(self) -> None:
        self.plots.clear_overlays()
        for run in self.model.overlaid():
            self.plots.add_overlay(run.name, epoch_history(run))

    # ------------------------------------------------------------------ files

    def _changed(self, message: str) -> None:
        self.message.setText(message)
        self._update_buttons()
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

    def bind_project(
        self, project: str | Path | None, keep_runs: bool = False, key: str | None = None
    ) -> None:
        """Follow the project: show its runs (its side file, if any, and the run folders
        labelled `key`, by default the file's) and save the list beside the file.

        `keep_runs` (a Save As) moves the current runs to the new project instead. An untitled
        project or a preset (`key` `untitled`, `preset:NAME`) has no side file; its runs are
        listed from their folders.
        """
        kept = list(self.runs) if keep_runs else []
        self.project_path = Path(project) if project else None
        self.project_key = key or project_key(self.project_path)
        self.side_file = runs_side_file(project) if project else None
        if project and Path(project).resolve().parent == BUNDLED_PRESETS:
            self.side_file = None
            self.message.setText(
                "A bundled preset: its run list is not saved beside it; its runs are still "
                "listed from their folders."
            )
        self.model.replace_runs([])
        if self.side_file is not None and self.side_file.is_file():
            self._load_side_file(self.side_file)
        if kept:
            for run in kept:
                self.model.add_run(run)
                self._label(run, project=self.project_key)
            if self.side_file is not None:
                self._save_quietly(self.side_file)
        self._add_folder_runs()
        self._redraw_overlays()
        self._update_buttons()
        self.runs_changed.emit()

    def rebind(self) -> None:
        """List again (after All projects was ticked, or the folders changed)."""
        self.bind_project(self.project_path, key=self.project_key)

    def _add_folder_runs(self) -> None:
        """The runs under runs_dir of this project (of every project with All projects)."""
        if self.runs_dir is None:
            return
        listed = {run.folder for run in self.runs}
        busy = self.session.folder if self.session.is_running else None
        wanted = None if self.all_projects.isChecked() else self.project_key
        for result in list_runs(self.runs_dir, wanted):
            if str(result.folder) in listed or result.folder == busy or not result.history:
                continue  # listed already, training now, or ended before its first epoch
            name = result.name or (result.folder.name if result.folder else self._next_name())
            self.model.add_run(self._record(result.experiment, result.summary, result.history,
                                            result.folder, name))  # fmt: skip

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
