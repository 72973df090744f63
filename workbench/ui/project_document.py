"""The open project: the experiment being edited, its file, its unsaved state and its undo stack."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QUndoCommand, QUndoStack

from workbench.engine.experiment import (
    DataSpec,
    Experiment,
    LayerSpec,
    ModelSpec,
    TrainSpec,
    load_experiment,
    save_experiment,
)


class SetSectionCommand(QUndoCommand):
    """Replace the data or train section (one undo step per edit)."""

    def __init__(self, document: ProjectDocument, section: str, new: Any, text: str) -> None:
        super().__init__(text)
        self.document = document
        self.section = section
        self.old = getattr(document.experiment, section)
        self.new = new

    def redo(self) -> None:
        self.document._set_section(self.section, self.new)

    def undo(self) -> None:
        self.document._set_section(self.section, self.old)


class SetLayersCommand(QUndoCommand):
    """Replace the whole layer stack (used by every layer edit: add, remove, move, edit)."""

    def __init__(self, document: ProjectDocument, layers: tuple[LayerSpec, ...], text: str) -> None:
        super().__init__(text)
        self.document = document
        self.old = document.experiment.model.layers
        self.new = layers

    def redo(self) -> None:
        self.document._set_layers(self.new)

    def undo(self) -> None:
        self.document._set_layers(self.old)


class SetModelCommand(QUndoCommand):
    """Replace the whole model section (renames, inputs, the input layer's shape)."""

    def __init__(self, document: ProjectDocument, model: ModelSpec, text: str) -> None:
        super().__init__(text)
        self.document = document
        self.old = document.experiment.model
        self.new = model

    def redo(self) -> None:
        self.document._set_model(self.new)

    def undo(self) -> None:
        self.document._set_model(self.old)


class ProjectDocument(QObject):
    """Holds the Experiment; every edit goes through the undo stack and emits `changed`.

    While a run trains, its layers are locked (`lock_layers(reason)`): a layer edit is then
    refused with `edit_refused(reason)`, and undo/redo (which could change them) wait.
    """

    changed = Signal()
    layers_changed = Signal()
    path_changed = Signal(str)
    dirty_changed = Signal(bool)
    layers_lock_changed = Signal(str)  # why the layers are locked; "" once they are not
    edit_refused = Signal(str)  # a layer edit arrived while locked: why it was refused

    def __init__(self, experiment: Experiment | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._experiment = experiment or Experiment()
        self.path: Path | None = None
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._clean_changed)
        self.layers_locked = ""  # why the layer stack cannot be edited now ("" when it can)

    def _clean_changed(self, clean: bool) -> None:
        self.dirty_changed.emit(not clean)

    @property
    def experiment(self) -> Experiment:
        return self._experiment

    @property
    def is_dirty(self) -> bool:
        return not self.undo_stack.isClean()

    @property
    def title(self) -> str:
        return self.path.name if self.path else "Untitled"

    # edits (undoable) -------------------------------------------------------
    def set_data(self, data: DataSpec, text: str = "Change data settings") -> None:
        if data != self._experiment.data:
            self.undo_stack.push(SetSectionCommand(self, "data", data, text))

    def set_train(self, train: TrainSpec, text: str = "Change training settings") -> None:
        if train != self._experiment.train:
            self.undo_stack.push(SetSectionCommand(self, "train", train, text))

    def update_data(self, **changes: Any) -> None:
        self.set_data(dataclasses.replace(self._experiment.data, **changes))

    def update_train(self, **changes: Any) -> None:
        self.set_train(dataclasses.replace(self._experiment.train, **changes))

    def set_layers(self, layers: tuple[LayerSpec, ...], text: str) -> None:
        if self.layers_locked:
            self.edit_refused.emit(self.layers_locked)
            return
        if layers != self._experiment.model.layers:
            self.undo_stack.push(SetLayersCommand(self, tuple(layers), text))

    def set_model(self, model: ModelSpec, text: str) -> None:
        """Replace the model section (layers, names, inputs, input shape): one undo step,
        refused like a layer edit while the layers are locked."""
        if self.layers_locked:
            self.edit_refused.emit(self.layers_locked)
            return
        if model != self._experiment.model:
            self.undo_stack.push(SetModelCommand(self, model, text))

    def _set_model(self, model: ModelSpec) -> None:
        self._experiment = dataclasses.replace(self._experiment, model=model)
        self.layers_changed.emit()
        self.changed.emit()

    def _set_section(self, section: str, value: Any) -> None:
        self._experiment = dataclasses.replace(self._experiment, **{section: value})
        self.changed.emit()

    def _set_layers(self, layers: tuple[LayerSpec, ...]) -> None:
        model = dataclasses.replace(self._experiment.model, layers=layers)
        self._experiment = dataclasses.replace(self._experiment, model=model)
        self.layers_changed.emit()
        self.changed.emit()

    # the lock while a run trains ---------------------------------------------
    def lock_layers(self, reason: str) -> None:
        """Refuse layer edits (and undo/redo) until `unlock_layers()`, saying `reason`."""
        if reason != self.layers_locked:
            self.layers_locked = reason
            self.layers_lock_changed.emit(reason)

    def unlock_layers(self) -> None:
        self.lock_layers("")

    def undo_actions(
        self, parent: QObject, undo: str = "&Undo", redo: str = "&Redo"
    ) -> tuple[QAction, QAction]:
        """Undo and Redo actions that name the step they take ("Undo Add Linear") and rest
        while the layers are locked, since undoing could change them."""
        stack = self.undo_stack
        undo_action, redo_action = QAction(undo, parent), QAction(redo, parent)

        def update() -> None:
            if not all(shiboken6.isValid(item) for item in (stack, undo_action, redo_action)):
                return  # the window is being destroyed: its stack says goodbye
            free = not self.layers_locked
            undo_action.setEnabled(free and stack.canUndo())
            redo_action.setEnabled(free and stack.canRedo())
            undo_action.setText(f"{undo} {stack.undoText()}".rstrip())
            redo_action.setText(f"{redo} {stack.redoText()}".rstrip())

        undo_action.triggered.connect(lambda: None if self.layers_locked else stack.undo())
        redo_action.triggered.connect(lambda: None if self.layers_locked else stack.redo())
        for signal in (stack.indexChanged, stack.cleanChanged, self.layers_lock_changed):
            signal.connect(lambda *_: update())
        update()
        return undo_action, redo_action

    # whole-document operations ---------------------------------------------
    def replace(self, experiment: Experiment, path: Path | None) -> None:
        """Start over with another experiment (New, Open, a preset); clears undo history."""
        self._experiment = experiment
        self.path = path
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self.path_changed.emit(str(path) if path else "")
        self.layers_changed.emit()
        self.changed.emit()

    def open(self, path: Path) -> None:
        self.replace(load_experiment(path), path)

    def save(self, path: Path | None = None) -> Path:
        target = path or self.path
        if target is None:
            raise ValueError("no file name yet; use Save As")
        save_experiment(self._experiment, target)
        if target != self.path:
            self.path = target
            self.path_changed.emit(str(target))
        self.undo_stack.setClean()
        return target

    def new(self) -> None:
        self.replace(Experiment(model=ModelSpec(layers=())), None)
