"""The main window's Profile tab and File > Export Model…, around the one current model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu, QToolBar

from workbench.engine.resources import icon_path
from workbench.ui.project_document import ProjectDocument
from workbench.ui.screen_fit import ScrollingTabs

if TYPE_CHECKING:  # these load PyTorch: the window imports them once the frame is shown
    from workbench.controllers.current_model import CurrentModelHolder
    from workbench.controllers.run_session import RunSession
    from workbench.ui.export_dialog import ExportDialog
    from workbench.ui.layer_stack_panel import LayerStackPanel
    from workbench.ui.profile_panel import ProfilePanel, ProfileSource


class ProfileExportActions(QMainWindow):
    """Profile (Run menu, toolbar, Ctrl+Shift+P) and File > Export Model… (a mixin of
    MainWindow, which builds what it uses)."""

    document: ProjectDocument
    session: RunSession
    current: CurrentModelHolder
    layer_panel: LayerStackPanel
    layers_dock: QDockWidget
    tabs: ScrollingTabs
    profile_panel: ProfilePanel
    profile_action: QAction
    export_model_action: QAction
    export_dialog: ExportDialog | None
    model_validity: Callable[[], tuple[bool, str]]

    def build_profile_tab(self) -> ProfilePanel:
        """The Profile tab's page (MainWindow builds it on first need)."""
        from workbench.ui.profile_panel import ProfilePanel

        self.profile_panel = ProfilePanel(self.profile_source)
        self.profile_panel.hottest_found.connect(self.mark_hottest_layer)
        self.document.layers_changed.connect(self.profile_panel.clear)
        return self.profile_panel

    def add_profile_export_actions(self, file_menu: QMenu, run_menu: QMenu, bar: QToolBar) -> None:
        self.export_dialog = None
        self.profile_action = QAction("&Profile Training Step", self)
        self.profile_action.setShortcut(QKeySequence("Ctrl+Shift+P"))
        tip = "Time each layer's forward and backward in a training step of the current model"
        self.profile_action.setStatusTip(tip)
        self.profile_action.setToolTip(tip + " (Ctrl+Shift+P)")
        self.profile_action.triggered.connect(self.profile_current_model)
        if icon_path("profile").is_file():
            self.profile_action.setIcon(QIcon(str(icon_path("profile"))))
        self.export_model_action = QAction("Export &Model…", self)
        self.export_model_action.setStatusTip(
            "Write the current model as ONNX, .pt2 or TorchScript"
        )
        self.export_model_action.triggered.connect(self.show_export_dialog)
        file_menu.addAction(self.export_model_action)
        run_menu.addSeparator()
        run_menu.addAction(self.profile_action)
        bar.addAction(self.profile_action)

    def profile_source(self) -> ProfileSource:
        """The project's model with the current model's weights; a fresh initialisation of the
        stack where the current model no longer fits it."""
        from workbench.engine.current_model import CurrentModel
        from workbench.ui.profile_panel import ProfileSource

        model, experiment = self.current.model, self.document.experiment
        if model.fits(experiment):
            return ProfileSource(experiment, model.weights(), model.description)
        fresh = CurrentModel.fresh(experiment).weights()
        name = f"the layer stack, freshly initialised ({model.description} no longer fits it)"
        return ProfileSource(experiment, fresh, name)

    def profile_current_model(self) -> bool:
        """Show the Profile tab and profile the current model in the background."""
        self.tabs.setCurrentWidget(self.profile_panel)
        if self.session.is_running:
            self.profile_panel.status.setText(
                "Stop the run first: profiling times training steps of its own."
            )
            return False
        ok, why = self.model_validity()
        if not ok:
            self.profile_panel.status.setText(f"The model does not build: {why}")
            return False
        return self.profile_panel.start_profile()

    def mark_hottest_layer(self, name: str) -> None:
        """Select the hottest layer's row (its top-level layer) in the layer stack."""
        plan = self.layer_panel.model.plan
        row = plan.row_named(name.split(".")[0]) if plan is not None else None
        if row is None:
            return
        self.layer_panel.select_row(row.index)
        self.layers_dock.raise_()
        self.statusBar().showMessage(f"Hottest layer: {name} (row {row.index + 1} of the stack)")

    def show_export_dialog(self) -> ExportDialog:
        """File > Export Model…: the current model, exported and checked in the background."""
        from workbench.ui.export_dialog import ExportDialog

        if self.export_dialog is not None and self.export_dialog.isVisible():
            self.export_dialog.raise_()  # one dialog at a time: it names the model it exports
            return self.export_dialog
        model = self.current.model
        folder = self.document.path.parent if self.document.path else Path.home()
        dialog = ExportDialog(model.experiment, model.weights(), model.description, folder, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.destroyed.connect(lambda _object=None: self._forget_export_dialog(dialog))
        self.current.changed.connect(dialog.follow)
        self.export_dialog = dialog
        dialog.show()
        return dialog

    def _forget_export_dialog(self, dialog: ExportDialog) -> None:
        if self.export_dialog is dialog:
            self.export_dialog = None
