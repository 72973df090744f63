"""Fit the window to small screens: scrolling panels, a screen-sized window and projector scale."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QScreen
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget

from workbench.ui.theme import PROJECTOR_SCALE

SMALLEST_SCREEN = (1280, 720)  # the window's minimum size fits this, in every mode
PROJECTOR_LINES = 1080  # PROJECTOR_SCALE is for a screen this tall


def scrolled(widget: QWidget, name: str) -> QScrollArea:
    """`widget` in a frameless scroll area: the panel keeps its own layout and, where the
    screen is too small for it, scrolls instead of pushing the window past the screen."""
    area = QScrollArea()
    area.setObjectName(name)
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    return area


def screen_of(widget: QWidget) -> QScreen | None:
    return widget.screen() or QGuiApplication.primaryScreen()


def presentation_scale(screen: QScreen | None) -> float:
    """The projector font scale for SCREEN (see `scale_for_lines`)."""
    return (
        PROJECTOR_SCALE if screen is None else scale_for_lines(screen.availableGeometry().height())
    )


def scale_for_lines(lines: int) -> float:
    """Full projector scale on a screen 1080 lines tall or more, less on a smaller one so that
    the enlarged panels still fit (never below 1.25x)."""
    return round(max(1.25, min(PROJECTOR_SCALE, PROJECTOR_SCALE * lines / PROJECTOR_LINES)), 2)


def fit_to_screen(window: QWidget, width: int, height: int) -> None:
    """Resize WINDOW to width x height, or to the screen it is on where that is smaller."""
    screen = screen_of(window)
    if screen is not None:
        available = screen.availableGeometry()
        width, height = min(width, available.width()), min(height, available.height())
    window.resize(width, height)
