"""The main window's current model: which one it is, and Save / Load Weights and files around it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QAction, QDesktopServices
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QMessageBox

from workbench.engine.errors import WorkbenchError
from workbench.ui.error_dialog import show_error
from workbench.ui.project_document import ProjectDocument
from workbench.ui.screen_fit import ScrollingTabs

if TYPE_CHECKING:  # these load PyTorch: the window imports them once the frame is shown
    from torch import nn

    from workbench.controllers.current_model import CurrentModelHolder
    from workbench.controllers.run_session import RunSession
    from workbench.engine.current_model import CurrentModel
    from workbench.engine.run_history import RunResult
    from workbench.ui.checkpoint_editor import CheckpointEditor
    from workbench.ui.insight.run_list import RunRecord
    from workbench.ui.insight_panel import InsightPanel
    from workbench.ui.layer_stack_panel import LayerStackPanel
    from workbench.ui.log_view import LogView
    from workbench.ui.plots import PlotsPanel
    from workbench.ui.quantization_panel import QuantizationPanel
    from workbench.ui.run_panel import RunPanel


class ModelActions(QMainWindow):
    """The current-model half of MainWindow (a mixin: MainWindow builds what it uses).

    The current model is one named thing, shown in the status bar and on the panels that use
    it: a fresh initialisation, run N (when a run ends) or a loaded file. When the layer stack
    no longer builds the model those weights were made for, the status bar says so and Save
    Model Weights asks before writing them.
    """

    document: ProjectDocument
    session: RunSession
    current: CurrentModelHolder
    layer_panel: LayerStackPanel
    insight_panel: InsightPanel
    quantization_panel: QuantizationPanel
    checkpoint_editor: CheckpointEditor
    plots: PlotsPanel
    log_view: LogView
    run_panel: RunPanel
    tabs: ScrollingTabs
    model_status: QLabel
    save_weights_action: QAction
    load_weights_action: QAction
    open_run_folder_action: QAction
    last_run_dir: Path | None
    last_result: RunResult | None
    initial_weights: dict[str, Any] | None

    if TYPE_CHECKING:  # made by the other halves of MainWindow

        def model_validity(self) -> tuple[bool, str]: ...
        def is_built(self, attribute: str) -> bool: ...

    def set_current_model(self, model: CurrentModel, followed: bool = False) -> None:
        """Make MODEL the one Save Model Weights, Quantize, Predict, Evaluate and the decision
        boundary use (`followed`: the insight tabs watched it train)."""
        self.current.set(model)
        if self.is_built("insight_panel"):  # else it shows the current model when built
            self.insight_panel.show_model(model, followed)
        self.update_model_actions()

    def start_over(self) -> None:
        """Another project: nothing of the previous one stays on screen, and its model goes."""
        from workbench.engine.current_model import CurrentModel

        self.plots.reset(None)
        self.run_panel.reset(None)
        self.log_view.clear()
        if self.is_built("quantization_panel"):
            self.quantization_panel.clear_report()
        self.initial_weights = None
        self.last_run_dir, self.last_result = None, None
        self.set_current_model(CurrentModel.fresh(self.document.experiment))

    def _run_recorded(self, record: RunRecord, result: RunResult) -> None:
        """A run of the session ended and was listed: its weights become the current model."""
        from workbench.engine.current_model import CurrentModel

        if result.succeeded and result.state_dict is not None:
            followed = not result.experiment.train.ddp.enabled
            self.set_current_model(CurrentModel.of_run(result, record.name), followed)

    def update_model_actions(self) -> None:
        model = self.current.model
        stale = not model.fits(self.document.experiment)
        text = f"Model: {model.description}"
        if stale:
            text += " (made for another layer stack)"
        self.model_status.setText(text)
        self.model_status.setToolTip(
            "The model that Save Model Weights, Quantize, Predict and Evaluate use"
            + ("; the layer stack has changed since, so it no longer builds it" if stale else "")
        )
        running = self.session.is_running
        self.save_weights_action.setEnabled(not running)
        self.load_weights_action.setEnabled(not running)
        self.save_weights_action.setStatusTip(f"Save the state_dict of {model.description}")
        folder = self.last_run_dir
        self.open_run_folder_action.setEnabled(
            not running and folder is not None and folder.exists()
        )

    def save_weights(self) -> None:
        model = self.current.model
        if not model.fits(self.document.experiment):
            answer = QMessageBox.question(
                self,
                "The layer stack has changed",
                f"The current model is {model.description}: it was made for another layer "
                f"stack than the one shown, and loading it into this stack would fail.\n\n"
                f"Save the weights of {model.name} anyway?",
            )
            if answer != QMessageBox.StandardButton.Yes:
                self.statusBar().showMessage("Nothing saved: the stack no longer fits", 8000)
                return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save model weights", "model.pth", "PyTorch weights (*.pth)"
        )
        if path:
            self.save_weights_file(Path(path))

    def save_weights_file(self, path: Path) -> bool:
        """Write the current model's state_dict (atomically)."""
        from workbench.engine.run_files import save_tensors

        model = self.current.model
        try:
            save_tensors(model.weights(), path)
        except (WorkbenchError, OSError) as exc:
            show_error(self, "Cannot save the weights", f"{path}: {exc}")
            return False
        self.statusBar().showMessage(f"Saved the weights of {model.description} to {path}", 8000)
        return True

    def load_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load weights", "", "Weights (*.pth *.pt *.safetensors)"
        )
        if path:
            self.load_weights_file(Path(path))

    def load_weights_file(self, path: Path) -> bool:
        """Load weights into the current stack: they become the current model, and the next
        run starts from them; or explain why they do not fit."""
        from workbench.engine.current_model import CurrentModel
        from workbench.engine.weights import load_weights_for

        if self.session.is_running:
            show_error(self, "Cannot load the weights", "Stop the run first: it trains its own.")
            return False
        experiment = self.document.experiment
        try:
            self.initial_weights = load_weights_for(experiment, path)
        except WorkbenchError as exc:
            show_error(self, "Cannot load the weights", str(exc))
            return False
        self.log_view.add_log(
            f"Loaded {len(self.initial_weights)} tensors from {path}; the next run starts from them"
        )
        self.set_current_model(CurrentModel.of_file(path, experiment, self.initial_weights))
        self.statusBar().showMessage(f"Loaded weights from {path}", 8000)
        return True

    def _experiment_changed(self) -> None:
        """A fresh initialisation follows the stack; other models may stop fitting it."""
        from workbench.engine.current_model import FRESH, CurrentModel

        if self.current.model.kind == FRESH:
            self.current.set(CurrentModel.fresh(self.document.experiment))
        self.update_model_actions()

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

    def show_quantization(self) -> None:
        self.tabs.setCurrentWidget(self.quantization_panel)
        self.quantization_panel.refresh()

    def _stack_model(self) -> nn.Module | None:
        """The current layer stack as a model, for the checkpoint editor's fit check."""
        from workbench.engine.model_builder import build_model

        ok, _ = self.model_validity()
        if not ok:
            return None
        stack = self.layer_panel.model
        vocab_size, input_dtype = stack.data_options
        model = self.document.experiment.model
        return build_model(
            model, stack.input_shape, vocab_size=vocab_size, input_dtype=input_dtype
        ).module
