"""The main window: docks for layers, data, training settings, run controls, plots and log."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, QStandardPaths, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QKeySequence,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QLabel,
    QMessageBox,
    QSizePolicy,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from workbench.controllers import jobs
from workbench.controllers.background_task import BackgroundTask
from workbench.engine.resources import icon_path
from workbench.ui.loading_view import LoadingView
from workbench.ui.project_document import ProjectDocument
from workbench.ui.recovery import RecoveryStore
from workbench.ui.screen_fit import (
    ScrollingTabs,
    default_dock_sizes,
    fit_to_screen,
    presentation_scale,
    screen_of,
    scrolled,
)
from workbench.ui.status_line import DeviceStatus
from workbench.ui.theme import Theme
from workbench.ui.welcome import WelcomeBanner, forget_welcome_dismissal, welcome_dismissed
from workbench.ui.window_code import CodeModelActions
from workbench.ui.window_experiments import ExperimentLab
from workbench.ui.window_model import ModelActions
from workbench.ui.window_profile_export import ProfileExportActions
from workbench.ui.window_projects import (
    CHECKPOINT_SUFFIXES,
    DEFAULT_PRESET,
    PRESETS_DIR,
    ProjectFiles,
)
from workbench.ui.window_training import RunControls

if TYPE_CHECKING:  # these load PyTorch: imported where used, after the frame is on screen
    from workbench.engine.devices import DeviceInfo
    from workbench.engine.run_history import RunResult
    from workbench.ui.diagnostics_dialog import DiagnosticsDialog

__all__ = ["DEFAULT_PRESET", "PRESETS_DIR", "MainWindow", "default_runs_dir"]


def import_heavy_modules() -> None:
    """What the second building step needs, imported on a worker thread (PyTorch: ~2 s)."""
    import torch  # noqa: F401

    import workbench.controllers.run_session
    import workbench.engine.model_builder  # noqa: F401


def prefetch_plotting() -> None:
    """Import pyqtgraph (no PyTorch in it) on the GUI thread while the worker imports PyTorch:
    the panels need it next, and doing it now takes it off the path to a usable window."""
    import workbench.ui.qt  # noqa: F401


def default_runs_dir() -> Path:
    location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(location or Path.home() / ".local/share/torch-workbench") / "runs"


class MainWindow(
    ProjectFiles, RunControls, ModelActions, CodeModelActions, ProfileExportActions, ExperimentLab
):
    """Composes the panels around one ProjectDocument, one RunSession and one current model.

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
        self.preset_name: str | None = None
        self._saving_project = False  # a Save As moves the run list to the new project
        self._loader: BackgroundTask | None = None  # imports PyTorch for a deferred window
        self._given_devices = devices
        self._needs_default_docks = False
        self._closed = False
        fit_to_screen(self, 1400, 900)
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
        QTimer.singleShot(0, prefetch_plotting)  # overlaps PyTorch's import on the worker

    def _loaded(self, then: Callable[[], None] | None) -> None:
        # Building the panels holds the GUI thread for a second or two: say so first.
        self.loading_view.message.setText("Preparing the panels…")
        self.loading_view.message.repaint()
        self.finish_building()
        if then is not None:
            then()
        QTimer.singleShot(0, self._build_hidden_pages)

    def finish_building(self) -> None:
        """The second step: everything that needs PyTorch (devices, controllers, panels)."""
        from workbench.controllers.current_model import CurrentModelHolder
        from workbench.controllers.run_session import RunSession
        from workbench.engine.current_model import CurrentModel
        from workbench.engine.devices import available_devices

        given = self._given_devices
        self.devices = given if given is not None else available_devices()
        self.session = RunSession(self)  # every run, in this process or through torchrun
        self.current = CurrentModelHolder(CurrentModel.fresh(self.document.experiment), self)
        self.last_run_dir: Path | None = None
        self.last_result: RunResult | None = None
        self.initial_weights: dict[str, Any] | None = (
            None  # loaded weights the next run starts from
        )
        self.theme: Theme | None = None
        self._build_panels()
        self._build_actions()
        self._build_menus()
        self._wire()
        from workbench.ui.window_transfer import TransferLearning

        self.transfer = TransferLearning(self)  # pretrained start, augmentation dock
        self._restore_layout()
        self.setAcceptDrops(True)
        self._update_title()
        self.update_model_actions()
        # PyTorch, Qt and the panels made objects that live as long as the window: taken out of
        # the garbage collector's view, a full collection mid-run no longer walks them all while
        # holding the GIL (a 300 ms stall of the window, measured by the GUI benchmark).
        gc.freeze()
        self.is_ready = True
        self.ready.emit()

    def _build_hidden_pages(self) -> None:
        """Build the tab pages not shown yet, one per turn of the event loop (input is handled
        in between), once the window is usable."""
        if self._closed:  # the window closed first (a start-up check, a quick quit)
            return
        self.tabs.build_pending(limit=1)
        if self.tabs.has_pending():
            QTimer.singleShot(0, self._build_hidden_pages)

    def _lazy_tab(self, attribute: str, label: str, build: Callable[[], QWidget]) -> None:
        """A tab whose page BUILD makes on first need (shown, or `self.ATTRIBUTE` asked for);
        BUILD sets `self.ATTRIBUTE` and connects the page; it gets the theme chosen so far."""

        def build_in_theme() -> QWidget:
            page = build()
            if self.theme is not None and self.theme.dark:
                self._recolour_plots(True, page)
            gc.freeze()  # the page lives as long as the window: see finish_building
            return page

        self.tabs.add_lazy_tab(attribute, label, build_in_theme)

    def __getattr__(self, name: str) -> Any:
        """A lazy tab's page (`_lazy_tab`), built now because it is asked for."""
        tabs = self.__dict__.get("tabs")  # not self.tabs: before it exists, that comes here
        if not isinstance(tabs, ScrollingTabs) or not tabs.is_lazy(name):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        tabs.build(name)
        return self.__dict__[name]

    def is_built(self, attribute: str) -> bool:
        """Whether a lazy tab's page exists (code that only updates a page can skip it)."""
        return attribute in self.__dict__

    # ------------------------------------------------------------------ construction

    def _dock(
        self, title: str, widget: QWidget, area: Qt.DockWidgetArea, name: str, scroll: bool = True
    ) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(scrolled(widget, f"{name}Scroll") if scroll else widget)  # small screens
        self.addDockWidget(area, dock)
        return dock

    def _build_panels(self) -> None:
        from workbench.ui.data_panel import DataPanel
        from workbench.ui.layer_stack_panel import LayerStackPanel
        from workbench.ui.log_view import LogView
        from workbench.ui.model_view import ModelView
        from workbench.ui.plots import PlotsPanel
        from workbench.ui.precision_speed import PrecisionSpeedCheck
        from workbench.ui.run_panel import RunPanel
        from workbench.ui.runs_panel import RunsPanel
        from workbench.ui.training_panel import TrainingPanel

        self.layer_panel = LayerStackPanel(self.document)
        self.data_panel = DataPanel(self.document)
        self.training_panel = TrainingPanel(self.document, self.devices)
        self.precision_speed = PrecisionSpeedCheck(
            self.settings, self.document, self.training_panel
        )
        self.run_panel = RunPanel()
        self.plots = PlotsPanel()
        self.log_view = LogView()
        self.model_view = ModelView(self.layer_panel.model)

        self.tabs = ScrollingTabs()  # a page larger than the screen scrolls
        self.tabs.setObjectName("mainTabs")
        self.tabs.addTab(self.plots, "&Training curves")
        self._lazy_tab("insight_panel", "&Insight", self._build_insight_panel)
        self.tabs.addTab(self.model_view, "&Model")
        self.tabs.addTab(self.layer_panel.diagram, "Gr&aph")
        self._lazy_tab("checkpoint_editor", "&Checkpoint", self._build_checkpoint_editor)
        self._lazy_tab("quantization_panel", "&Quantize", self._build_quantization_panel)
        self._lazy_tab("profile_panel", "&Profile", self.build_profile_tab)
        self._build_experiment_lab()
        self._lazy_tab("generate_panel", "&Generate", self._build_generate_panel)
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
        pages = self._build_code_panel()  # the layer stack, or the module tree of a model from code
        self.layers_dock = self._dock("Layers", pages, left, "layersDock")
        self.data_dock = self._dock("Data", self.data_panel, left, "dataDock")
        self.tabifyDockWidget(self.layers_dock, self.data_dock)
        self.layers_dock.raise_()
        self.run_panel.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.run_dock = self._dock(
            "Run", self.run_panel, Qt.DockWidgetArea.TopDockWidgetArea, "runDock", scroll=False
        )
        self.settings_dock = self._dock(
            "Training settings", self.training_panel, right, "trainingDock"
        )
        self.log_dock = self._dock(
            "Log", self.log_view, Qt.DockWidgetArea.BottomDockWidgetArea, "logDock"
        )
        self.runs_panel = RunsPanel(self.plots, self.session, self.runs_dir)
        self.runs_dock = self._dock(
            "Runs", self.runs_panel, Qt.DockWidgetArea.BottomDockWidgetArea, "runsDock"
        )
        self.tabifyDockWidget(self.log_dock, self.runs_dock)
        self.log_dock.raise_()

        self.model_status = QLabel()
        self.model_status.setObjectName("currentModelStatus")
        self.model_status.setAccessibleName("currentModelStatus")
        self.statusBar().addPermanentWidget(self.model_status)
        self.device_status = DeviceStatus(self.statusBar())  # messages keep the bar's left side
        self.memory_timer = QTimer(self)
        self.memory_timer.setInterval(2000)
        self.memory_timer.timeout.connect(self._update_status)
        self.memory_timer.start()
        self._update_status()

    # The pages of the tabs not shown at start (see _lazy_tab): each connects itself.

    def _build_insight_panel(self) -> QWidget:
        from workbench.ui.insight_panel import InsightPanel

        self.insight_panel = InsightPanel(self.document, self.session)
        self.insight_panel.show_model(self.current.model, False)
        return self.insight_panel

    def _build_checkpoint_editor(self) -> QWidget:
        from workbench.ui.checkpoint_editor import CheckpointEditor

        self.checkpoint_editor = editor = CheckpointEditor(model_provider=self._stack_model)
        self.document.layers_changed.connect(editor.refresh_model_availability)
        editor.status_message.connect(self.statusBar().showMessage)
        return editor

    def _build_quantization_panel(self) -> QWidget:
        from workbench.ui.quantization_panel import QuantizationPanel

        self.quantization_panel = QuantizationPanel(self.current)
        return self.quantization_panel

    def _build_generate_panel(self) -> QWidget:
        from workbench.ui.generate_panel import GeneratePanel

        self.generate_panel = GeneratePanel(self.current, self.session)
        return self.generate_panel

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
            "Save Model &Weights…", self.save_weights, None, "Save the current model's state_dict"
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
        self.undo_action, self.redo_action = self.document.undo_actions(self)
        self.undo_action.setShortcut(QKeySequence(keys.Undo))
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
            (self.open_checkpoint_action, "checkpoint"),
            (self.train_action, "train"), (self.stop_action, "stop"), (self.pause_action, "pause"),
            (self.step_action, "step"),
        ):  # fmt: skip
            if icon is not None and icon_path(icon).is_file():
                action.setIcon(QIcon(str(icon_path(icon))))
        for action in (self.open_run_folder_action, self.stop_action, self.pause_action):
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
        for action in (self.new_action, self.open_action, self.open_model_code_action):
            file_menu.addAction(action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.presets_menu = file_menu.addMenu("&Presets")
        self._preset_actions(self.presets_menu)
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
        self.add_profile_export_actions(file_menu, run_menu, toolbar)
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
        document.changed.connect(self._experiment_changed)
        document.layers_changed.connect(self._layers_changed)
        document.edit_refused.connect(self._edit_refused)
        self.layer_panel.stop_requested.connect(self.stop_training)
        self.layer_panel.validity_changed.connect(lambda *_: self._update_train_allowed())
        self.data_panel.input_shape_changed.connect(self.layer_panel.set_input_shape)
        self.data_panel.data_info_changed.connect(self.layer_panel.set_data_info)
        self.data_panel.loader.busy_changed.connect(lambda _busy: self._update_train_allowed())

        session_started = self.session.run_started
        session_started.connect(lambda _report: self.welcome.retire())  # Train found: enough
        self.welcome.train_requested.connect(self.start_training)
        self.welcome.open_checkpoint_requested.connect(self.open_checkpoint_dialog)
        self.welcome.quantize_requested.connect(self.show_quantization)
        self.run_panel.train_requested.connect(self.start_training)
        self.run_panel.stop_requested.connect(self.stop_training)
        self.run_panel.pause_requested.connect(self.toggle_pause)
        self.run_panel.resume_requested.connect(self.toggle_pause)
        self.run_panel.step_requested.connect(self.step_training)

        session = self.session
        session.run_started.connect(self._on_run_started)
        session.batches_reported.connect(self._show_batches)
        session.epoch_ended.connect(self._on_epoch_ended)
        session.log_received.connect(self.log_view.add_log)
        session.run_succeeded.connect(self._on_run_succeeded)
        session.run_failed.connect(self._on_run_failed)
        session.state_changed.connect(self._on_state_changed)
        session.run_ended.connect(self._on_run_ended)
        self._wire_experiment_lab()
        self.runs_panel.run_recorded.connect(self._run_recorded)
        self.runs_panel.resume_requested.connect(self.resume_run)
        self._wire_code_panel()

    def _update_status(self) -> None:
        started = self.session.last_started
        device = started.device if started is not None else self.training_panel.selected_device()
        self.device_status.show_device(str(getattr(device, "name", device)))

    # ------------------------------------------------------------------ drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        for url in event.mimeData().urls():
            path = Path(url.toLocalFile())
            if path.suffix.lower() in CHECKPOINT_SUFFIXES:
                self.open_checkpoint(path)
            elif path.suffix.lower() == ".toml" and self.may_leave_project():
                self.open_project(path)
            elif path.suffix.lower() == ".py" and self.may_leave_project():
                self.open_model_code_file(path)  # your own nn.Module, as File > Open Model Code
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
        """Plots get the middle; side panels just what their forms need (screen_fit)."""
        side = [self.layers_dock, self.data_dock, self.settings_dock]
        default_dock_sizes(self, side, self.log_dock, self.run_dock)

    def _theme(self) -> Theme:
        if self.theme is None:
            app = QApplication.instance()
            assert isinstance(app, QApplication)
            self.theme = Theme(app)
        return self.theme

    def set_presentation_mode(self, enabled: bool) -> None:
        """For a teacher's projector: bigger fonts everywhere, thicker plot lines."""
        scale = presentation_scale(screen_of(self))
        self._theme().set_presentation_mode(enabled, scale)
        self.plots.set_presentation_mode(enabled, scale)
        self._recolour_plots(self._theme().dark)
        self.presentation_action.setChecked(enabled)

    def set_dark_theme(self, dark: bool) -> None:
        self._theme().apply(dark=dark)
        self._recolour_plots(dark)
        self.dark_action.setChecked(dark)

    def _recolour_plots(self, dark: bool, root: QWidget | None = None) -> None:
        from workbench.ui.plot_theme import apply_plot_theme  # pyqtgraph: not before first show

        apply_plot_theme(root or self, dark)

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
        from workbench.ui.quit_prompt import confirm_quit_during_run, confirm_quit_during_sweep

        if not confirm_quit_during_run(self, self.session, self.last_run_dir):
            event.ignore()
            return
        sweeps = self.experiments_tab.controller if self.is_built("experiments_tab") else None
        if sweeps is not None and not confirm_quit_during_sweep(self, sweeps):
            event.ignore()
            return
        editor_keeps = (
            not self.is_built("checkpoint_editor") or self.checkpoint_editor.confirm_discard()
        )
        if not self.maybe_save() or not editor_keeps:
            event.ignore()
            return
        jobs.shutdown_all()  # stops runs, quantization and every background job, and waits
        self.code_trust.uninstall()
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("windowState", self.saveState())
        self.recovery.clear()
        self._closed = True
        event.accept()
