"""The learning-rate finder: the ramp's smoothed loss on a log axis, the suggestion and why."""

from __future__ import annotations

import math

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from workbench.controllers.lr_finder_controller import LRFinderController
from workbench.engine.devices import DeviceInfo
from workbench.engine.lr_finder import LRFinderResult
from workbench.ui.project_document import ProjectDocument
from workbench.ui.qt import pg
from workbench.ui.widgets import named

USE_TEXT = "Use the suggested learning rate"


class LRFinderDialog(QDialog):
    """Runs the finder on the project's experiment at once; "Use this rate" sets train.lr as
    one undoable edit. Closing the dialog stops a ramp still running."""

    def __init__(
        self,
        document: ProjectDocument,
        devices: list[DeviceInfo] | None = None,
        parent: QWidget | None = None,
        controller: LRFinderController | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("lrFinderDialog")
        self.setWindowTitle("Learning-rate finder")
        self.resize(720, 520)
        self.document = document
        self.controller = controller or LRFinderController(devices, self)
        self.found: LRFinderResult | None = None
        self.rates: list[float] = []
        self.smoothed: list[float] = []
        self._build()
        self.controller.stepped.connect(self._stepped)
        self.controller.found.connect(self.show_result)
        self.controller.failed.connect(self._failed)

    def _build(self) -> None:
        self.plot = pg.PlotWidget()
        named(self.plot, "lrFinderPlot", "Smoothed training loss against the learning rate")
        self.plot.setLogMode(x=True, y=False)
        self.plot.setLabel("bottom", "learning rate (log scale)")
        self.plot.setLabel("left", "loss (blue: smoothed, grey: each step)")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.raw_curve = self.plot.plot([], [], pen=pg.mkPen((150, 150, 150, 120), width=1))
        self.curve = self.plot.plot([], [], pen=pg.mkPen("#1f77b4", width=2))
        self.marker = pg.InfiniteLine(angle=90, pen=pg.mkPen("#d62728", width=2))
        self.marker.hide()
        self.plot.addItem(self.marker)
        self.status = QLabel("Running the ramp: one optimizer step per batch, rate rising…")
        named(self.status, "lrFinderStatus", "What the finder is doing")
        self.suggestion = QLabel()
        named(self.suggestion, "lrSuggestion", "The suggested learning rate")
        font = self.suggestion.font()
        font.setBold(True)
        self.suggestion.setFont(font)
        self.reason = QLabel()
        named(self.reason, "lrSuggestionReason", "Why this rate is suggested")
        self.reason.setWordWrap(True)
        self.buttons = QDialogButtonBox()
        self.use_button = QPushButton("&Use this rate")
        named(self.use_button, "useSuggestedRateButton", "Set train.lr to the suggestion")
        self.use_button.setEnabled(False)
        self.stop_button = QPushButton("&Stop")
        named(self.stop_button, "stopLrFinderButton", "End the ramp now and suggest from it")
        self.buttons.addButton(self.use_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.addButton(self.stop_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.use_button.clicked.connect(self.use_suggestion)
        self.stop_button.clicked.connect(self.controller.stop)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.plot, 1)
        for widget in (self.status, self.suggestion, self.reason, self.buttons):
            layout.addWidget(widget)

    def start(self, **ramp: object) -> None:
        """Run the ramp on the project's experiment as it is now."""
        self.rates, self.smoothed, self.found = [], [], None
        self.controller.start(self.document.experiment, **ramp)
        self.stop_button.setEnabled(True)

    def _stepped(self, step: int, rate: float, loss: float, smoothed: float) -> None:
        self.rates.append(rate)
        self.smoothed.append(smoothed)
        self.curve.setData(self.rates, self.smoothed)
        self.status.setText(f"Step {step + 1}: rate {rate:.3g}, smoothed loss {smoothed:.4g}")

    def show_result(self, result: LRFinderResult) -> None:
        self.found = result
        self.stop_button.setEnabled(False)
        self.raw_curve.setData(list(result.rates), list(result.losses))
        self.curve.setData(list(result.rates), list(result.smoothed))
        self.status.setText(f"{len(result.rates)} steps; the ramp ended: {result.ended}.")
        if result.suggestion is None:
            self.suggestion.setText("No suggestion")
            self.reason.setText(result.reason)
            return
        self.marker.setValue(math.log10(result.suggestion))  # the x axis is in log10 units
        self.marker.show()
        self.suggestion.setText(f"Suggested learning rate: {result.suggestion:.3g}")
        self.reason.setText(f"Why: {result.reason}.")
        self.use_button.setEnabled(True)

    def _failed(self, message: str) -> None:
        self.stop_button.setEnabled(False)
        self.status.setText(f"The finder could not run: {message}")

    def use_suggestion(self) -> None:
        """train.lr = the suggestion, as one step on the project's undo stack."""
        if self.found is None or self.found.suggestion is None:
            return
        import dataclasses

        train = dataclasses.replace(self.document.experiment.train, lr=self.found.suggestion)
        self.document.set_train(train, USE_TEXT)
        self.accept()

    def done(self, code: int) -> None:
        self.controller.stop()
        self.controller.shutdown()
        super().done(code)
