"""The main window: docks for layers, data, training settings, run controls, plots and log."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, QStandardPaths, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QKeySequence,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QSizePolicy,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from workbench.controllers.background_task import BackgroundTask
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.resources import icon_path, resources_dir
from workbench.ui.error_dialog import show_error
from workbench.ui.loading_view import LoadingView
from workbench.ui.project_document import ProjectDocument
from workbench.ui.recovery import RecoveryStore
from workbench.ui.theme import Theme
from workbench.ui.welcome import WelcomeBanner, forget_welcome_dismissal, welcome_dismissed

if TYPE_CHECKING:  # these load PyTorch: imported where used, after the frame is on screen
    from torch import nn

    from workbench.controllers.process_training_controller import ProcessTrainingController
    from workbench.controllers.training_controller import TrainingController
    from workbench.engine.devices import DeviceInfo
    from workbench.engine.reports import BatchReport, EpochReport, RunStarted
    from workbench.ui.diagnostics_dialog import DiagnosticsDialog

PRESETS_DIR = resources_dir() / "presets"
DEFAULT_PRESET = PRESETS_DIR / "digits-mlp.toml"
MAX_RECENT = 8
BATCH_DISPLAY_INTERVAL_MS = 200
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


def import_heavy_modules() -> None:
    """What the second building step needs, imported on a worker thread (PyTorch: ~2 s)."""
    import torch  # noqa: F401

    import workbench.controllers.training_controller
    import workbench.engine.model_builder  # noqa: F401


def default_runs_dir() -> Path:
    location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(location or Path.home() / ".local/share/torch-workbench") / "runs"


class MainWindow(QMainWindow):
    """Composes the panels around one ProjectDocument and one TrainingController.

    Built in two steps so that a user sees the window at once: the frame (title, size, a
    "Loading PyTorch…" page) needs only Qt; `finish_building()` imports PyTorch and adds the
    panels. `MainWindow()` does both; `MainWindow(deferred=True)` leaves the second step to
    `load_in_background()`, which imports PyTorch on a worker thread while the frame stays live.
    """

    ready = Signal()  # the panels are built: the window is fully usable
    load_failed = Signal(str)  # PyTorch could not be imported (the loading page says why)

    def __init__(
        self,
        settings: QSettings | None = None,
        devices: list[DeviceInfo] | None = None,
        runs_dir: Path | None = None,
        recovery_dir: Path | None = None,
        *,
        deferred: bool = False,
    ) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.settings = settings or QSettings()
        self.runs_dir = runs_dir or default_runs_dir()
        self.document = ProjectDocument(parent=self)
        self.recovery = RecoveryStore(self.document, recovery_dir, parent=self)
        self.is_ready = False
        self._loader: BackgroundTask | None = None  # imports PyTorch for a deferred window
        self._given_devices = devices
        self._needs_default_docks = False
        self.resize(1400, 900)
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        self.setWindowTitle("Torch Workbench")
        self.statusBar()  # made now: a status bar first made on a shown window stays hidden
        if deferred:
            self.loading_view = LoadingView()
            self.setCentralWidget(self.loading_view)
        else:
            self.finish_building()

    def load_in_background(self, then: Callable[[], None] | None = None) -> None:
        """Import PyTorch off the GUI thread, then build the panels and call THEN."""
        self._loader = loader = BackgroundTask(self)
        loader.succeeded.connect(lambda _result: self._loaded(then))
        loader.failed.connect(self.loading_view.show_failure)
        loader.failed.connect(self.load_failed)
        loader.run(import_heavy_modules)

    def _loaded(self, then: Callable[[], None] | None) -> None:
        # Building the panels holds the GUI thread for a second or two: say so first.
        self.loading_view.message.setText("Preparing the panels…")
        self.loading_view.message.repaint()
        self.finish_building()
        if then is not None:
            then()

    def finish_building(self) -> None:
        """The second step: everything that needs PyTorch (devices, controllers, panels)."""
        from workbench.controllers.process_training_controller import ProcessTrainingController
        from workbench.controllers.training_controller import TrainingController
        from workbench.engine.devices import available_devices

        given = self._given_devices
        self.devices = given if given is not None else available_devices()
        self.local_controller = TrainingController(self)
        self.process_controller = ProcessTrainingController(self)  # DDP runs through torchrun
        self.controller: TrainingController | ProcessTrainingController = self.local_controller
        self.last_run_dir: Path | None = None
        self.last_summary: dict[str, object] | None = None
        self.initial_weights: dict[str, Any] | None = None
        self._saving_project = False  # a Save As moves the run list to the new project
        self.theme: Theme | None = None
        self._build_panels()
        self._build_actions()
        self._build_menus()
        self._wire()
        self._restore_layout()
        self.setAcceptDrops(True)
        self._update_title()
        self.is_ready = True
        self.ready.emit()

    # ------------------------------------------------------------------ construction

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea, name: str) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_panels(self) -> None:
        from workbench.ui.checkpoint_editor import CheckpointEditor
        from workbench.ui.data_panel import DataPanel
        from workbench.ui.insight_panel import InsightPanel
        from workbench.ui.layer_stack_panel import LayerStackPanel
        from workbench.ui.log_view import LogView
        from workbench.ui.model_view import ModelView
        from workbench.ui.plots import PlotsPanel
        from workbench.ui.quantization_panel import QuantizationPanel
        from workbench.ui.run_panel import RunPanel
        from workbench.ui.runs_panel import RunsPanel
        from workbench.ui.training_panel import TrainingPanel

        self.layer_panel = LayerStackPanel(self.document)
        self.data_panel = DataPanel(self.document)
        self.training_panel = TrainingPanel(self.document, self.devices)
        self.run_panel = RunPanel()
        self.plots = PlotsPanel()
        self.log_view = LogView()
        self.model_view = ModelView(self.layer_panel.model)

        self.tabs = QTabWidget()
        self.tabs.setObjectName("mainTabs")
        self.tabs.addTab(self.plots, "&Training curves")
        self.insight_panel = InsightPanel(self.document, self.local_controller)
        self.tabs.addTab(self.insight_panel, "&Insight")
        self.tabs.addTab(self.model_view, "&Model")
        self.checkpoint_editor = CheckpointEditor(model_provider=self._current_model)
        self.tabs.addTab(self.checkpoint_editor, "&Checkpoint")
        self.quantization_panel = QuantizationPanel(self._trained_model)
        self.tabs.addTab(self.quantization_panel, "&Quantize")
        self.welcome = WelcomeBanner(self.settings)
        self.welcome.setVisible(not welcome_dismissed(self.settings))
        central = QWidget()
        box = QVBoxLayout(central)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.welcome)
        box.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        left = Qt.DockWidgetArea.LeftDockWidgetArea
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.layers_dock = self._dock("Layers", self.layer_panel, left, "layersDock")
        self.data_dock = self._dock("Data", self.data_panel, left, "dataDock")
        self.tabifyDockWidget(self.layers_dock, self.data_dock)
        self.layers_dock.raise_()
        self.run_panel.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.run_dock = self._dock(
            "Run", self.run_panel, Qt.DockWidgetArea.TopDockWidgetArea, "runDock"
        )
        self.settings_dock = self._dock(
            "Training settings", self.training_panel, right, "trainingDock"
        )
        self.log_dock = self._dock(
            "Log", self.log_view, Qt.DockWidgetArea.BottomDockWidgetArea, "logDock"
        )
        self.runs_panel = RunsPanel(self.plots, self.local_controller)
        self.runs_dock = self._dock(
            "Runs", self.runs_panel, Qt.DockWidgetArea.BottomDockWidgetArea, "runsDock"
        )
        self.tabifyDockWidget(self.log_dock, self.runs_dock)
        self.log_dock.raise_()

        self._pending_batches: list[BatchReport] = []
        self._batch_timer = QTimer(self)
        self._batch_timer.setSingleShot(True)
        self._batch_timer.setInterval(BATCH_DISPLAY_INTERVAL_MS)
        self._batch_timer.timeout.connect(self._flush_batches)

        self.memory_timer = QTimer(self)
        self.memory_timer.setInterval(2000)
        self.memory_timer.timeout.connect(self._update_status)
        self.memory_timer.start()

    def _action(
        self,
        text: str,
        slot: object,
        shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip or text.replace("&", ""))
        action.setToolTip(tip or text.replace("&", ""))
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        keys = QKeySequence.StandardKey
        self.new_action = self._action("&New", self.new_project, keys.New, "Start an empty project")
        self.open_action = self._action(
            "&Open…", self.open_project_dialog, keys.Open, "Open an experiment file"
        )
        self.save_action = self._action(
            "&Save", self.save_project, keys.Save, "Save the experiment file"
        )
        self.save_as_action = self._action("Save &As…", self.save_project_as, keys.SaveAs)
        self.open_checkpoint_action = self._action(
            "Open &Checkpoint…",
            self.open_checkpoint_dialog,
            "Ctrl+Shift+O",
            "Inspect a .pth/.safetensors file",
        )
        self.save_weights_action = self._action(
            "Save Model &Weights…", self.save_weights, None, "Save the trained model's state_dict"
        )
        self.load_weights_action = self._action(
            "&Load Weights into Stack…",
            self.load_weights,
            None,
            "Load a state_dict into the current stack",
        )
        self.open_run_folder_action = self._action("Open Run &Folder", self.open_run_folder)
        self.export_plots_action = self._action("&Export Plots…", self.export_plots)
        self.export_metrics_action = self._action("Export &Metrics CSV…", self.export_metrics)
        self.quit_action = self._action("&Quit", self.close, keys.Quit)
        self.undo_action = self.document.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence(keys.Undo))
        self.redo_action = self.document.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcut(QKeySequence(keys.Redo))
        self.train_action = self._action("&Train", self.start_training, "F5", "Start training (F5)")
        self.stop_action = self._action(
            "&Stop", self.stop_training, "Shift+F5", "Stop after this batch"
        )
        self.pause_action = self._action("&Pause / Resume", self.toggle_pause, "F6")
        self.step_action = self._action(
            "S&tep", self.step_training, "F10", "Run exactly one optimizer step"
        )
        for action, icon in (
            (self.new_action, "add"), (self.open_action, "open"), (self.save_action, "save"),
            (self.open_checkpoint_action, "open"),
            (self.train_action, "train"), (self.stop_action, "stop"), (self.pause_action, "pause"),
            (self.step_action, "step"),
        ):  # fmt: skip
            if icon is not None and icon_path(icon).is_file():
                action.setIcon(QIcon(str(icon_path(icon))))
        for action in (
            self.save_weights_action,
            self.open_run_folder_action,
            self.stop_action,
            self.pause_action,
        ):
            action.setEnabled(False)

    def _build_menus(self) -> None:
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolBar")
        for action in (self.new_action, self.open_action, self.save_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addAction(self.open_checkpoint_action)
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for action in (self.new_action, self.open_action):
            file_menu.addAction(action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.presets_menu = file_menu.addMenu("&Presets")
        for preset in sorted(PRESETS_DIR.glob("*.toml")):
            self.presets_menu.addAction(preset.stem, functools.partial(self.open_preset, preset))
        file_menu.addSeparator()
        for action in (self.save_action, self.save_as_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        for action in (self.open_checkpoint_action, self.save_weights_action, self.load_weights_action,
                       self.open_run_folder_action, self.export_plots_action, self.export_metrics_action):  # fmt: skip
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = bar.addMenu("&Edit")
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)
        run_menu = bar.addMenu("&Run")
        for action in (self.train_action, self.pause_action, self.step_action, self.stop_action):
            run_menu.addAction(action)
        self.view_menu = bar.addMenu("&View")
        for dock in (
            self.layers_dock,
            self.data_dock,
            self.run_dock,
            self.settings_dock,
            self.log_dock,
            self.runs_dock,
        ):
            self.view_menu.addAction(dock.toggleViewAction())
        self.view_menu.addSeparator()
        self.presentation_action = self._action(
            "&Presentation Mode",
            self.set_presentation_mode,
            "F11",
            "Larger fonts and lines for projectors",
        )
        self.presentation_action.setCheckable(True)
        self.dark_action = self._action(
            "&Dark Theme", self.set_dark_theme, None, "Dark or light colours"
        )
        self.dark_action.setCheckable(True)
        self.view_menu.addAction(self.presentation_action)
        self.view_menu.addAction(self.dark_action)
        self.help_menu = bar.addMenu("&Help")
        self.help_menu.addAction(self._action("&Diagnostics…", self.show_diagnostics))
        self.help_menu.addAction(self._action("Show &Welcome", self.show_welcome))
        self.help_menu.addAction(self._action("&About Torch Workbench", self.show_about))
        self._refresh_recent_menu()

    def _wire(self) -> None:
        document = self.document
        document.changed.connect(self._update_title)
        document.dirty_changed.connect(lambda _dirty: self._update_title())
        document.path_changed.connect(lambda _path: self._update_title())
        document.path_changed.connect(self._project_path_changed)
        document.changed.connect(self._update_train_allowed)
        document.layers_changed.connect(self._layers_changed)
        document.layers_changed.connect(self.checkpoint_editor.refresh_model_availability)
        self.checkpoint_editor.status_message.connect(self.statusBar().showMessage)
        self.layer_panel.validity_changed.connect(lambda *_: self._update_train_allowed())
        self.data_panel.input_shape_changed.connect(self.layer_panel.set_input_shape)

        self.welcome.train_requested.connect(self.start_training)
        self.welcome.open_checkpoint_requested.connect(self.open_checkpoint_dialog)
        self.welcome.quantize_requested.connect(self.show_quantization)
        self.run_panel.train_requested.connect(self.start_training)
        self.run_panel.stop_requested.connect(self.stop_training)
        self.run_panel.pause_requested.connect(self.toggle_pause)
        self.run_panel.resume_requested.connect(self.toggle_pause)
        self.run_panel.step_requested.connect(self.step_training)

        for controller in (self.local_controller, self.process_controller):
            controller.run_started.connect(self._on_run_started)
            controller.batches_reported.connect(self._queue_batches)
            controller.epoch_ended.connect(self._on_epoch_ended)
            controller.log_received.connect(self.log_view.add_log)
            controller.run_succeeded.connect(self._on_run_succeeded)
            controller.run_failed.connect(self._on_run_failed)
            controller.state_changed.connect(self._on_state_changed)

    # ------------------------------------------------------------------ projects

    def open_startup(self, file: Path | None) -> None:
        """First thing after start: a crash's recovery, else FILE, else the default preset."""
        pending = self.recovery.pending()
        if pending is not None and self._ask_restore():
            experiment, original = pending
            self.document.replace(experiment, original)
            self.document.undo_stack.resetClean()  # recovered edits are unsaved
        elif file is not None and file.suffix.lower() in CHECKPOINT_SUFFIXES:
            self.open_preset(DEFAULT_PRESET)
            self.open_checkpoint(file)
        elif file is not None:
            self.open_project(file)
        else:
            last = str(self.settings.value("lastProject", "", str) or "")
            if last and Path(last).is_file():
                self.open_project(Path(last))
            else:
                self.open_preset(DEFAULT_PRESET)
        self.recovery.start()

    def _ask_restore(self) -> bool:
        answer = QMessageBox.question(
            self,
            "Recover unsaved work?",
            "Torch Workbench did not close cleanly last time. Restore the unsaved project?",
        )
        if answer != QMessageBox.StandardButton.Yes:
            self.recovery.clear()
            return False
        return True

    def maybe_save(self) -> bool:
        """Ask before losing unsaved edits; False when the user cancels."""
        if not self.document.is_dirty:
            return True
        answer = QMessageBox.warning(
            self,
            "Unsaved changes",
            f"Save the changes to {self.document.title}?",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Save:
            return self.save_project()
        return answer == QMessageBox.StandardButton.Discard

    def new_project(self) -> None:
        if self.maybe_save():
            self.document.new()

    def open_project_dialog(self) -> None:
        if not self.maybe_save():
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Open experiment", "", "Experiment files (*.toml)"
        )
        if path:
            self.open_project(Path(path))

    def open_project(self, path: Path) -> bool:
        try:
            self.document.open(path)
        except WorkbenchError as exc:
            show_error(self, "Cannot open the project", str(exc))
            return False
        self._add_recent(path)
        self.settings.setValue("lastProject", str(path))
        return True

    def open_preset(self, path: Path) -> None:
        """A preset opens as an untitled copy, so saving never overwrites the bundled file."""
        if not self.maybe_save():
            return
        try:
            self.document.replace(load_experiment(path), None)
        except WorkbenchError as exc:
            show_error(self, "Cannot open the preset", str(exc))
            return
        self.preset_name = path.stem
        self._update_title()

    def save_project(self) -> bool:
        if self.document.path is None:
            return self.save_project_as()
        return self._save_to(self.document.path)

    def save_project_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save experiment", self.document.title, "Experiment files (*.toml)"
        )
        if not path:
            return False
        target = Path(path) if path.endswith(".toml") else Path(path + ".toml")
        return self._save_to(target)

    def _save_to(self, path: Path) -> bool:
        self._saving_project = True
        try:
            self.document.save(path)
        except OSError as exc:
            show_error(self, "Cannot save the project", f"{path}: {exc.strerror or exc}")
            return False
        finally:
            self._saving_project = False
        self._add_recent(path)
        self.settings.setValue("lastProject", str(path))
        self.statusBar().showMessage(f"Saved {path}", 4000)
        return True

    def _project_path_changed(self, path: str) -> None:
        """The run list follows the project file (`<project>.runs.json` beside it)."""
        self.runs_panel.bind_project(Path(path) if path else None, keep_runs=self._saving_project)

    def _recent_files(self) -> list[str]:
        value = self.settings.value("recentFiles", [], list)
        return [str(item) for item in value] if isinstance(value, list) else []

    def _add_recent(self, path: Path) -> None:
        files = [str(path)] + [item for item in self._recent_files() if item != str(path)]
        self.settings.setValue("recentFiles", files[:MAX_RECENT])
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self._recent_files()
        for item in files:
            self.recent_menu.addAction(item, functools.partial(self._open_recent, Path(item)))
        self.recent_menu.setEnabled(bool(files))

    def _open_recent(self, path: Path) -> None:
        if self.maybe_save():
            self.open_project(path)

    def _update_title(self) -> None:
        name = self.document.title
        if self.document.path is None and getattr(self, "preset_name", None):
            name = f"{self.preset_name} (preset)"
        self.setWindowTitle(f"{name}[*] — Torch Workbench")
        self.setWindowModified(self.document.is_dirty)

    # ------------------------------------------------------------------ training

    def train_problems(self) -> list[str]:
        problems = []
        ok, message = self.layer_panel.validity()
        if not ok:
            problems.append(message)
        problems.extend(self.training_panel.problems())
        return problems

    def _update_train_allowed(self) -> None:
        problems = self.train_problems()
        allowed = not problems and not self.controller.is_running
        self.run_panel.set_train_allowed(not problems, "\n".join(problems))
        self.train_action.setEnabled(allowed)
        self.step_action.setEnabled(not problems)

    def start_training(self, start_paused: bool = False) -> None:
        if self.controller.is_running:
            return
        problems = self.train_problems()
        if problems:
            show_error(self, "Cannot train yet", "\n".join(problems))
            return
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.last_run_dir = self.runs_dir / f"{self.document.title.removesuffix('.toml')}-{stamp}"
        self._pending_batches = []
        self.plots.reset(None)
        self.run_panel.reset(None)
        self.log_view.clear()
        experiment = self.document.experiment
        if experiment.train.ddp.enabled:
            self.controller = self.process_controller
            self.process_controller.start(experiment, out_dir=self.last_run_dir)
        else:
            self.controller = self.local_controller
            self.local_controller.start(
                experiment,
                out_dir=self.last_run_dir,
                start_paused=start_paused,
                initial_weights=self.initial_weights,
            )

    def stop_training(self) -> None:
        self.controller.stop()

    def step_training(self) -> None:
        """One optimizer step: of the running run, or of a new run that then waits paused."""
        if self.document.experiment.train.ddp.enabled and not self.controller.is_running:
            show_error(self, "Step", "Single steps need an in-process run; turn DDP off to step.")
            return
        if not self.controller.is_running:
            self.start_training(start_paused=True)
        if self.controller is self.local_controller:
            self.local_controller.step()

    def toggle_pause(self) -> None:
        controller = self.local_controller
        if self.controller is not controller:
            return
        if controller.state == "paused":
            controller.resume()
        elif controller.state == "running":
            controller.pause()

    def _queue_batches(self, reports: list[BatchReport]) -> None:
        """Batch reports reach the widgets at most 5 times a second: drawing is Python on the
        GUI thread, and every millisecond of it holds the GIL that the training thread needs."""
        self._pending_batches.extend(reports)
        if not self._batch_timer.isActive():
            self._batch_timer.start()

    def _flush_batches(self) -> None:
        self._batch_timer.stop()
        reports, self._pending_batches = self._pending_batches, []
        if reports:
            self.plots.add_batches(reports)
            self.run_panel.add_batches(reports)
            self.log_view.add_batches(reports)

    def _on_run_started(self, report: RunStarted) -> None:
        self.plots.reset(report)
        self.run_panel.reset(report)
        self.log_view.add_started(report)

    def _on_epoch_ended(self, report: EpochReport) -> None:
        self._flush_batches()
        self.plots.add_epoch(report)
        self.run_panel.add_epoch(report)
        self.log_view.add_epoch(report)

    def _on_run_succeeded(self, summary: dict[str, object]) -> None:
        self._flush_batches()
        self.last_summary = summary
        self.quantization_panel.refresh()
        self.log_view.add_summary(summary)
        self.run_panel.show_finished(summary)
        self.statusBar().showMessage(
            f"Run {summary.get('status')}: files in {self.last_run_dir}", 8000
        )

    def _on_run_failed(self, message: str) -> None:
        self._flush_batches()
        self.log_view.add_failure(message)
        self.run_panel.show_failed(message)
        show_error(self, "Training failed", message)

    def _on_state_changed(self, state: str) -> None:
        if state != "running":
            self._flush_batches()  # paused, stepped or ended: show every batch now
        self.run_panel.set_state(state)
        running = state != "idle"
        pausable = self.controller.supports_pause or not running
        self.run_panel.set_pausable(
            pausable, "A DDP run lives in other processes: it can stop, not pause"
        )
        self.stop_action.setEnabled(running)
        self.pause_action.setEnabled(running and pausable)
        trained = (
            self.controller is self.local_controller and self.local_controller.trainer is not None
        )
        self.save_weights_action.setEnabled(not running and trained)
        self.open_run_folder_action.setEnabled(
            self.last_run_dir is not None and self.last_run_dir.exists()
        )
        self._update_train_allowed()
        self._update_status()

    def _update_status(self) -> None:
        from workbench.engine.memory import memory_status_text

        trainer = (
            self.local_controller.trainer if self.controller is self.local_controller else None
        )
        device = (
            trainer.device_info.name
            if trainer is not None and hasattr(trainer, "device_info")
            else "—"
        )
        self.statusBar().showMessage(f"Device: {device} · {memory_status_text(device)}")

    # ------------------------------------------------------------------ weights and files

    def save_weights(self) -> None:
        trainer = self.local_controller.trainer
        if trainer is None or not hasattr(trainer, "model"):
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save model weights", "model.pth", "PyTorch weights (*.pth)"
        )
        if path:
            from workbench.engine.run_files import save_tensors

            save_tensors(trainer.model.state_dict(), Path(path))
            self.statusBar().showMessage(f"Saved weights to {path}", 4000)

    def load_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load weights", "", "Weights (*.pth *.pt *.safetensors)"
        )
        if path:
            self.load_weights_file(Path(path))

    def load_weights_file(self, path: Path) -> bool:
        """Load weights into the current stack (the next run starts from them), or explain the misfit."""
        from workbench.engine.weights import load_weights_for

        try:
            self.initial_weights = load_weights_for(self.document.experiment, path)
        except WorkbenchError as exc:
            show_error(self, "Cannot load the weights", str(exc))
            return False
        self.log_view.add_log(
            f"Loaded {len(self.initial_weights)} tensors from {path}; the next run starts from them"
        )
        self.quantization_panel.refresh()
        self.statusBar().showMessage(f"Loaded weights from {path}", 8000)
        return True

    def _layers_changed(self) -> None:
        if self.initial_weights is not None:
            self.initial_weights = None
            self.statusBar().showMessage(
                "The layer stack changed: loaded weights were set aside", 8000
            )

    def open_run_folder(self) -> None:
        if self.last_run_dir is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.last_run_dir)))

    def export_plots(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export plots", "plots.png", "PNG image (*.png);;SVG (*.svg)"
        )
        if path:
            (self.plots.export_svg if path.endswith(".svg") else self.plots.export_png)(Path(path))

    def export_metrics(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics", "metrics.csv", "CSV (*.csv)")
        if path:
            self.plots.export_csv(Path(path))

    def open_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open checkpoint", "", "Checkpoints (*.pth *.pt *.bin *.ckpt *.safetensors)"
        )
        if path:
            self.open_checkpoint(Path(path))

    def open_checkpoint(self, path: Path) -> None:
        """Open a .pth/.safetensors in the checkpoint editor tab (loaded off the GUI thread)."""
        self.tabs.setCurrentWidget(self.checkpoint_editor)
        self.checkpoint_editor.open_file(path)

    def _trained_model(self) -> tuple[Experiment, dict[str, Any] | None]:
        """What the quantization lab works on: the last finished run, else loaded weights."""
        trainer = self.local_controller.trainer
        if trainer is not None and not self.controller.is_running and trainer.history:
            return trainer.experiment, trainer.model.state_dict()
        return self.document.experiment, self.initial_weights

    def show_quantization(self) -> None:
        self.tabs.setCurrentWidget(self.quantization_panel)
        self.quantization_panel.refresh()

    def _current_model(self) -> nn.Module | None:
        """The current layer stack as a model, for the checkpoint editor's fit check."""
        from workbench.engine.model_builder import build_model

        ok, _ = self.layer_panel.validity()
        if not ok:
            return None
        return build_model(
            self.document.experiment.model, self.layer_panel.model.input_shape
        ).module

    # ------------------------------------------------------------------ drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        for url in event.mimeData().urls():
            path = Path(url.toLocalFile())
            if path.suffix.lower() in CHECKPOINT_SUFFIXES:
                self.open_checkpoint(path)
            elif path.suffix.lower() == ".toml" and self.maybe_save():
                self.open_project(path)
        event.acceptProposedAction()

    # ------------------------------------------------------------------ layout and closing

    def _restore_layout(self) -> None:
        state = self.settings.value("windowState")
        restored = state is not None and bool(self.restoreState(state))
        if not self.isVisible():
            self._needs_default_docks = not restored  # sized in showEvent
            return
        # Built after the frame was shown: Qt leaves widgets added to a shown window hidden.
        for widget in (self.menuBar(), self.centralWidget()):
            if widget is not None:
                widget.show()
        if not restored:
            for bar in (*self.findChildren(QDockWidget), *self.findChildren(QToolBar)):
                bar.show()
            self.layers_dock.raise_()
            self.log_dock.raise_()
            QTimer.singleShot(50, self._default_dock_sizes)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._needs_default_docks:  # sizes only make sense once the window has its size
            self._needs_default_docks = False
            QTimer.singleShot(50, self._default_dock_sizes)

    def _default_dock_sizes(self) -> None:
        """Plots get the middle; side panels just what their forms need."""
        horizontal, vertical = Qt.Orientation.Horizontal, Qt.Orientation.Vertical
        width = max(self.width(), 1200)
        self.resizeDocks(
            [self.layers_dock, self.run_dock], [int(width * 0.27), int(width * 0.25)], horizontal
        )
        self.resizeDocks([self.run_dock, self.log_dock], [110, 170], vertical)

    def _theme(self) -> Theme:
        if self.theme is None:
            app = QApplication.instance()
            assert isinstance(app, QApplication)
            self.theme = Theme(app)
        return self.theme

    def set_presentation_mode(self, enabled: bool) -> None:
        """For a teacher's projector: bigger fonts everywhere, thicker plot lines."""
        self._theme().set_presentation_mode(enabled)
        self.plots.set_presentation_mode(enabled)
        self.presentation_action.setChecked(enabled)

    def set_dark_theme(self, dark: bool) -> None:
        self._theme().apply(dark=dark)
        self.dark_action.setChecked(dark)

    def show_diagnostics(self) -> DiagnosticsDialog:
        """Help > Diagnostics: what this machine offers, with a Copy button for bug reports."""
        from workbench.ui.diagnostics_dialog import DiagnosticsDialog

        dialog = DiagnosticsDialog(self.devices, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def show_welcome(self) -> None:
        forget_welcome_dismissal(self.settings)
        self.welcome.show()

    def show_about(self) -> None:
        from workbench import __version__

        QMessageBox.about(
            self,
            "About Torch Workbench",
            f"Torch Workbench {__version__}\nTrain, inspect and quantize PyTorch models.",
        )

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.is_ready:  # still loading PyTorch: nothing to save or stop yet
            if self._loader is not None:
                self._loader.shutdown()
            event.accept()
            return
        if not self.maybe_save() or not self.checkpoint_editor.confirm_discard():
            event.ignore()
            return
        self.local_controller.shutdown()
        self.process_controller.shutdown()
        self.insight_panel.shutdown()
        self.checkpoint_editor.shutdown()
        self.quantization_panel.controller.shutdown()
        self.data_panel.shutdown()
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("windowState", self.saveState())
        self.recovery.clear()
        event.accept()
