"""Fit the window to small screens: scrolling panels, a screen-sized window and projector scale."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QScreen
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QMainWindow,
    QScrollArea,
    QTabWidget,
    QWidget,
)

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


COMPACT_BELOW = 1600  # screens narrower than this get one side column, not two


def is_compact(window: QWidget) -> bool:
    screen = screen_of(window)
    return screen is not None and screen.availableGeometry().width() < COMPACT_BELOW


def default_dock_sizes(window: QMainWindow, side: list[QDockWidget], bottom: QDockWidget,
                       top: QDockWidget) -> None:  # fmt: skip
    """Plots get the middle. On a laptop (`is_compact`) every side panel shares one column on
    the left, as tabs, so the plots keep two thirds of the width."""
    horizontal, vertical = Qt.Orientation.Horizontal, Qt.Orientation.Vertical
    width = max(window.width(), 1200)
    if is_compact(window):
        for dock in side[1:]:
            window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
            window.tabifyDockWidget(side[0], dock)
        side[0].raise_()
        needed = max(_panel_of(dock).minimumSizeHint().width() for dock in side)
        column = min(max(int(width * 0.30), needed + 24), int(width * 0.38))
        window.resizeDocks([side[0]], [column], horizontal)
        window.resizeDocks([top, bottom], [90, 120], vertical)
        return
    window.resizeDocks([side[0], top], [int(width * 0.27), int(width * 0.25)], horizontal)
    window.resizeDocks([top, bottom], [110, 170], vertical)


def _panel_of(dock: QDockWidget) -> QWidget:
    """The panel in DOCK, looking through the scroll area `scrolled` put around it."""
    area = dock.widget()
    inner = area.widget() if isinstance(area, QScrollArea) else None
    return inner or area


class ScrollingTabs(QTabWidget):
    """Tabs whose pages scroll when the window is smaller than a page needs, so the largest page
    never sets the window's minimum size. The pages are what callers see: `widget`,
    `currentWidget`, `setCurrentWidget` and `indexOf` look through the scroll areas.

    A page added with `add_lazy_tab` shows its tab at once but is built on first need: when it
    is shown, when `widget()` asks for it, or by `build_pending()` (the window builds the pages
    it does not show while idle after start-up, so that they do not delay a usable window)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._lazy: dict[str, QScrollArea] = {}  # every lazy tab's scroll area, by name
        self._builders: dict[QScrollArea, Callable[[], QWidget]] = {}  # those not built yet
        self.currentChanged.connect(self._build_at)

    def addTab(self, page: QWidget, label: str) -> int:  # type: ignore[override]
        return super().addTab(scrolled(page, f"{page.objectName() or 'page'}Scroll"), label)

    def insertTab(self, index: int, page: QWidget, label: str) -> int:  # type: ignore[override]
        area = scrolled(page, f"{page.objectName() or 'page'}Scroll")
        return super().insertTab(index, area, label)

    def add_lazy_tab(self, name: str, label: str, build: Callable[[], QWidget]) -> int:
        """A tab whose page BUILD makes on first need (NAME names its scroll area)."""
        area = self._lazy[name] = scrolled(QWidget(), f"{name}Scroll")
        self._builders[area] = build
        return super().addTab(area, label)

    def is_lazy(self, name: str) -> bool:
        return name in self._lazy

    def build(self, name: str) -> None:
        """Build the lazy tab NAME's page now, if it is not built yet."""
        self._build(self._lazy[name])

    def has_pending(self) -> bool:
        return bool(self._builders)

    def build_pending(self, limit: int | None = None) -> None:
        """Build the lazy pages not built yet (at most LIMIT of them), in tab order."""
        for index in range(self.count()):
            if limit is not None and limit <= 0:
                return
            if self._build_at(index):
                limit = None if limit is None else limit - 1

    def _build_at(self, index: int) -> bool:
        area = super().widget(index)
        return isinstance(area, QScrollArea) and self._build(area)

    def _build(self, area: QScrollArea) -> bool:
        build = self._builders.pop(area, None)
        if build is None:
            return False
        area.setWidget(build())  # the placeholder goes
        return True

    def widget(self, index: int) -> QWidget | None:  # type: ignore[override]
        self._build_at(index)
        return self._page(index)

    def _page(self, index: int) -> QWidget | None:
        area = super().widget(index)
        inner = area.widget() if isinstance(area, QScrollArea) else None
        return inner if inner is not None else area

    def currentWidget(self) -> QWidget | None:  # type: ignore[override]
        return self.widget(self.currentIndex())

    def indexOf(self, page: QWidget) -> int:
        for index in range(self.count()):
            if self._page(index) is page:  # a page not built yet cannot be PAGE: no need to build
                return index
        return super().indexOf(page)

    def setCurrentWidget(self, page: QWidget) -> None:
        index = self.indexOf(page)
        if index >= 0:
            self.setCurrentIndex(index)
