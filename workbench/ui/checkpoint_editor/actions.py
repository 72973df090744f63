"""Toolbar actions of the checkpoint editor and the keys it claims from the window."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QToolBar


def make_action(
    parent: QObject, name: str, text: str, tip: str, slot: Callable[[], object]
) -> QAction:
    action = QAction(text, parent)
    action.setObjectName(name)
    action.setToolTip(tip)
    action.setStatusTip(tip)
    action.triggered.connect(lambda _checked=False: slot())
    return action


def make_toolbar(actions: list[QAction | None]) -> QToolBar:
    """Text buttons named after their actions (`renameKeysAction` -> `renameKeysButton`);
    None is a separator."""
    toolbar = QToolBar("Checkpoint")
    toolbar.setObjectName("checkpointToolbar")
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    for action in actions:
        if action is None:
            toolbar.addSeparator()
            continue
        toolbar.addAction(action)
        button = toolbar.widgetForAction(action)
        if button is not None:
            name = action.objectName().removesuffix("Action") + "Button"
            button.setObjectName(name)
            button.setAccessibleName(name)
    return toolbar


def is_undo(event: QKeyEvent) -> bool:
    return event.matches(QKeySequence.StandardKey.Undo)


def is_redo(event: QKeyEvent) -> bool:
    """The platform's Redo, and Ctrl+Shift+Z everywhere."""
    combo = event.keyCombination()
    ctrl_shift = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    return event.matches(QKeySequence.StandardKey.Redo) or (
        combo.key() == Qt.Key.Key_Z and combo.keyboardModifiers() == ctrl_shift
    )


def is_delete(event: QKeyEvent) -> bool:
    return event.matches(QKeySequence.StandardKey.Delete)
