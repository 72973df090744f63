"""What a sweep says beyond its table: parameter importance bars and the trials' val curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from workbench.engine.reports import EpochReport
from workbench.engine.sweep_importance import Importance
from workbench.ui.qt import pg
from workbench.ui.widgets import named


class ImportanceView(QWidget):
    """A bar per swept key: its random-forest share of the metric, its rank correlation."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        named(self, "importanceView", "Which swept settings moved the metric")
        self.title = QLabel("Parameter importance appears once three trials have finished.")
        self.title.setWordWrap(True)
        self.grid = QGridLayout()
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(self.grid)
        layout.addStretch(1)
        self.items: list[Importance] = []
        self.bars: dict[str, QProgressBar] = {}
        self.correlations: dict[str, QLabel] = {}

    def set_importance(self, items: Sequence[Importance], metric: str) -> None:
        for widget in [*self.bars.values(), *self.correlations.values(), *self._names()]:
            self.grid.removeWidget(widget)
            widget.deleteLater()
        self.items = list(items)
        self.bars, self.correlations = {}, {}
        self.title.setText(
            f"Importance for {metric}: random-forest share (bar) and Spearman correlation"
        )
        for row, item in enumerate(self.items):
            name = QLabel(item.key)
            name.setObjectName("importanceName")
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(round(1000 * (item.forest or 0.0)))
            bar.setFormat("—" if item.forest is None else f"{100 * item.forest:.0f} %")
            bar.setToolTip("Share of a random forest's impurity decrease (scikit-learn)")
            correlation = QLabel(
                "corr —" if item.correlation is None else f"corr {item.correlation:+.2f}"
            )
            correlation.setToolTip("Spearman rank correlation with the metric (numbers only)")
            self.grid.addWidget(name, row, 0)
            self.grid.addWidget(bar, row, 1)
            self.grid.addWidget(correlation, row, 2)
            self.bars[item.key], self.correlations[item.key] = bar, correlation
        self.grid.setColumnStretch(1, 1)

    def _names(self) -> list[QLabel]:
        return [w for w in self.findChildren(QLabel, "importanceName")]


class TrialCurvesPlot(QWidget):
    """Validation accuracy (or loss) per epoch of the selected trials, overlaid."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        named(self.plot, "trialCurvesPlot", "Validation curves of the selected trials")
        self.plot.setLabel("bottom", "epoch")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.legend = self.plot.addLegend(offset=(-10, 10))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self.curves: dict[int, pg.PlotDataItem] = {}

    def set_curves(
        self, histories: Mapping[int, Sequence[EpochReport]], labels: Mapping[int, str], metric: str
    ) -> None:
        """One line per trial number; `metric` is `val_accuracy` or `val_loss`."""
        self.plot.clear()
        self.legend.clear()
        self.curves = {}
        self.plot.setLabel("left", metric.replace("_", " "))
        for index, (number, history) in enumerate(sorted(histories.items())):
            points = [(r.epoch, getattr(r, metric)) for r in history]
            points = [(x, y) for x, y in points if y is not None]
            pen = pg.mkPen(pg.intColor(index, hues=max(len(histories), 2)), width=2)
            self.curves[number] = self.plot.plot(
                [x for x, _ in points], [y for _, y in points], pen=pen, symbol="o",
                symbolSize=6, symbolBrush=pen.color(), name=labels.get(number, str(number)),
            )  # fmt: skip
