"""The Model tab: the stack as `print(model)` shows it, the per-layer table and the total."""

from __future__ import annotations

import torch
from PySide6.QtGui import QFontDatabase, QShowEvent
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from workbench.engine.errors import ModelBuildError
from workbench.engine.experiment import ModelSpec
from workbench.engine.model_builder import BuiltModel, ModelPlan, build_model, summary_text
from workbench.ui.layer_stack_model import LayerStackModel

BuildKey = tuple[ModelSpec, tuple[int, ...], tuple[int | None, str | None]]


def build_quietly(
    spec: ModelSpec,
    input_shape: tuple[int, ...],
    data: tuple[int | None, str | None] = (None, None),
) -> BuiltModel:
    """Build with a fixed seed inside a forked RNG, so showing the model never changes a run;
    `data` is the data's (vocab_size, input_dtype), as `LayerStackModel.data_options` gives."""
    vocab_size, input_dtype = data
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build_model(spec, input_shape, vocab_size=vocab_size, input_dtype=input_dtype)


class ModelView(QWidget):
    """Follows a LayerStackModel; builds the real module only when the tab is visible (or asked)
    and only when the stack or input shape changed since the last build."""

    def __init__(self, stack: LayerStackModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelView")
        self.setAccessibleName("modelView")
        self.stack = stack
        self._built_key: BuildKey | None = None
        self._code: tuple[BuiltModel | None, str] = (None, "")  # a model from code, or why not
        self._stale = True
        self.status = QLabel()
        self.status.setObjectName("modelViewStatus")
        self.status.setWordWrap(True)
        self.text = QPlainTextEdit()
        self.text.setObjectName("modelSummary")
        self.text.setAccessibleName("modelSummary")
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.text, 1)
        stack.plan_changed.connect(self._plan_changed)
        self.status.hide()

    def summary(self) -> str:
        """The text the tab shows, brought up to date first."""
        self.refresh()
        return self.text.toPlainText()

    def refresh(self) -> None:
        """Show the current plan: the built model when it is sound, else the problem."""
        self._stale = False
        if self.stack.document.experiment.model.from_code:
            self._show_code()
            return
        plan = self.stack.plan
        if not plan.ok:
            self._show_problem(plan)
            return
        model = self.stack.document.experiment.model
        key: BuildKey = (model, plan.input_shape, self.stack.data_options)
        if key == self._built_key:
            return
        try:
            built = build_quietly(*key)
        except ModelBuildError as exc:  # planning and building agree; this is a safety net
            self._show_problem(plan, str(exc))
            return
        self._built_key = key
        self.status.hide()
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)  # columns stay aligned
        self.text.setPlainText(summary_text(built))

    def show_code_model(self, built: BuiltModel | None, problem: str) -> None:
        """The module panel built the model from code (it asks before importing), or says why
        not: this tab shows the same."""
        self._code = (built, problem)
        self._stale = True
        if self.isVisible():
            self.refresh()

    def _show_code(self) -> None:
        built, problem = self._code
        self._built_key = None
        if built is None:
            self._show_problem(None, problem or "The model code has not been imported yet")
            return
        self.status.hide()
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setPlainText(summary_text(built))

    def _show_problem(self, plan: ModelPlan | None, message: str = "") -> None:
        self._built_key = None
        text = message or str(plan.problem if plan is not None else "")
        self.status.setText("The model cannot be built yet:")
        self.status.setStyleSheet("color: #b71c1c; font-weight: bold;")
        self.status.show()
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.text.setPlainText(text)

    def _plan_changed(self, plan: object) -> None:
        self._stale = True
        if self.isVisible():
            self.refresh()

    def showEvent(self, event: QShowEvent) -> None:
        if self._stale:
            self.refresh()
        super().showEvent(event)
