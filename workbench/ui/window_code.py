"""The main window's model from code: File > Open Model Code…, the trust prompt before any import,
and the module tree shown where the layer stack is when a project names a module."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QFileDialog, QInputDialog, QMainWindow, QStackedWidget

from workbench.controllers.code_trust import TrustedCode
from workbench.engine.experiment import ModelSpec
from workbench.engine.model_source import model_candidates
from workbench.ui.error_dialog import show_error
from workbench.ui.project_document import ProjectDocument
from workbench.ui.trust_prompt import TrustGuard

if TYPE_CHECKING:  # these load PyTorch: the window imports them once the frame is shown
    from workbench.ui.layer_stack_panel import LayerStackPanel
    from workbench.ui.model_view import ModelView

LAYERS_TITLE, CODE_TITLE = "Layers", "Model code"


class CodeModelActions(QMainWindow):
    """The model-from-code half of MainWindow (a mixin: MainWindow builds what it uses)."""

    settings: QSettings
    document: ProjectDocument
    layer_panel: LayerStackPanel
    model_view: ModelView
    layers_dock: QDockWidget
    preset_name: str | None

    if TYPE_CHECKING:  # made by the other halves of MainWindow

        def may_leave_project(self) -> bool: ...
        def start_over(self) -> None: ...
        def _update_title(self) -> None: ...
        def _update_train_allowed(self) -> None: ...

    def _build_code_panel(self) -> QStackedWidget:
        """The trust store (its gate guards every import from now on), the module panel, and
        the pages the Layers dock switches between."""
        from workbench.ui.module_panel import ModulePanel

        self.code_trust = TrustedCode(self.settings, self)
        self.code_trust.install()
        self.trust_guard = TrustGuard(self.code_trust, self)
        self.module_panel = ModulePanel(self.document, self.trust_guard)
        self.model_pages = QStackedWidget()
        self.model_pages.setObjectName("modelPages")
        self.model_pages.addWidget(self.layer_panel)
        self.model_pages.addWidget(self.module_panel)
        self.open_model_code_action = QAction("Open &Model Code…", self)
        self.open_model_code_action.setStatusTip("Train your own nn.Module from a .py file")
        self.open_model_code_action.triggered.connect(self.open_model_code)
        return self.model_pages

    def _wire_code_panel(self) -> None:
        self.document.changed.connect(self._show_model_source)
        self.module_panel.validity_changed.connect(lambda *_: self._update_train_allowed())
        self.module_panel.rebuilt.connect(self._code_model_rebuilt)
        self._show_model_source()

    def model_validity(self) -> tuple[bool, str]:
        """Whether the model can be built: the module panel's word for a model from code."""
        if self.document.experiment.model.from_code:
            return self.module_panel.validity()
        return self.layer_panel.validity()

    def _show_model_source(self) -> None:
        """The module tree where the layer stack is, while the project names a module."""
        from_code = self.document.experiment.model.from_code
        page = self.module_panel if from_code else self.layer_panel
        if self.model_pages.currentWidget() is not page:
            self.model_pages.setCurrentWidget(page)
            self.layers_dock.setWindowTitle(CODE_TITLE if from_code else LAYERS_TITLE)
            self._update_train_allowed()

    def _code_model_rebuilt(self) -> None:
        panel = self.module_panel
        self.model_view.show_code_model(panel.built, panel.problem)

    # ------------------------------------------------------------------ File > Open Model Code

    def open_model_code(self) -> None:
        if not self.may_leave_project():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open model code", "", "Python files (*.py)")
        if path:
            self.open_model_code_file(Path(path))

    def open_model_code_file(self, path: Path, name: str | None = None) -> bool:
        """A new, unsaved project whose model is NAME (a class or factory) in the .py file,
        with the current data and training settings. Several candidates and no NAME: the user
        chooses. Nothing is imported before the trust prompt agrees."""
        candidates = model_candidates(path)
        if name is None:
            name = self._choose_model(path, candidates)
            if name is None:
                return False
        path = path.absolute()
        model = ModelSpec(module=f"{path}:{name}")
        experiment = dataclasses.replace(self.document.experiment, model=model)
        self.preset_name = None
        self.document.replace(experiment, None)
        self.document.undo_stack.resetClean()  # a new project: unsaved until saved
        self.start_over()
        self._update_title()
        return True

    def _choose_model(self, path: Path, candidates: list[str]) -> str | None:
        if not path.is_file():
            show_error(self, "Cannot open the model code", f"{path}: no such file")
            return None
        try:
            ast.parse(path.read_bytes(), filename=str(path))
        except (OSError, SyntaxError, ValueError) as exc:
            where = f", line {exc.lineno}" if isinstance(exc, SyntaxError) else ""
            reason = exc.msg if isinstance(exc, SyntaxError) else str(exc)
            show_error(self, "Cannot open the model code", f"{path}{where}: {reason}")
            return None
        if not candidates:
            show_error(
                self,
                "Cannot open the model code",
                f"{path} defines no class or function at its top level (or does not parse); "
                "name the nn.Module class, or a function that returns the model",
            )
            return None
        if len(candidates) == 1:
            return candidates[0]
        name, ok = QInputDialog.getItem(
            self, "Which model?", f"{path.name} defines several; build:", candidates, 0, False
        )
        return name if ok and name else None
