"""The window's one current model, held where every panel that uses it can follow it."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from workbench.engine.current_model import CurrentModel


class CurrentModelHolder(QObject):
    """Holds the CurrentModel (a fresh initialisation, run N or a loaded file); `changed`
    tells the panels that use it (Save Model Weights, Quantize, Predict, Evaluate, the
    decision boundary) that another one took its place."""

    changed = Signal(object)  # CurrentModel

    def __init__(self, model: CurrentModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._model = model

    @property
    def model(self) -> CurrentModel:
        return self._model

    def set(self, model: CurrentModel) -> None:
        self._model = model
        self.changed.emit(model)
