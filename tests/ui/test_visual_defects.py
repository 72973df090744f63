"""Visual defects of issue 21: dark plots, legends off the data, distinct icons, status messages."""

from __future__ import annotations

import itertools

import pytest
from PySide6.QtWidgets import QApplication

from workbench.ui.main_window import MainWindow
from workbench.ui.qt import pg

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


def test_dark_theme_darkens_every_plot_and_light_brings_them_back(window: MainWindow) -> None:
    window.tabs.build_pending()  # every tab page, also those a new window builds when idle
    plots = window.findChildren(pg.PlotWidget)
    assert window.plots.loss_plot in plots and window.insight_panel.boundary.plot in plots
    window.set_dark_theme(True)
    for plot in plots:
        assert plot.backgroundBrush().color().lightness() < 60, plot.objectName()
    axis = window.plots.loss_plot.getAxis("left")
    assert axis.textPen().color().lightness() > 180
    window.set_dark_theme(False)
    for plot in plots:
        assert plot.backgroundBrush().color().lightness() > 240, plot.objectName()
    assert axis.textPen().color().lightness() < 60


def test_a_tab_page_built_after_the_dark_theme_is_dark(window: MainWindow) -> None:
    assert not window.is_built("insight_panel")  # the Insight tab has not been shown yet
    window.set_dark_theme(True)
    window.tabs.setCurrentIndex(window.tabs.indexOf(window.model_view) - 1)  # Insight: built now
    assert window.is_built("insight_panel")
    boundary = window.insight_panel.boundary.plot
    assert boundary.backgroundBrush().color().lightness() < 60
    assert boundary.getAxis("left").textPen().color().lightness() > 180
    window.set_dark_theme(False)


@pytest.mark.parametrize("presentation", [False, True])
def test_plot_legends_sit_above_the_data(window: MainWindow, presentation: bool) -> None:
    window.plots.set_presentation_mode(presentation)
    QApplication.processEvents()
    legends = 0
    for plot in window.plots.plots():
        legend = plot.plotItem.legend
        if legend is None:
            continue
        legends += 1
        data = plot.plotItem.vb.sceneBoundingRect()
        box = legend.sceneBoundingRect()
        assert box.bottom() <= data.top() + 1, plot.objectName()
        assert len(legend.items) >= 2
    assert legends == 3
    window.plots.set_presentation_mode(False)


def test_the_device_shows_from_the_start_and_messages_survive_the_memory_refresh(
    window: MainWindow,
) -> None:
    status = window.device_status
    assert status.text().startswith("Device: cpu · ")
    window.statusBar().showMessage("Saved the weights of run 1 to /tmp/w.pth", 8000)
    window._update_status()  # what the memory timer does every 2 s
    assert window.statusBar().currentMessage() == "Saved the weights of run 1 to /tmp/w.pth"
    assert status.text().startswith("Device: cpu · ")


def test_open_and_open_checkpoint_have_different_icons(window: MainWindow) -> None:
    open_icon = window.open_action.icon().pixmap(24, 24).toImage()
    checkpoint_icon = window.open_checkpoint_action.icon().pixmap(24, 24).toImage()
    assert not checkpoint_icon.isNull()
    assert open_icon != checkpoint_icon


def test_the_welcome_retires_when_the_first_run_starts(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    from workbench.ui.welcome import welcome_dismissed

    assert window.welcome.isVisible()
    window.document.update_train(epochs=1, device="cpu")
    with qtbot.waitSignal(window.session.run_ended, timeout=60_000):
        window.start_training()
    assert not window.welcome.isVisible()
    assert welcome_dismissed(window.settings)


def test_dialogs_name_the_project_as_the_title_bar_does(
    window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QMessageBox

    from workbench.ui.main_window import PRESETS_DIR

    asked: list[str] = []

    def answer(_parent: object, _title: str, text: str, *args: object) -> object:
        asked.append(text)
        return QMessageBox.StandardButton.Discard

    monkeypatch.setattr(QMessageBox, "warning", answer)
    window.open_preset(PRESETS_DIR / "mnist-cnn.toml")
    window.document.update_train(epochs=7)
    assert window.windowTitle().startswith("mnist-cnn (preset)")
    window.new_project()
    assert asked == ["Save the changes to mnist-cnn (preset)?"]
    assert window.windowTitle().startswith("Untitled")


def test_the_decision_boundary_view_fits_its_field(qtbot) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    from torch import nn

    from workbench.engine.insight.decision_boundary import decision_boundary
    from workbench.ui.insight.decision_boundary_view import DecisionBoundaryView

    view = DecisionBoundaryView()
    qtbot.addWidget(view)
    view.resize(600, 400)
    view.show()
    view.set_data(np.array([[-1.0, 0.0], [1.0, 0.0]]), np.array([0, 1]))
    grid = decision_boundary(nn.Linear(2, 2), (-2, 2), (-1, 1), 20)
    view.record_epoch(0, grid)
    (left, right), (bottom, top) = view.plot.getViewBox().viewRange()
    x0, y0, width, height = grid.extent
    assert (left, right) == pytest.approx((x0, x0 + width), abs=1e-6)
    assert (bottom, top) == pytest.approx((y0, y0 + height), abs=1e-6)


def test_digit_thumbnails_are_square_and_packed_in_rows(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    panel = window.data_panel
    window.data_dock.show()
    window.data_dock.raise_()
    qtbot.waitUntil(lambda: panel.image_layout.count() == 32, timeout=30_000)
    panel.resize(panel.width(), 1200)  # a tall dock: the rows must not spread over it
    QApplication.processEvents()
    tiles = [panel.image_layout.itemAt(i).widget() for i in range(panel.image_layout.count())]
    assert {(tile.width(), tile.height()) for tile in tiles} == {(40, 40)}
    assert {tile.pixmap().size().toTuple() for tile in tiles} == {(40, 40)}  # 8x8 digits, square
    rows = sorted({tile.y() for tile in tiles})
    assert len(rows) == 4
    assert all(b - a <= 48 for a, b in itertools.pairwise(rows)), rows
