"""Parallel coordinates of a sweep: one polyline per trial over the swept keys and the metric."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QVBoxLayout, QWidget

from workbench.engine.sweep import TrialResult
from workbench.engine.sweep_importance import is_numeric, trial_metric
from workbench.ui.qt import pg
from workbench.ui.widgets import named

COLORMAP = "viridis"
MISSING = QColor(160, 160, 160)


def _label(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Axis:
    """One vertical axis: maps a column of values to 0..1 (log for numbers over a decade)."""

    def __init__(self, name: str, values: Sequence[Any]) -> None:
        self.name = name
        present = [v for v in values if v is not None]
        self.numeric = is_numeric(present)
        self.categories: list[str] = []
        if self.numeric and present:
            low, high = float(min(present)), float(max(present))
            self.log = low > 0 and high / low >= 10
            self.low, self.high = (math.log10(low), math.log10(high)) if self.log else (low, high)
            self.ends = (_label(min(present)), _label(max(present)))
        else:
            self.log = False
            for value in present:
                if str(value) not in self.categories:
                    self.categories.append(str(value))
            self.ends = (self.categories[0], self.categories[-1]) if self.categories else ("", "")

    def position(self, value: Any) -> float:
        if value is None:
            return math.nan
        if not self.numeric:
            count = len(self.categories)
            return 0.5 if count < 2 else self.categories.index(str(value)) / (count - 1)
        number = math.log10(value) if self.log else float(value)
        return 0.5 if self.high == self.low else (number - self.low) / (self.high - self.low)


class ParallelCoordinatesPlot(QWidget):
    """`set_trials(keys, results, metric)` draws the trials; `highlight(numbers)` thickens some.

    Each axis is titled with the key's last part (`lr` for `train.lr`), its ends labelled.

    Lines are coloured by the metric (viridis: dark is low, yellow is high); a trial with no
    value of the metric is grey and stops at the last swept key.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        named(self.plot, "parallelCoordinatesPlot", "Each line is a trial, coloured by the metric")
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self.axes: list[Axis] = []
        self.lines: dict[int, pg.PlotDataItem] = {}  # by trial number
        self.colors: dict[int, QColor] = {}

    def set_trials(self, keys: Sequence[str], results: Sequence[TrialResult], metric: str) -> None:
        self.plot.clear()
        self.lines, self.colors = {}, {}
        scores = [trial_metric(r, metric) for r in results]
        self.axes = [Axis(key, [r.trial.values.get(key) for r in results]) for key in keys]
        self.axes.append(Axis(metric, scores))
        self._draw_axes()
        known = [s for s in scores if s is not None]
        low, high = (min(known), max(known)) if known else (0.0, 1.0)
        cmap = pg.colormap.get(COLORMAP)
        for result, score in zip(results, scores, strict=True):
            values = [*(result.trial.values.get(key) for key in keys), score]
            y = np.array([axis.position(v) for axis, v in zip(self.axes, values, strict=True)])
            if score is None:
                color = MISSING
            else:
                share = 0.5 if high == low else (score - low) / (high - low)
                color = cmap.map(share, mode="qcolor")
            line = self.plot.plot(
                np.arange(len(y), dtype=float), y, pen=pg.mkPen(color, width=2), connect="finite"
            )
            line.setToolTip(f"trial {result.trial.number}: {result.trial.label()}")
            self.lines[result.trial.number] = line
            self.colors[result.trial.number] = color
        self.plot.setXRange(-0.45, len(self.axes) - 0.35, padding=0)
        self.plot.setYRange(-0.15, 1.15, padding=0)

    def _draw_axes(self) -> None:
        for x, axis in enumerate(self.axes):
            self.plot.addItem(pg.InfiniteLine(pos=x, angle=90, pen=pg.mkPen("#606060", width=1)))
            title = axis.name.rsplit(".", 1)[-1] + (" (log)" if axis.log else "")
            for text, y, anchor, bold in (
                (title, 1.13, (0.5, 0.5), True),
                (axis.ends[1], 1.0, (-0.05, 0.5), False),
                (axis.ends[0], 0.0, (-0.05, 0.5), False),
            ):
                item = pg.TextItem(text, color="#202020", anchor=anchor)
                if bold:
                    font = item.textItem.font()
                    font.setBold(True)
                    item.setFont(font)
                item.setPos(x, y)
                self.plot.addItem(item)

    def highlight(self, numbers: Sequence[int]) -> None:
        """Thicken the chosen trials' lines and fade the others (none chosen: all plain)."""
        chosen = set(numbers)
        for number, line in self.lines.items():
            color = QColor(self.colors[number])
            width = 4 if number in chosen else 2
            if chosen and number not in chosen:
                color.setAlpha(70)
            line.setPen(pg.mkPen(color, width=width))
            line.setZValue(1 if number in chosen else 0)
