"""The decision boundary of a 2-D classifier behind its data, live and replayable by epoch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.insight.decision_boundary import BoundaryGrid, BoundaryHistory
from workbench.ui.insight.palette import class_colour, class_rgb
from workbench.ui.qt import pg

FIELD_STRENGTH = 0.55  # how strongly a fully confident cell takes its class colour


def grid_image(grid: BoundaryGrid) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """[rows, columns, 4] RGBA: each cell its class colour, paler where the model is unsure.

    Confidence runs from 1/classes (a coin toss: white) to 1 (full class tint), so the
    boundary shows as a pale band between the coloured regions.
    """
    classes = grid.classes.astype(np.int64)
    count = max(int(classes.max(initial=0)) + 1, 2)
    palette = np.array([class_rgb(i) for i in range(count)], dtype=np.float32)
    confidence = grid.confidence.astype(np.float32)
    chance = 1.0 / count
    strength = np.clip((confidence - chance) / (1.0 - chance), 0.0, 1.0)[..., None]
    strength = FIELD_STRENGTH * strength**0.5  # show the boundary band, not every small doubt
    rgb = 255.0 * (1.0 - strength) + palette[classes] * strength
    alpha = np.full((*classes.shape, 1), 255.0, dtype=np.float32)
    image: np.ndarray[Any, np.dtype[np.uint8]] = np.concatenate([rgb, alpha], axis=-1).astype(
        np.uint8
    )
    return image


class DecisionBoundaryView(QWidget):
    """A plot of the predicted class as a coloured field, with the training points (filled
    circles) and validation points (white-filled squares) on top, and an epoch slider.

    Drive it with `set_data` once per run, `set_grid` for live frames (every few batches) and
    `record_epoch` at each epoch end; the slider replays recorded epochs, and returning it to
    the right end ("live") follows training again.
    """

    epoch_shown = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("decisionBoundaryView")
        self.setAccessibleName("decisionBoundaryView")
        self.history = BoundaryHistory()
        self.class_names: tuple[str, ...] = ()
        self.current: BoundaryGrid | None = None
        self._build()

    def _build(self) -> None:
        self.plot = pg.PlotWidget()
        self.plot.setObjectName("decisionBoundaryPlot")
        self.plot.setAspectLocked(False)
        self.plot.showGrid(x=False, y=False)
        self.plot.setMenuEnabled(False)
        self.field = pg.ImageItem(axisOrder="row-major")
        self.field.setZValue(-10)
        self.plot.addItem(self.field)
        self.legend = self.plot.addLegend(offset=(-8, 8), labelTextSize="10pt")
        self.legend.setBrush(pg.mkBrush(255, 255, 255, 210))
        self.legend.setPen(pg.mkPen("#808080"))
        self.train_points: list[Any] = []
        self.val_points: list[Any] = []

        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("boundaryEpochSlider")
        self.slider.setAccessibleName("boundaryEpochSlider")
        self.slider.setToolTip("Replay how the boundary formed, epoch by epoch")
        self.slider.setEnabled(False)
        self.slider.valueChanged.connect(self._slider_moved)
        self.epoch_label = QLabel("no epochs yet")
        self.epoch_label.setMinimumWidth(110)
        self.follow = QCheckBox("Live")
        self.follow.setObjectName("boundaryLiveToggle")
        self.follow.setToolTip("Follow the training; untick to stay on the epoch chosen")
        self.follow.setChecked(True)
        self.follow.toggled.connect(self._follow_toggled)

        self.redraw_every = QSpinBox(minimum=1, maximum=10_000, value=10)
        self.redraw_every.setObjectName("boundaryRedrawEverySpin")
        self.redraw_every.setAccessibleName("Redraw the boundary every N steps")
        self.redraw_every.setPrefix("redraw every ")
        self.redraw_every.setSuffix(" steps")
        self.redraw_every.setToolTip(
            "While a run goes on, redraw the boundary every N optimizer steps (Step: every step)"
        )

        controls = QHBoxLayout()
        controls.setContentsMargins(6, 0, 6, 4)
        controls.addWidget(QLabel("Epoch"))
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.epoch_label)
        controls.addWidget(self.follow)
        controls.addWidget(self.redraw_every)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addLayout(controls)

    # ------------------------------------------------------------------ data

    def set_data(
        self,
        train_xy: np.ndarray[Any, Any],
        train_labels: np.ndarray[Any, Any],
        val_xy: np.ndarray[Any, Any] | None = None,
        val_labels: np.ndarray[Any, Any] | None = None,
        class_names: Sequence[str] = (),
    ) -> None:
        """The points to draw over the field; clears the recorded epochs of an earlier run."""
        for item in [*self.train_points, *self.val_points]:
            self.plot.removeItem(item)
        self.legend.clear()
        self.history.clear()
        self.current = None
        self.field.clear()
        train_labels = np.asarray(train_labels, dtype=np.int64).reshape(-1)
        val_labels = np.asarray(val_labels if val_labels is not None else [], dtype=np.int64)
        classes = int(max(train_labels.max(initial=-1), val_labels.max(initial=-1))) + 1
        self.class_names = tuple(class_names) or tuple(f"class {i}" for i in range(classes))
        self.train_points = self._scatter(np.asarray(train_xy), train_labels, training=True)
        self.val_points = []
        if val_xy is not None and len(val_labels):
            self.val_points = self._scatter(np.asarray(val_xy), val_labels, training=False)
        self._add_marker_legend()
        self._update_slider()
        self.plot.autoRange()

    def _scatter(
        self, xy: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], training: bool
    ) -> list[Any]:
        items = []
        for index in np.unique(labels):
            colour = class_colour(int(index))
            chosen = xy[labels == index]
            name = self.class_names[index] if index < len(self.class_names) else f"class {index}"
            if training:
                brush, pen, symbol, size = (
                    pg.mkBrush(colour),
                    pg.mkPen("#202020", width=0.8),
                    "o",
                    7,
                )
            else:
                brush, pen, symbol, size = pg.mkBrush("w"), pg.mkPen(colour, width=2.0), "s", 7
            item = pg.ScatterPlotItem(
                chosen[:, 0], chosen[:, 1], symbol=symbol, size=size, brush=brush, pen=pen,
                name=name if training else None,
            )  # fmt: skip
            self.plot.addItem(item)
            items.append(item)
        return items

    def _add_marker_legend(self) -> None:
        """One legend row per class (its colour), then what the two marker shapes mean."""
        grey = pg.mkPen("#404040", width=1.5)
        for symbol, brush, name in (
            ("o", pg.mkBrush("#404040"), "training points"),
            ("s", pg.mkBrush("w"), "validation points"),
        ):
            marker = pg.ScatterPlotItem([], [], symbol=symbol, size=7, brush=brush, pen=grey)
            self.legend.addItem(marker, name)
            self.val_points.append(marker)  # removed with the points on the next set_data

    # ------------------------------------------------------------------ grids

    def set_grid(
        self, grid: BoundaryGrid, extent: tuple[float, float, float, float] | None = None
    ) -> None:
        """Show a live frame (when following the training)."""
        if self.follow.isChecked():
            self._show(grid, extent)

    def record_epoch(self, epoch: int, grid: BoundaryGrid) -> None:
        """Keep the end-of-epoch grid for the replay slider (and show it when following)."""
        self.history.record(epoch, grid)
        self._update_slider()
        if self.follow.isChecked():
            self._show(grid)
            self._label(epoch)

    def show_epoch(self, epoch: int) -> None:
        """Show a recorded epoch and stop following the training."""
        if not len(self.history):
            return
        self.follow.setChecked(False)
        epochs = self.history.epochs
        self.slider.setValue(
            max(i for i, e in enumerate(epochs) if e <= epoch) if epoch >= epochs[0] else 0
        )

    def _show(
        self, grid: BoundaryGrid, extent: tuple[float, float, float, float] | None = None
    ) -> None:
        first = self.current is None
        self.current = grid
        left, bottom, width, height = extent or grid.extent
        self.field.setImage(grid_image(grid), autoLevels=False, levels=(0, 255))
        rect = QRectF(left, bottom, width, height)
        self.field.setRect(rect)
        if first:  # fit the view to the field (the data and its margin) once per run
            self.plot.getViewBox().setRange(rect, padding=0.0, disableAutoRange=True)

    def _update_slider(self) -> None:
        epochs = self.history.epochs
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(len(epochs) - 1, 0))
        if self.follow.isChecked():
            self.slider.setValue(self.slider.maximum())
        self.slider.blockSignals(False)
        self.slider.setEnabled(len(epochs) > 1)
        if not epochs:
            self.epoch_label.setText("no epochs yet")

    def _slider_moved(self, position: int) -> None:
        epochs = self.history.epochs
        if not epochs:
            return
        epoch = epochs[min(position, len(epochs) - 1)]
        if position < self.slider.maximum() and self.follow.isChecked():
            self.follow.blockSignals(True)
            self.follow.setChecked(False)
            self.follow.blockSignals(False)
        self._show(self.history.at(epoch))
        self._label(epoch)
        self.epoch_shown.emit(epoch)

    def _label(self, epoch: int) -> None:
        self.epoch_label.setText("before training" if epoch == 0 else f"epoch {epoch}")

    def _follow_toggled(self, following: bool) -> None:
        if following and len(self.history):
            self.slider.setValue(self.slider.maximum())

    @property
    def shown_epoch(self) -> int | None:
        epochs = self.history.epochs
        return epochs[self.slider.value()] if epochs else None
