"""Dark and light colours for every pyqtgraph plot in a window (backgrounds, axes, titles, legends)."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from workbench.ui.qt import pg

LIGHT_PLOTS = ("#FFFFFF", "#202020")  # background, foreground: as ui/qt.py configures pyqtgraph
DARK_PLOTS = ("#17181A", "#E8EAED")  # the dark palette's Base and Text colours
LEGEND_FILL = {False: (255, 255, 255, 210), True: (32, 33, 36, 210)}


def plot_colours(dark: bool) -> tuple[str, str]:
    return DARK_PLOTS if dark else LIGHT_PLOTS


def apply_plot_theme(root: QWidget, dark: bool) -> None:
    """Recolour every plot under ROOT, and make plots created later match."""
    background, foreground = plot_colours(dark)
    pg.setConfigOptions(background=background, foreground=foreground)
    for view in root.findChildren(pg.GraphicsView):
        view.setBackground(background)
        scene = view.scene()
        if scene is None:
            continue
        for item in scene.items():
            _recolour(item, foreground, dark)


def _recolour(item: object, foreground: str, dark: bool) -> None:
    if isinstance(item, pg.AxisItem):
        item.setPen(foreground)
        item.setTextPen(foreground)
    elif isinstance(item, pg.LabelItem):
        item.setAttr("color", foreground)
        item.setText(item.text)
    elif isinstance(item, pg.LegendItem):
        item.setLabelTextColor(foreground)
        item.setBrush(pg.mkBrush(*LEGEND_FILL[dark]))
