"""Small helpers every panel uses, so panels need not import each other."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget


def named(widget: QWidget, name: str, tooltip: str) -> QWidget:
    """Give a control its stable objectName, accessible name and tooltip (DESIGN.md 3.4)."""
    widget.setObjectName(name)
    widget.setAccessibleName(name)
    widget.setToolTip(tooltip)
    return widget
