"""Inside the model: weight/gradient histograms per layer over epochs, gradient norms, filters."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.insight.model_probe import ModelProbe, filter_images, tile
from workbench.ui.insight.palette import class_colour
from workbench.ui.qt import pg

EARLIER_EPOCHS = 4  # faded outlines of the epochs before the one shown


def _histogram_plot(title: str, name: str) -> Any:
    plot = pg.PlotWidget(title=title)
    plot.setObjectName(name)
    plot.setMenuEnabled(False)
    plot.setLabel("left", "count")
    return plot


def _image_plot(title: str, name: str) -> tuple[Any, Any]:
    plot = pg.PlotWidget(title=title)
    plot.setObjectName(name)
    plot.setMenuEnabled(False)
    plot.setAspectLocked(True)
    plot.invertY(True)
    plot.hideAxis("left")
    plot.hideAxis("bottom")
    image = pg.ImageItem(axisOrder="row-major")
    plot.addItem(image)
    return plot, image


class ModelProbeView(QWidget):
    """Shows a ModelProbe: pick a parameter and an epoch; its weight and gradient histograms
    (with faded earlier epochs), gradient norms of every parameter over epochs (log scale), and
    for convolutional models the first layer's filters and feature maps of one sample."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelProbeView")
        self.setAccessibleName("modelProbeView")
        self.probe: ModelProbe | None = None
        self._stale = False  # set_probe came while hidden: draw at the next show
        self._build()

    def _build(self) -> None:
        self.parameter = QComboBox()
        self.parameter.setObjectName("probeParameterPicker")
        self.parameter.setAccessibleName("probeParameterPicker")
        self.parameter.currentIndexChanged.connect(lambda _i: self._draw_histograms())
        self.epoch = QSlider(Qt.Orientation.Horizontal)
        self.epoch.setObjectName("probeEpochSlider")
        self.epoch.valueChanged.connect(lambda _v: self._draw_histograms())
        self.epoch_label = QLabel("no epochs yet")
        self.epoch_label.setMinimumWidth(80)
        self.summary = QLabel()
        self.summary.setObjectName("probeSummary")
        self.summary.setWordWrap(True)
        self.weights = _histogram_plot("Weights", "weightHistogram")
        self.weights.setLabel("bottom", "value")
        self.gradients = _histogram_plot("Gradients (one validation batch)", "gradientHistogram")
        self.gradients.setLabel("bottom", "value")
        self.norms = pg.PlotWidget(title="Gradient norm per parameter")
        self.norms.setObjectName("gradientNormPlot")
        self.norms.setMenuEnabled(False)
        self.norms.setLogMode(y=True)
        self.norms.setLabel("bottom", "epoch")
        self.norms_legend = self.norms.addLegend(offset=(-8, 8), labelTextSize="8pt")
        self.norms_legend.setBrush(pg.mkBrush(255, 255, 255, 210))
        self.filters_plot, self.filters = _image_plot("First conv layer: filters", "filterImage")
        self.maps_plot, self.maps = _image_plot("Feature maps of one sample", "featureMapImage")
        self.filters_plot.hide()
        self.maps_plot.hide()

        controls = QHBoxLayout()
        controls.addWidget(QLabel("Parameter"))
        controls.addWidget(self.parameter, 1)
        controls.addWidget(QLabel("Epoch"))
        controls.addWidget(self.epoch, 1)
        controls.addWidget(self.epoch_label)
        grid = QGridLayout()
        grid.addWidget(self.weights, 0, 0)
        grid.addWidget(self.gradients, 0, 1)
        grid.addWidget(self.norms, 1, 0)
        images = QHBoxLayout()
        images.addWidget(self.filters_plot)
        images.addWidget(self.maps_plot)
        grid.addLayout(images, 1, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls)
        layout.addWidget(self.summary)
        layout.addLayout(grid, 1)

    # ------------------------------------------------------------------ API

    def set_probe(self, probe: ModelProbe) -> None:
        """Show the probe's snapshots (call again after each `probe.record`): the epoch slider
        jumps to the newest epoch, the chosen parameter is kept."""
        self.probe = probe
        chosen = self.parameter.currentText()
        names = probe.parameter_names
        self.parameter.blockSignals(True)
        self.parameter.clear()
        self.parameter.addItems(names)
        if chosen in names:
            self.parameter.setCurrentText(chosen)
        self.parameter.blockSignals(False)
        self.epoch.blockSignals(True)
        self.epoch.setRange(0, max(len(probe.snapshots) - 1, 0))
        self.epoch.setValue(self.epoch.maximum())
        self.epoch.blockSignals(False)
        self._draw_when_visible()

    def set_filters(self, filters: np.ndarray[Any, Any] | None) -> None:
        """First-layer conv weights [out, in, kh, kw] (None hides the panel)."""
        self.filters_plot.setVisible(filters is not None)
        if filters is not None:
            images = filter_images(filters)
            self.filters.setImage(_display(tile(images, symmetric=True)), levels=(0, 1))

    def set_feature_maps(self, maps: np.ndarray[Any, Any] | None) -> None:
        """A conv layer's output [channels, H, W] for one sample (None hides the panel)."""
        self.maps_plot.setVisible(maps is not None)
        if maps is not None:
            self.maps.setImage(_display(tile(maps)), levels=(0, 1))

    # ------------------------------------------------------------------ drawing

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._stale:
            self._draw_when_visible()

    def _draw_when_visible(self) -> None:
        """Drawing takes the GUI thread ~50 ms at each epoch's end, while a run trains: a hidden
        tab leaves it until it is shown."""
        self._stale = not self.isVisible()
        if not self._stale:
            self._draw_histograms()
            self._draw_norms()

    def _draw_histograms(self) -> None:
        self.weights.clear()
        self.gradients.clear()
        probe, name = self.probe, self.parameter.currentText()
        if probe is None or not probe.snapshots or not name:
            return
        position = min(self.epoch.value(), len(probe.snapshots) - 1)
        shown = probe.snapshots[position]
        self.epoch_label.setText(f"epoch {shown.epoch}")
        for age, snapshot in enumerate(
            reversed(probe.snapshots[max(0, position - EARLIER_EPOCHS) : position + 1])
        ):
            stats = snapshot.parameter(name)
            alpha = 255 if age == 0 else max(40, 150 - 30 * age)
            width = 2.5 if age == 0 else 1.2
            for plot, histogram in (
                (self.weights, stats.weights),
                (self.gradients, stats.gradients),
            ):
                if histogram is None:
                    continue
                colour = (0, 114, 178, alpha) if plot is self.weights else (213, 94, 0, alpha)
                curve = pg.PlotCurveItem(
                    histogram.edges, histogram.counts, stepMode="center",
                    fillLevel=0 if age == 0 else None,
                    brush=pg.mkBrush(*colour[:3], 60) if age == 0 else None,
                    pen=pg.mkPen(colour, width=width),
                )  # fmt: skip
                plot.addItem(curve)
        stats = shown.parameter(name)
        grad = "n/a" if stats.grad_norm is None else f"{stats.grad_norm:.3g}"
        dead = [a for a in shown.activations if a.dead_fraction > 0]
        dead_text = "; ".join(f"layer {a.layer} {a.type}: {a.dead_fraction:.0%} dead" for a in dead)
        self.summary.setText(
            f"{stats.layer}, shape {list(stats.shape)}: weight norm {stats.weight_norm:.3g}, "
            f"std {stats.weight_std:.3g}, gradient norm {grad}"
            + (f". {dead_text}" if dead_text else "")
        )

    def _draw_norms(self) -> None:
        self.norms.clear()
        self.norms_legend.clear()
        if self.probe is None:
            return
        curves = self.probe.grad_norm_curves()
        for index, (name, (epochs, norms)) in enumerate(curves.items()):
            if not name.endswith("weight"):
                continue  # biases crowd the plot; their histograms are still in the picker
            values = np.maximum(np.asarray(norms, dtype=np.float64), 1e-12)
            self.norms.plot(
                epochs, values, name=name, pen=pg.mkPen(class_colour(index // 2), width=2),
                symbol="o", symbolSize=5, symbolBrush=class_colour(index // 2),
            )  # fmt: skip


def _display(mosaic: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """NaN gaps between tiles become a light grey frame."""
    return np.where(np.isnan(mosaic), 0.85, mosaic)
