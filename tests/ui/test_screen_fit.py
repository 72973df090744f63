"""The window fits a 1280x720 laptop and a 1366x768 one, in normal and presentation modes."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QApplication, QLabel, QScrollArea

from workbench.ui.main_window import PRESETS_DIR, MainWindow
from workbench.ui.screen_fit import ScrollingTabs, scale_for_lines
from workbench.ui.theme import PROJECTOR_SCALE

SCREENS = [(1280, 720), (1366, 768)]
PRESET_FILES = sorted(PRESETS_DIR.glob("*.toml"))


def test_every_preset_has_been_found() -> None:
    assert len(PRESET_FILES) >= 10


@pytest.mark.parametrize("presentation", [False, True], ids=["normal", "presentation"])
def test_minimum_size_fits_small_screens_with_every_preset(
    window: MainWindow, presentation: bool
) -> None:
    if presentation:  # the full projector scale, the largest any screen gets
        window.set_presentation_mode(True)
        window._theme().set_presentation_mode(True, PROJECTOR_SCALE)
    window.tabs.build_pending()  # every tab page, as a window has them once idle after start
    too_big = []
    for preset in PRESET_FILES:
        window.open_project(preset)
        QApplication.processEvents()
        hint = window.minimumSizeHint()
        for width, height in SCREENS:
            if hint.width() > width or hint.height() > height:
                too_big.append(f"{preset.stem}: {hint.width()}x{hint.height()} > {width}x{height}")
    window.set_presentation_mode(False)
    assert too_big == []


def test_side_panels_scroll_instead_of_growing_the_window(window: MainWindow) -> None:
    for dock in (window.layers_dock, window.data_dock, window.settings_dock, window.runs_dock):
        area = dock.widget()
        assert isinstance(area, QScrollArea), dock.objectName()
        assert area.widgetResizable()
    assert window.data_dock.widget().widget() is window.data_panel


def test_window_resizes_to_1280x720_without_growing(window: MainWindow) -> None:
    window.resize(1280, 720)
    QApplication.processEvents()
    assert window.width() <= 1280 and window.height() <= 720


def test_presentation_scale_follows_the_screen_height() -> None:
    assert scale_for_lines(1080) == pytest.approx(PROJECTOR_SCALE)
    assert scale_for_lines(2160) == pytest.approx(PROJECTOR_SCALE)
    assert scale_for_lines(768) < PROJECTOR_SCALE
    assert scale_for_lines(720) >= 1.25
    assert scale_for_lines(400) == pytest.approx(1.25)


def test_tab_pages_scroll_and_are_still_what_callers_see(window: MainWindow) -> None:
    tabs = window.tabs
    assert tabs.widget(0) is window.plots
    tabs.setCurrentWidget(window.quantization_panel)
    assert tabs.currentWidget() is window.quantization_panel
    assert tabs.indexOf(window.insight_panel) == 1
    area = window.insight_panel.parentWidget().parentWidget()
    assert isinstance(area, QScrollArea) and area.objectName().endswith("Scroll")


def test_a_laptop_screen_gets_one_side_column(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    from workbench.ui.screen_fit import is_compact

    assert is_compact(window)  # the offscreen screen is 800 px wide
    window._default_dock_sizes()
    left = Qt.DockWidgetArea.LeftDockWidgetArea
    assert window.dockWidgetArea(window.settings_dock) == left
    assert window.settings_dock in window.tabifiedDockWidgets(window.layers_dock)


def test_presentation_plots_scale_with_the_screen_too(window: MainWindow) -> None:
    from workbench.ui.plots import NORMAL_STYLE, PRESENTATION_STYLE, presentation_style

    assert presentation_style(1.0) == NORMAL_STYLE
    assert presentation_style(1.6) == PRESENTATION_STYLE
    window.set_presentation_mode(True)  # the offscreen screen is 800 lines: less than full size
    style = window.plots.plot_style
    assert NORMAL_STYLE.font_pt < style.font_pt < PRESENTATION_STYLE.font_pt
    window.set_presentation_mode(False)
    assert window.plots.plot_style == NORMAL_STYLE


def test_a_lazy_tab_is_built_once_when_first_needed(qtbot) -> None:  # type: ignore[no-untyped-def]
    tabs = ScrollingTabs()
    qtbot.addWidget(tabs)
    built: list[str] = []

    def page(name: str) -> QLabel:
        built.append(name)
        return QLabel(name)

    first = QLabel("first")
    tabs.addTab(first, "First")
    for name in ("second", "third", "fourth"):
        tabs.add_lazy_tab(name, name.title(), lambda name=name: page(name))
    tabs.show()
    assert built == [] and tabs.has_pending()
    assert tabs.indexOf(first) == 0 and built == []  # looking a page up builds nothing
    tabs.setCurrentIndex(2)  # shown: built
    assert built == ["third"]
    assert isinstance(tabs.currentWidget(), QLabel) and tabs.currentWidget().text() == "third"
    assert tabs.widget(1).text() == "second"  # asked for: built
    tabs.build_pending(limit=1)
    assert built == ["third", "second", "fourth"] and not tabs.has_pending()
    tabs.setCurrentIndex(3)
    tabs.build_pending()
    assert built == ["third", "second", "fourth"]  # once each
    assert tabs.widget(3).isVisible()
