"""Live training plots: loss per batch, loss and accuracy per epoch, learning rate; hover, export."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QFont, QFontMetrics
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QMessageBox,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.reports import BatchReport, EpochReport, RunStarted
from workbench.ui import plot_export
from workbench.ui.plot_export import BATCH_COLUMNS, EPOCH_COLUMNS
from workbench.ui.plot_parts import (
    EMA_ALPHA,
    EpochAxis,
    GrowingArray,
    HoverReadout,
    exponential_average,
    font_of_size,
    legend_above,
    nice_range,
    optional,
    resize_legend,
)
from workbench.ui.qt import pg

REDRAW_INTERVAL_MS = 200  # per-batch loss curve: at most 5 redraws a second
WIDEST = "0.0005"  # the widest y tick label that the plots make room for (longer ones overhang)

# Okabe-Ito: distinguishable with every common colour-vision deficiency and in greyscale print.
BLUE = "#0072B2"
VERMILLION = "#D55E00"
SKY_BLUE = "#56B4E9"
GREEN = "#009E73"
ORANGE = "#E69F00"
PURPLE = "#CC79A7"
OVERLAY_COLOURS = (ORANGE, PURPLE, GREEN, "#000000")


@dataclass(frozen=True)
class PlotStyle:
    font_pt: int
    title_pt: int
    line_width: float
    symbol_size: int


NORMAL_STYLE = PlotStyle(font_pt=9, title_pt=10, line_width=2.0, symbol_size=7)
PRESENTATION_STYLE = PlotStyle(font_pt=15, title_pt=17, line_width=4.0, symbol_size=12)


@dataclass
class _Overlay:
    name: str
    items: list[Any]


def presentation_style(scale: float, full: float = 1.6) -> PlotStyle:
    """A style between NORMAL_STYLE (scale 1) and PRESENTATION_STYLE (scale `full` and up)."""
    t = min(max((scale - 1.0) / (full - 1.0), 0.0), 1.0)
    low, high = NORMAL_STYLE, PRESENTATION_STYLE
    return PlotStyle(
        font_pt=round(low.font_pt + t * (high.font_pt - low.font_pt)),
        title_pt=round(low.title_pt + t * (high.title_pt - low.title_pt)),
        line_width=low.line_width + t * (high.line_width - low.line_width),
        symbol_size=round(low.symbol_size + t * (high.symbol_size - low.symbol_size)),
    )


class PlotsPanel(QWidget):
    """Four live plots of one run, fed by `reset`, `add_batches` and `add_epoch`."""

    exported = Signal(list)  # list[Path] written by a toolbar action

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # Redrawing pyqtgraph runs Python on the GUI thread, which takes the GIL from training:
        # the per-batch curve is redrawn at most REDRAW_INTERVAL_MS apart (flush() forces it).
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.timeout.connect(self._redraw_batches)
        self._last_batch_redraw = -math.inf
        self.setObjectName("plotsPanel")
        self.setAccessibleName("Training plots")
        self.plot_style = NORMAL_STYLE
        self._started: RunStarted | None = None
        self._batch = {name: GrowingArray(4096) for name in BATCH_COLUMNS}
        self._epoch = {name: GrowingArray(64) for name in EPOCH_COLUMNS}
        self._overlays: list[_Overlay] = []
        self._framed_empty = False
        self._follow_batches = True  # until the user pans or zooms the batch plot
        self._batch_frame: tuple[float, float, float, float] | None = None
        self._ema = math.nan
        self._epoch_reports: list[EpochReport] = []
        self._text_run = False  # a next-token run: perplexity takes the accuracy plot's place

        self.loss_plot = self._make_plot("lossPlot", "Training loss per batch", "Loss", False)
        self.epoch_loss_plot = self._make_plot("epochLossPlot", "Loss per epoch", "Loss", True)
        self.accuracy_plot = self._make_plot(
            "accuracyPlot", "Accuracy per epoch", "Accuracy (%)", True
        )
        self.lr_plot = self._make_plot("learningRatePlot", "Learning rate", "Learning rate", True)
        self._make_curves()
        # pyqtgraph's auto-range costs a second repaint per update (~10 ms of GUI-thread Python
        # holding the GIL that training needs): the batch plot is framed by _frame_batches.
        batch_view = self.loss_plot.getViewBox()
        batch_view.disableAutoRange()
        batch_view.sigRangeChangedManually.connect(self._stop_following_batches)
        self._hovers = {
            "loss": HoverReadout(self.loss_plot, self._describe_batch),
            "epoch_loss": HoverReadout(
                self.epoch_loss_plot,
                self._epoch_describer(
                    [("train", "train_loss"), ("validation", "val_loss")], "{:.4f}"
                ),
            ),
            "accuracy": HoverReadout(self.accuracy_plot, self._describe_metric),
            "lr": HoverReadout(self.lr_plot, self._epoch_describer([("lr", "lr")], "{:.4g}")),
        }
        self._layout_widgets()
        self.set_presentation_mode(False)
        self.reset()

    # construction ----------------------------------------------------------
    def _make_plot(self, name: str, title: str, y_label: str, per_epoch: bool) -> pg.PlotWidget:
        axes = {"bottom": EpochAxis(orientation="bottom")} if per_epoch else {}
        plot = pg.PlotWidget(axisItems=axes)
        plot.setObjectName(name)
        plot.setAccessibleName(f"{title} plot")
        plot.setTitle(title)
        plot.setLabel("left", y_label)
        plot.setLabel("bottom", "Epoch")
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.setDownsampling(auto=True, mode="peak")
        plot.setClipToView(True)
        plot.getAxis("left").enableAutoSIPrefix(False)
        # A fixed tick-label width (set with the font): a wider label never re-lays out the
        # plot, which at each epoch's end cost a cascade of 3-4 repaints per plot.
        plot.getAxis("left").setStyle(autoExpandTextSpace=False)
        for side in ("left", "bottom"):
            # no third tick level: its hairline grid is noise on a projector and costs paint time
            plot.getAxis(side).setStyle(maxTickLevel=1)
        plot.setMinimumSize(200, 140)  # four of them still fit a 1280x720 screen
        if per_epoch:
            plot.getViewBox().setDefaultPadding(0.06)  # whole markers at the first and last epoch
        plot.setMenuEnabled(True)
        return plot

    def _make_curves(self) -> None:
        legend_above(self.loss_plot)
        self.raw_loss_curve = self.loss_plot.plot(name="batch loss", connect="finite")
        self.smooth_loss_curve = self.loss_plot.plot(
            name=f"smoothed (EMA α={EMA_ALPHA:g})", connect="finite"
        )
        legend_above(self.epoch_loss_plot)
        self.train_loss_curve = self.epoch_loss_plot.plot(name="train")
        self.val_loss_curve = self.epoch_loss_plot.plot(name="validation")
        legend_above(self.accuracy_plot)
        self.train_accuracy_curve = self.accuracy_plot.plot(name="train")
        self.val_accuracy_curve = self.accuracy_plot.plot(name="validation")
        self.lr_curve = self.lr_plot.plot()
        self.lr_plot.getAxis("left").enableAutoSIPrefix(True)
        self.placeholder = pg.TextItem(
            "No run yet: press Train", color="#707070", anchor=(0.5, 0.5)
        )
        self.loss_plot.addItem(self.placeholder, ignoreBounds=True)

    def _layout_widgets(self) -> None:
        toolbar = QToolBar("Plot actions", self)
        toolbar.setObjectName("plotsToolbar")
        self.export_png_action = self._action(
            toolbar,
            "exportPngAction",
            "Save PNG…",
            "Save the four plots as one PNG image",
            lambda: self._ask_and_export("png"),
        )
        self.export_svg_action = self._action(
            toolbar,
            "exportSvgAction",
            "Save SVG…",
            "Save the four plots as one SVG vector image",
            lambda: self._ask_and_export("svg"),
        )
        self.export_csv_action = self._action(
            toolbar,
            "exportCsvAction",
            "Save CSV…",
            "Save per-epoch metrics (and per-batch losses next to it)",
            lambda: self._ask_and_export("csv"),
        )
        toolbar.addSeparator()
        self.fit_action = self._action(
            toolbar, "fitPlotsAction", "Fit", "Zoom every plot to show all its data", self.fit_all
        )
        self.presentation_action = self._action(
            toolbar,
            "presentationAction",
            "Presentation",
            "Larger text and thicker lines for a projector",
            self.set_presentation_mode,
        )
        self.presentation_action.setCheckable(True)
        grid = QGridLayout()
        grid.setSpacing(6)
        for index, plot in enumerate(self.plots()):
            grid.addWidget(plot, index // 2, index % 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(toolbar)
        layout.addLayout(grid, stretch=1)
        for action in toolbar.actions():
            self.addAction(action)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        for plot in self.plots():  # right-click on a plot opens pyqtgraph's menu: extend that one
            menu = plot.plotItem.vb.menu
            menu.addSeparator()
            for action in (self.export_png_action, self.export_svg_action, self.export_csv_action):
                menu.addAction(action)

    def _action(
        self, toolbar: QToolBar, name: str, text: str, tip: str, slot: Callable[..., Any]
    ) -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        toolbar.addAction(action)
        return action

    def plots(self) -> list[pg.PlotWidget]:
        return [self.loss_plot, self.epoch_loss_plot, self.accuracy_plot, self.lr_plot]

    # styling ----------------------------------------------------------------
    def set_presentation_mode(self, enabled: bool, scale: float | None = None) -> None:
        """Projector mode: bigger fonts, thicker lines and symbols; `scale` (the window's font
        scale for the screen it is on, 1.25-1.6) sizes them between normal and full."""
        self.plot_style = NORMAL_STYLE
        if enabled:
            self.plot_style = PRESENTATION_STYLE if scale is None else presentation_style(scale)
        self.presentation_action.setChecked(enabled)
        style = self.plot_style
        for plot in self.plots():
            item = plot.plotItem
            item.setTitle(item.titleLabel.text, size=f"{style.title_pt}pt", bold=True)
            tick_font = QFont()
            tick_font.setPointSize(style.font_pt)
            for side in ("left", "bottom"):
                axis = item.getAxis(side)
                axis.setTickFont(tick_font)
                if side == "left":
                    axis.setStyle(tickTextWidth=QFontMetrics(tick_font).horizontalAdvance(WIDEST))
                axis.setLabel(axis.labelText, **{"font-size": f"{style.font_pt}pt"})
            if item.legend is not None:
                resize_legend(item.legend, style.font_pt)
        self.placeholder.setFont(font_of_size(style.title_pt))
        for hover in self._hovers.values():
            hover.label.setFont(font_of_size(style.font_pt))
        self._style_curves()

    def _style_curves(self) -> None:
        width, size = self.plot_style.line_width, self.plot_style.symbol_size
        raw = QColor(SKY_BLUE)
        raw.setAlpha(150)
        self.raw_loss_curve.setPen(pg.mkPen(raw, width=max(1.0, width / 2)))
        self.smooth_loss_curve.setPen(pg.mkPen(BLUE, width=width))
        for curve, colour, symbol, dash in (
            (self.train_loss_curve, BLUE, "o", Qt.PenStyle.SolidLine),
            (self.val_loss_curve, VERMILLION, "s", Qt.PenStyle.DashLine),
            (self.train_accuracy_curve, BLUE, "o", Qt.PenStyle.SolidLine),
            (self.val_accuracy_curve, VERMILLION, "s", Qt.PenStyle.DashLine),
            (self.lr_curve, GREEN, "o", Qt.PenStyle.SolidLine),
        ):
            curve.setPen(pg.mkPen(colour, width=width, style=dash))
            curve.setSymbol(symbol)
            curve.setSymbolSize(size)
            curve.setSymbolBrush(pg.mkBrush(colour))
            curve.setSymbolPen(pg.mkPen("w", width=1))
        for index, overlay in enumerate(self._overlays):
            colour = OVERLAY_COLOURS[index % len(OVERLAY_COLOURS)]
            for curve in overlay.items:
                curve.setPen(pg.mkPen(colour, width=width, style=Qt.PenStyle.DotLine))

    # data in ------------------------------------------------------------------
    def reset(self, started: RunStarted | None = None) -> None:
        """Forget the current run's data (overlays stay) and get ready for `started`."""
        self._started = started
        self._follow_batches, self._batch_frame = True, None
        self._ema = math.nan
        self._epoch_reports = []
        for column in (*self._batch.values(), *self._epoch.values()):
            column.clear()
        for hover in self._hovers.values():
            hover.hide()
        self.placeholder.setText(
            "No run yet: press Train" if started is None else "Waiting for the first batch…"
        )
        self._redraw_batches()
        self._redraw_epochs()

    def add_batches(self, reports: list[BatchReport]) -> None:
        if not reports:
            return
        count = len(reports)
        epochs = np.fromiter((r.epoch for r in reports), dtype=np.float64, count=count)
        batches = np.fromiter((r.batch for r in reports), dtype=np.float64, count=count)
        sizes = np.fromiter((max(1, r.batches) for r in reports), dtype=np.float64, count=count)
        losses = np.fromiter((r.loss for r in reports), dtype=np.float64, count=count)
        smoothed = exponential_average(losses, self._ema)
        self._ema = float(smoothed[-1])
        for name, values in (
            ("epoch", epochs),
            ("batch", batches),
            ("epoch_position", epochs - 1 + (batches + 1) / sizes),
            ("loss", losses),
            ("smoothed_loss", smoothed),
        ):
            self._batch[name].extend(values)
        self._schedule_batch_redraw()

    def _schedule_batch_redraw(self) -> None:
        if self._redraw_timer.isActive():
            return
        wait_ms = REDRAW_INTERVAL_MS - (time.monotonic() - self._last_batch_redraw) * 1000
        if wait_ms <= 0:
            self._redraw_batches()
        else:
            self._redraw_timer.start(int(wait_ms))

    def flush(self) -> None:
        """Draw every batch received so far now (a redraw may be waiting for its slot)."""
        self._redraw_timer.stop()
        self._redraw_batches()

    def add_epoch(self, report: EpochReport) -> None:
        self.flush()
        self._epoch_reports.append(report)
        row = dataclasses.asdict(report)
        for name in EPOCH_COLUMNS:
            self._epoch[name].extend([optional(row[name])])
        self._redraw_epochs()
        self._describe_for_screen_readers(report)

    def _redraw_batches(self) -> None:
        self._last_batch_redraw = time.monotonic()
        x = self._batch["epoch_position"].view()
        self.raw_loss_curve.setData(x, self._batch["loss"].view())
        self.smooth_loss_curve.setData(x, self._batch["smoothed_loss"].view())
        if self._follow_batches:
            self._frame_batches(x, self._batch["loss"].view())
        self.placeholder.setVisible(len(x) == 0)
        if len(x) == 0 and self._batch_frame is not None:
            left, right, bottom, top = self._batch_frame
            self.placeholder.setPos((left + right) / 2, (bottom + top) / 2)

    def _frame_batches(self, x: np.ndarray, losses: np.ndarray) -> None:
        """Across, the run's epochs up to the end of the current one; up the side, the losses so
        far on a 1-2-5 grid. The range is set only when it changes (about once an epoch), so
        most redraws repaint just the curves."""
        first = 1 if self._started is None else self._started.start_epoch
        right = max(float(first), math.ceil(float(x[-1])) if len(x) else 0.0)
        finite = losses[np.isfinite(losses)]
        bottom, top = (
            nice_range(float(finite.min()), float(finite.max())) if finite.size else (0, 1)
        )
        frame = (float(first - 1), right, bottom, top)
        if frame != self._batch_frame:
            self._batch_frame = frame
            self.loss_plot.getViewBox().setRange(
                xRange=frame[:2], yRange=frame[2:], padding=0.02, disableAutoRange=True
            )

    def _stop_following_batches(self, *_changed: object) -> None:
        """The user panned or zoomed: leave the batch plot's view alone until Fit."""
        self._follow_batches = False

    def _redraw_epochs(self) -> None:
        points = self.epoch_points()
        epochs = points["epoch"]
        self._show_metric(text_run=bool(np.isfinite(points["train_perplexity"]).any()))
        metric = "perplexity" if self._text_run else "accuracy"
        for curve, name in (
            (self.train_loss_curve, "train_loss"),
            (self.val_loss_curve, "val_loss"),
            (self.train_accuracy_curve, f"train_{metric}"),
            (self.val_accuracy_curve, f"val_{metric}"),
            (self.lr_curve, "lr"),
        ):
            known = np.isfinite(points[name])  # runs without validation leave gaps, not zeros
            curve.setData(epochs[known], points[name][known])
        self._frame_empty_epoch_plots(len(epochs) == 0)
        self._frame_constant_lr(points["lr"])

    def _show_metric(self, text_run: bool) -> None:
        """Accuracy means nothing for a text run: its plot shows perplexity (e^loss) instead."""
        if text_run != self._text_run:
            self._text_run = text_run
            name = "Perplexity" if text_run else "Accuracy"
            self.accuracy_plot.setTitle(f"{name} per epoch")
            self.accuracy_plot.setLabel(
                "left", "Perplexity (e^loss)" if text_run else "Accuracy (%)"
            )
            legend = self.accuracy_plot.getPlotItem().legend  # away from the falling curves
            legend.setOffset((-10, 10) if text_run else (-10, -10))

    def _describe_metric(self, x: float) -> tuple[float, float, str] | None:
        if self._text_run:
            series = [
                ("train perplexity", "train_perplexity"),
                ("validation perplexity", "val_perplexity"),
            ]
            return self._epoch_describer(series, "{:.2f}")(x)
        series = [("train", "train_accuracy"), ("validation", "val_accuracy")]
        return self._epoch_describer(series, "{:.2f}%")(x)

    def _frame_constant_lr(self, rates: np.ndarray) -> None:
        """A constant learning rate auto-ranges to a meaningless +-400 band: show 0 to 2x it."""
        known = rates[np.isfinite(rates)]
        if known.size and np.ptp(known) <= 1e-12 * max(abs(float(known[0])), 1e-30):
            self.lr_plot.setYRange(0.0, 2.0 * float(known[0]) or 1.0, padding=0.05)
        else:
            self.lr_plot.enableAutoRange(axis="y")

    def _frame_empty_epoch_plots(self, empty: bool) -> None:
        """Before the first epoch, show the run's epoch span and 0-100 % instead of pyqtgraph's
        0-1 default (which would read as "accuracy 0.5 %"); then hand back to auto-range."""
        if empty and not self._overlays:
            first = 1 if self._started is None else self._started.start_epoch
            last = max(first + 1, 2 if self._started is None else self._started.epochs)
            for plot in (self.epoch_loss_plot, self.accuracy_plot, self.lr_plot):
                plot.setXRange(first, last, padding=0.05)
            self.accuracy_plot.setYRange(0, 100, padding=0.02)
            self._framed_empty = True
        elif self._framed_empty:
            for plot in (self.epoch_loss_plot, self.accuracy_plot, self.lr_plot):
                plot.enableAutoRange()
            self._framed_empty = False

    def _describe_for_screen_readers(self, report: EpochReport) -> None:
        val = "" if report.val_loss is None else f", validation loss {report.val_loss:.4f}"
        self.epoch_loss_plot.setAccessibleDescription(
            f"Epoch {report.epoch} of {report.epochs}: train loss {report.train_loss:.4f}{val}"
        )
        accuracy = [
            f"{label} accuracy {value * 100:.2f}%"
            for label, value in (
                ("train", report.train_accuracy),
                ("validation", report.val_accuracy),
            )
            if value is not None
        ]
        self.accuracy_plot.setAccessibleDescription(
            f"Epoch {report.epoch}: " + (", ".join(accuracy) or "no accuracy for this loss")
        )

    # overlays (compare runs) ------------------------------------------------------
    def add_overlay(self, name: str, history: Sequence[EpochReport]) -> None:
        """Draw another run's per-epoch loss and accuracy as dotted lines named `name`."""
        epochs = np.array([r.epoch for r in history], dtype=np.float64)
        items = []
        for plot, label, values in (
            (self.epoch_loss_plot, "train", [r.train_loss for r in history]),
            (self.epoch_loss_plot, "validation", [r.val_loss for r in history]),
            (self.accuracy_plot, "train", [r.train_accuracy for r in history]),
            (self.accuracy_plot, "validation", [r.val_accuracy for r in history]),
        ):
            scale = 100.0 if plot is self.accuracy_plot else 1.0
            y = np.array([optional(v, scale) for v in values], dtype=np.float64)
            known = np.isfinite(y)
            if known.any():
                items.append(plot.plot(epochs[known], y[known], name=f"{name} {label}"))
        self._overlays.append(_Overlay(name, items))
        self._style_curves()

    def clear_overlays(self) -> None:
        for overlay in self._overlays:
            for item in overlay.items:
                for plot in (self.epoch_loss_plot, self.accuracy_plot):
                    if item in plot.plotItem.items:
                        plot.removeItem(item)
        self._overlays = []

    def overlay_names(self) -> list[str]:
        return [overlay.name for overlay in self._overlays]

    # read-only views ------------------------------------------------------------
    def batch_curve_data(self) -> tuple[np.ndarray, np.ndarray]:
        """(fractional epoch, loss) of every batch reported since the last reset (copies)."""
        return self._batch["epoch_position"].view().copy(), self._batch["loss"].view().copy()

    def smoothed_curve_data(self) -> tuple[np.ndarray, np.ndarray]:
        return (
            self._batch["epoch_position"].view().copy(),
            self._batch["smoothed_loss"].view().copy(),
        )

    def epoch_points(self) -> dict[str, np.ndarray]:
        """Per-epoch values as drawn: losses, accuracies in percent, lr, perplexities (text runs);
        NaN where not reported."""
        names = ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr")
        points = {
            name: self._epoch[name].view().copy()
            for name in (*names, "train_perplexity", "val_perplexity")
        }
        points["train_accuracy"] *= 100.0
        points["val_accuracy"] *= 100.0
        return points

    def hover_text(self, plot: str) -> str:
        """What the hover label of `plot` ("loss", "epoch_loss", "accuracy", "lr") shows now."""
        return self._hovers[plot].text()

    # hover --------------------------------------------------------------------------
    def _describe_batch(self, x: float) -> tuple[float, float, str] | None:
        positions = self._batch["epoch_position"].view()
        if len(positions) == 0:
            return None
        index = (
            int(np.clip(np.searchsorted(positions, x), 1, len(positions) - 1))
            if len(positions) > 1
            else 0
        )
        if index > 0 and abs(positions[index - 1] - x) <= abs(positions[index] - x):
            index -= 1
        loss = self._batch["loss"].view()[index]
        smoothed = self._batch["smoothed_loss"].view()[index]
        epoch = int(self._batch["epoch"].view()[index])
        batch = int(self._batch["batch"].view()[index])
        text = f"epoch {epoch}, batch {batch}\nloss {loss:.4f}\nsmoothed {smoothed:.4f}"
        return float(positions[index]), float(loss), text

    def _epoch_describer(
        self, series: list[tuple[str, str]], number: str
    ) -> Callable[[float], tuple[float, float, str] | None]:
        def describe(x: float) -> tuple[float, float, str] | None:
            points = self.epoch_points()
            epochs = points["epoch"]
            if len(epochs) == 0:
                return None
            index = int(np.argmin(np.abs(epochs - x)))
            lines = [f"epoch {int(epochs[index])}"]
            for label, key in series:
                value = points[key][index]
                shown = "n/a" if not math.isfinite(value) else number.format(value)
                lines.append(f"{label} {shown}" if len(series) > 1 else shown)
            return float(epochs[index]), float(points[series[0][1]][index]), "\n".join(lines)

        return describe

    # view -------------------------------------------------------------------------
    def fit_all(self) -> None:
        for plot in self.plots():
            if plot is not self.loss_plot:
                plot.enableAutoRange()
        self._follow_batches, self._batch_frame = True, None
        self._redraw_batches()

    # export ---------------------------------------------------------------------------
    def export_png(self, path: str | Path) -> Path:
        """All four plots in one PNG, laid out as on screen; written atomically."""
        self.flush()
        return plot_export.export_png(self.plots(), path)

    def export_svg(self, path: str | Path) -> Path:
        """All four plots in one SVG vector image, laid out as on screen; written atomically."""
        self.flush()
        return plot_export.export_svg(self.plots(), path)

    def export_csv(self, path: str | Path) -> list[Path]:
        """Per-epoch metrics to `path` (metrics.csv columns) and per-batch losses to
        `<stem>-batches.csv` beside it; both atomic. Returns the two paths."""
        columns = [self._batch[name].view() for name in BATCH_COLUMNS]
        return plot_export.export_csv(self._epoch_reports, columns, path)

    def _ask_and_export(self, kind: str) -> None:
        filters = {
            "png": "PNG image (*.png)",
            "svg": "SVG image (*.svg)",
            "csv": "CSV table (*.csv)",
        }
        name, _ = QFileDialog.getSaveFileName(self, "Save plots", f"training.{kind}", filters[kind])
        if not name:
            return
        written: list[Path]
        try:
            if kind == "png":
                written = [self.export_png(name)]
            elif kind == "svg":
                written = [self.export_svg(name)]
            else:
                written = self.export_csv(name)
        except OSError as exc:
            QMessageBox.warning(
                self, "Could not save", f"Could not save {name}: {exc}. Choose another folder."
            )
            return
        self.exported.emit(written)
