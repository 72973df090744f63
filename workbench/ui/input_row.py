"""The Input row at the top of the layer stack: the data's sample shape, or one typed over it."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QWidget

from workbench.ui.layer_stack_model import LayerStackModel
from workbench.ui.widgets import named

PROBLEM_STYLE = "color: #b71c1c;"
HINT_STYLE = "color: #6a6a6a;"


class InputRow(QWidget):
    """`Input [1, 28, 28]`: empty shows the data's shape (inferred); typing a shape sets the
    model's input layer (model.input_shape, one undo step), clearing it goes back to the data's."""

    def __init__(self, model: LayerStackModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("inputRow")
        self.model = model
        title = QLabel("<b>Input</b>")
        title.setMinimumWidth(self.fontMetrics().horizontalAdvance("Input") + 12)
        self.edit = QLineEdit()
        named(
            self.edit,
            "inputShapeEdit",
            "The shape of one sample, e.g. 50 or 3, 32, 32; empty: the data's shape",
        )
        self.edit.setClearButtonEnabled(True)
        self.note = QLabel()
        self.note.setObjectName("inputShapeNote")
        self.note.setAccessibleName("inputShapeNote")
        self.note.setWordWrap(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.note, 2)
        self.edit.editingFinished.connect(self.commit)
        model.plan_changed.connect(lambda _plan: self.refresh())
        model.document.layers_lock_changed.connect(lambda reason: self.edit.setEnabled(not reason))
        self.refresh()

    def commit(self) -> None:
        """Apply what was typed (one undo step), unless it is what the model has already."""
        self.edit.setModified(False)
        typed = self.edit.text().strip()
        if typed != self._shown_text() and not self.model.set_input_text(typed):
            self.refresh()  # a refused shape: the model's edit_refused says why

    def refresh(self) -> None:
        """Show the model's own input shape (or the data's as the hint) and any mismatch."""
        if not self.edit.isModified():  # never overwrite what the user is typing
            self.edit.setText(self._shown_text())
        data = self.model.data_shape
        shown = ", ".join(str(size) for size in data) if data else ""
        self.edit.setPlaceholderText(shown or "the shape of one sample, e.g. 50")
        problem = self.model.input_problem()
        explicit = self.model.document.experiment.model.input_shape
        if problem:
            text, style = f"⚠ {problem}", PROBLEM_STYLE
        elif explicit is not None:
            text, style = "set here", HINT_STYLE
        else:
            text, style = "from the data", HINT_STYLE
        tokens = self.model.plan.input_dtype == "long"
        self.note.setText(text + (" · token ids" if tokens and not problem else ""))
        self.note.setStyleSheet(style)
        self.note.setToolTip(problem or "")

    def _shown_text(self) -> str:
        explicit = self.model.document.experiment.model.input_shape
        return "" if explicit is None else ", ".join(str(size) for size in explicit)
