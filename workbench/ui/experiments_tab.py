"""The Experiments tab: define sweeps, queue and run them, compare their trials."""

from __future__ import annotations

import datetime
from pathlib import Path

from PySide6.QtCore import QItemSelection, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from workbench.controllers.sweep_controller import SweepController
from workbench.engine.devices import DeviceInfo
from workbench.engine.errors import WorkbenchError
from workbench.engine.reports import EpochReport
from workbench.engine.run_history import read_metrics
from workbench.engine.sweep import TrialResult, best_result
from workbench.engine.sweep_folder import read_sweep_folder
from workbench.engine.sweep_importance import parameter_importance
from workbench.engine.sweep_plan import SweepSpec, Trial
from workbench.ui.error_dialog import show_error
from workbench.ui.parallel_coordinates import ParallelCoordinatesPlot
from workbench.ui.project_document import ProjectDocument
from workbench.ui.sweep_form import SweepForm
from workbench.ui.sweep_insights import ImportanceView, TrialCurvesPlot
from workbench.ui.sweep_table_model import SweepSortProxy, SweepTableModel
from workbench.ui.widgets import named


def _button(text: str, name: str, tip: str) -> QPushButton:
    button = QPushButton(text)
    named(button, name, tip)
    return button


class ExperimentsTab(QWidget):
    """Sweeps from the form go to a queue the SweepController runs; the last sweep's trials fill
    the table, the parallel-coordinates plot, the importance bars and the curves.

    `open_project_requested(path)`: the user wants a trial's experiment.toml as a project.
    """

    open_project_requested = Signal(Path)

    def __init__(
        self,
        document: ProjectDocument,
        runs_dir: Path,
        devices: list[DeviceInfo] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("experimentsTab")
        self.runs_dir = runs_dir
        self.controller = SweepController(devices, self)
        self.form = SweepForm(document)
        self.model = SweepTableModel(self)
        self.proxy = SweepSortProxy(self.model, self)
        self.keys: tuple[str, ...] = ()
        self.folder: Path | None = None  # the shown sweep's folder
        self.histories: dict[int, tuple[EpochReport, ...]] = {}
        self._build()
        self._wire()
        self._update_queue()

    # ------------------------------------------------------------------ building

    def _build(self) -> None:
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self._left_column())
        splitter.addWidget(self._results_column())
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([320, 900])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

    def _left_column(self) -> QWidget:
        define = QGroupBox("Define a sweep")
        QVBoxLayout(define).addWidget(self.form)
        queue = QGroupBox("Queue")
        self.queue_list = QListWidget()
        named(self.queue_list, "sweepQueue", "Sweeps waiting to run, in order")
        self.queue_list.setMaximumHeight(90)
        self.run_button = _button("&Run", "runSweepsButton", "Run the queued sweeps")
        self.stop_button = _button(
            "S&top", "stopSweepButton", "Stop after the current batch; Run continues the queue"
        )
        self.remove_button = _button("Remo&ve", "removeSweepButton", "Take it off the queue")
        self.queue_state = QLabel()
        self.queue_state.setObjectName("sweepState")
        self.queue_state.setWordWrap(True)
        buttons = QHBoxLayout()
        for button in (self.run_button, self.stop_button, self.remove_button):
            buttons.addWidget(button)
        box = QVBoxLayout(queue)
        box.addWidget(self.queue_list)
        box.addLayout(buttons)
        box.addWidget(self.queue_state)
        column = QWidget()
        layout = QVBoxLayout(column)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(define)
        layout.addWidget(queue)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(column)
        scroll.setMinimumWidth(280)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        return scroll

    def _results_column(self) -> QWidget:
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter trials (any column)…")
        named(self.filter, "trialFilter", "Show the trials whose row contains this text")
        self.color_by = QComboBox()
        self.color_by.addItems(["val_accuracy", "val_loss"])
        named(self.color_by, "sweepColorBy", "The metric the plots and importance look at")
        self.open_button = _button(
            "&Open as project", "openTrialButton", "Open the trial's experiment as a new project"
        )
        self.open_sweep_button = _button(
            "Open s&weep…", "openSweepButton", "Show the trials of a sweep folder (sweep.json)"
        )
        tools = QHBoxLayout()
        tools.addWidget(self.open_sweep_button)
        tools.addWidget(self.filter, 1)
        tools.addWidget(QLabel("Metric:"))
        tools.addWidget(self.color_by)
        tools.addWidget(self.open_button)
        self.table = QTableView()
        named(self.table, "sweepTable", "The trials: click a header to sort, double-click to open")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.parallel = ParallelCoordinatesPlot()
        self.importance = ImportanceView()
        self.curves = TrialCurvesPlot()
        self.views = QTabWidget()
        self.views.setObjectName("sweepViews")
        self.views.addTab(self.parallel, "&Parallel coordinates")
        self.views.addTab(self.importance, "&Importance")
        self.views.addTab(self.curves, "Val &curves")
        top = QWidget()
        box = QVBoxLayout(top)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(tools)
        box.addWidget(self.table)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(self.views)
        splitter.setSizes([300, 400])
        return splitter

    def _wire(self) -> None:
        self.form.sweep_requested.connect(self.add_sweep)
        self.run_button.clicked.connect(self.controller.run)
        self.stop_button.clicked.connect(self.controller.stop)
        self.remove_button.clicked.connect(
            lambda: self.controller.remove(self.queue_list.currentRow())
        )
        self.open_button.clicked.connect(self.open_selected_trial)
        self.open_sweep_button.clicked.connect(self.open_sweep_dialog)
        self.table.doubleClicked.connect(lambda *_: self.open_selected_trial())
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.color_by.currentTextChanged.connect(lambda *_: self.refresh_views())
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        controller = self.controller
        controller.queue_changed.connect(self._update_queue)
        controller.state_changed.connect(lambda *_: self._update_queue())
        controller.sweep_started.connect(self._sweep_started)
        controller.trial_started.connect(self.model.mark_running)
        controller.trial_epoch_ended.connect(self._trial_epoch)
        controller.trial_finished.connect(self._trial_finished)
        controller.sweep_finished.connect(self._sweep_finished)
        controller.sweep_failed.connect(self._sweep_failed)

    # ------------------------------------------------------------------ the queue

    def add_sweep(self, spec: SweepSpec, trials: list[Trial]) -> None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        folder, number = self.runs_dir / "sweeps" / f"sweep-{stamp}", 1
        taken = {item.out_dir for item in self.controller.queue}
        while folder.exists() or folder in taken:
            number += 1
            folder = self.runs_dir / "sweeps" / f"sweep-{stamp}-{number}"
        self.controller.add(spec, folder, len(trials))

    def _update_queue(self) -> None:
        controller = self.controller
        self.queue_list.clear()
        self.queue_list.addItems([item.name for item in controller.queue])
        running = controller.is_running
        self.run_button.setEnabled(not running and bool(controller.queue))
        self.stop_button.setEnabled(running and controller.state == "running")
        self.remove_button.setEnabled(bool(controller.queue))
        if controller.current is not None:
            state = "stopping after this batch…" if controller.state == "stopping" else "running"
            self.queue_state.setText(f"{state}: {controller.current.name}")
        elif not self.queue_state.text() or running:
            self.queue_state.setText("Idle." if not controller.queue else "Ready: press Run.")

    # ------------------------------------------------------------------ a sweep's trials

    def _sweep_started(self, results: list[TrialResult]) -> None:
        current = self.controller.current
        assert current is not None
        self.keys, self.folder = current.spec.keys, current.out_dir
        self.histories = {}
        self.model.set_results(self.keys, results)
        for result in results:
            if result.finished:
                self._load_history(result)
        self.refresh_views()

    def open_sweep_dialog(self) -> None:
        start = self.runs_dir / "sweeps"
        folder = QFileDialog.getExistingDirectory(self, "Open a sweep folder", str(start))
        if folder:
            self.show_sweep(Path(folder))

    def show_sweep(self, folder: Path) -> bool:
        """Show a sweep folder's trials (a command-line sweep, an earlier window's)."""
        if self.controller.is_running:
            show_error(
                self, "Open sweep", "A sweep is running: its trials are shown until it ends."
            )
            return False
        try:
            sweep = read_sweep_folder(folder)
        except WorkbenchError as exc:
            show_error(self, "Cannot open the sweep", str(exc))
            return False
        self.keys, self.folder = sweep.keys, sweep.folder
        self.histories = {}
        self.model.set_results(self.keys, sweep.results)
        for result in sweep.results:
            self._load_history(result)
        done = sum(r.finished for r in sweep.results)
        self.queue_state.setText(f"Showing {folder}: {done} of {len(sweep.results)} trials done.")
        self.refresh_views()
        return True

    def _trial_epoch(self, number: int, report: EpochReport) -> None:
        self.model.mark_running(number, report)
        self.histories[number] = (*self.histories.get(number, ())[: report.epoch - 1], report)
        self._show_curves()

    def _trial_finished(self, result: TrialResult) -> None:
        self.model.update_result(result)
        self._load_history(result)
        self.refresh_views()

    def _load_history(self, result: TrialResult) -> None:
        if self.folder is None:
            return
        path = self.folder / result.trial.name / "metrics.csv"
        try:
            self.histories[result.trial.number] = read_metrics(
                path, result.trial.experiment.train.epochs
            )
        except WorkbenchError:
            self.histories.pop(result.trial.number, None)

    def _sweep_finished(self, results: list[TrialResult], stopped: bool) -> None:
        metric = self.color_by.currentText()
        best = best_result(results, metric)
        done = sum(r.finished for r in results)
        text = f"{'Stopped' if stopped else 'Finished'}: {done} of {len(results)} trials done"
        if best is not None:
            text += f"; best {metric}: trial {best.trial.number} ({best.trial.label()})"
        if stopped and done < len(results):
            text += ". Run continues it"
        self.queue_state.setText(text + f". Files in {self.folder}")

    def _sweep_failed(self, message: str) -> None:
        self.queue_state.setText(f"The sweep did not run: {message}")
        show_error(self, "The sweep did not run", message)

    # ------------------------------------------------------------------ views

    def results(self) -> list[TrialResult]:
        return list(self.model.results)

    def refresh_views(self) -> None:
        metric = self.color_by.currentText()
        results = self.results()
        self.parallel.set_trials(self.keys, results, metric)
        self.importance.set_importance(parameter_importance(results, self.keys, metric), metric)
        self.parallel.highlight(self.selected_numbers())
        self._show_curves()

    def selected_numbers(self) -> list[int]:
        rows = self.table.selectionModel().selectedRows()
        return [self.model.results[self.proxy.mapToSource(i).row()].trial.number for i in rows]

    def _selection_changed(self, *_: QItemSelection) -> None:
        self.parallel.highlight(self.selected_numbers())
        self._show_curves()

    def _show_curves(self) -> None:
        chosen = self.selected_numbers() or list(self.histories)
        labels = {r.trial.number: f"{r.trial.number}: {r.trial.label()}" for r in self.results()}
        histories = {n: self.histories[n] for n in chosen if n in self.histories}
        metric = self.color_by.currentText()
        self.curves.set_curves(histories, labels, metric)

    def open_selected_trial(self) -> None:
        numbers = self.selected_numbers()
        if not numbers or self.folder is None:
            show_error(self, "Open as project", "Select a trial in the table first.")
            return
        path = self.folder / f"trial-{numbers[0]:03d}" / "experiment.toml"
        if not path.is_file():
            show_error(
                self, "Open as project", f"{path}: not there yet; the trial has not started."
            )
            return
        self.open_project_requested.emit(path)

    def shutdown(self) -> bool:
        return self.controller.shutdown()
