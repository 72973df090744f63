"""Plot building blocks: growing columns, a whole-epoch axis, 1-2-5 ranges, a hover readout."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QFont

from workbench.ui.qt import pg

EMA_ALPHA = 0.1


class GrowingArray:
    """A float64 column that doubles its buffer when full: appends are amortised O(1) and
    `view()` hands pyqtgraph the filled part without copying."""

    def __init__(self, capacity: int = 1024) -> None:
        self._buffer = np.empty(max(1, capacity), dtype=np.float64)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def extend(self, values: Sequence[float] | np.ndarray) -> None:
        needed = self._size + len(values)
        if needed > len(self._buffer):
            grown = np.empty(max(needed, 2 * len(self._buffer)), dtype=np.float64)
            grown[: self._size] = self._buffer[: self._size]
            self._buffer = grown
        self._buffer[self._size : needed] = values
        self._size = needed

    def view(self) -> np.ndarray:
        return self._buffer[: self._size]

    def clear(self) -> None:
        self._size = 0


class EpochAxis(pg.AxisItem):  # type: ignore[misc]
    """An axis counting whole epochs: never a tick at 1.5 epochs."""

    def tickSpacing(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, float]]:
        levels: list[tuple[float, float]] = super().tickSpacing(minVal, maxVal, size)
        whole = [(spacing, offset) for spacing, offset in levels if spacing >= 1]
        return whole or [(1.0, 0.0)]


def nice_range(low: float, high: float) -> tuple[float, float]:
    """LOW..HIGH widened to a grid of 1, 2 or 5 times a power of ten, about 5 steps tall, and
    down to 0 when the values are all positive and 0 is within two steps (losses)."""
    span = high - low
    if not span > 0:
        span = abs(high) or 1.0
    raw = span / 5
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    bottom = math.floor(low / step) * step
    top = math.ceil(high / step) * step
    if top == bottom:
        top = bottom + step
    if 0 <= bottom <= 2 * step:
        bottom = 0.0
    return bottom, top


def optional(value: float | None, scale: float = 1.0) -> float:
    return math.nan if value is None else value * scale


def exponential_average(values: np.ndarray, previous: float) -> np.ndarray:
    """EMA that starts at the first finite value and steps over NaN/inf losses (a skipped
    fp16 step must not poison the smoothed line for the rest of the run)."""
    smoothed = np.empty(len(values), dtype=np.float64)
    current = previous
    for index, value in enumerate(values.tolist()):
        if math.isfinite(value):
            current = value if math.isnan(current) else current + EMA_ALPHA * (value - current)
        smoothed[index] = current
    return smoothed


class HoverReadout(QObject):
    """A vertical crosshair and a label with the values nearest the mouse."""

    def __init__(
        self, plot: pg.PlotWidget, describe: Callable[[float], tuple[float, float, str] | None]
    ) -> None:
        super().__init__(plot)
        self.plot = plot
        self.describe = describe
        self.line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#808080", width=1))
        self.label = pg.TextItem(
            color="#202020", fill=pg.mkBrush(255, 255, 255, 225), border=pg.mkPen("#a0a0a0")
        )
        for item in (self.line, self.label):
            item.setZValue(100)
            plot.addItem(item, ignoreBounds=True)
        self.hide()
        plot.scene().sigMouseMoved.connect(self.move_to)
        plot.installEventFilter(self)

    def hide(self) -> None:
        self.line.hide()
        self.label.hide()

    def text(self) -> str:
        return str(self.label.toPlainText()) if self.label.isVisible() else ""

    def move_to(self, scene_pos: QPointF) -> None:
        view = self.plot.plotItem.vb
        if not view.sceneBoundingRect().contains(scene_pos):
            self.hide()
            return
        mouse = view.mapSceneToView(scene_pos)
        found = self.describe(mouse.x())
        if found is None:
            self.hide()
            return
        x, _, text = found
        self.line.setPos(x)
        self.label.setText(text)
        (left, right), (bottom, top) = view.viewRange()
        # keep the label inside the view: anchor it on the side away from the nearer edge
        anchor_x = 1.0 if mouse.x() > (left + right) / 2 else 0.0
        anchor_y = 0.0 if mouse.y() > (bottom + top) / 2 else 1.0
        self.label.setAnchor((anchor_x, anchor_y))
        self.label.setPos(mouse.x(), mouse.y())
        self.line.show()
        self.label.show()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Leave:
            self.hide()
        return False


def resize_legend(legend: pg.LegendItem, point_size: int) -> None:
    """Re-add the entries: resizing labels in place leaves the rows as tall as before."""
    entries = [(sample.item, label.text) for sample, label in legend.items]
    legend.clear()
    legend.setLabelTextSize(f"{point_size}pt")
    for item, name in entries:
        legend.addItem(item, name)


def font_of_size(point_size: int) -> QFont:
    font = QFont()
    font.setPointSize(point_size)
    return font


def legend_above(plot: pg.PlotWidget) -> pg.LegendItem:
    """A one-row legend between the title and the data, where it can never cover a curve;
    curves given a `name` join it (it becomes the plot item's legend)."""
    item = plot.plotItem
    legend = pg.LegendItem(colCount=4, verSpacing=-6)
    item.layout.removeItem(item.getAxis("top"))  # its row, never shown, holds the legend
    item.layout.addItem(legend, 1, 1, alignment=Qt.AlignmentFlag.AlignHCenter)
    item.legend = legend
    return legend
