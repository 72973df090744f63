"""Quantization lab: pick a method, run it off the GUI thread, and compare float and int8."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.controllers.current_model import CurrentModelHolder
from workbench.controllers.quantization_controller import QuantizationController
from workbench.engine.quantization import MeasureSettings, QuantizationOptions, ReportCard
from workbench.engine.quantization.methods import QuantizationOutcome
from workbench.engine.quantization.recipe import MAINTAINED_PATH, METHOD_LABELS, OBSERVERS
from workbench.engine.quantization.report import report_lines, summary_rows
from workbench.ui.qt import pg
from workbench.ui.widgets import named

DEFAULT_OUTPUT = Path("~/.cache/workbench/quantized")
NO_MODEL_REASON = "No trained model yet: train the experiment (or open its weights) first."
FLOAT_COLOUR, INT8_COLOUR = "#0072B2", "#D55E00"  # Okabe-Ito blue and vermillion
PATH_TEXT = {
    "auto": "auto (fastest measured here)",
    "eager": "eager (torch.ao.quantization)",
    "torchao": "torchao quantize_",
    "pt2e": "PT2E (torchao export flow)",
}


class QuantizationPanel(QWidget):
    """Views a quantization controller; it quantizes the window's current model (`source`)
    and names it above the form and on the report."""

    report_shown = Signal(object)  # ReportCard

    def __init__(
        self,
        source: CurrentModelHolder,
        controller: QuantizationController | None = None,
        parent: QWidget | None = None,
        *,
        output_folder: str | Path = DEFAULT_OUTPUT,
        measure: MeasureSettings | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("quantizationPanel")
        self.source = source
        self.controller = controller or QuantizationController(self)
        self.measure = measure or MeasureSettings()
        self.report: ReportCard | None = None
        self.report_model = ""  # which model the running (or shown) report is of
        self.chart_values: dict[str, tuple[float, float]] = {}
        self._build(Path(output_folder))
        self._connect()
        self.refresh()

    # ------------------------------------------------------------------ layout
    def _build(self, output_folder: Path) -> None:
        self.model_name = QLabel()
        named(self.model_name, "quantizeModelName", "The model the lab quantizes")
        self.report_title = QLabel()
        named(self.report_title, "reportTitle", "Which model the report card is of")
        self.method = QComboBox()
        for method, label in METHOD_LABELS.items():
            self.method.addItem(f"{method}: {label}", method)
        named(self.method, "methodPicker", "How to quantize the trained model")
        self.path = QComboBox()
        named(self.path, "pathPicker", "Which implementation: auto picks the one measured fastest")
        self.calibration = QSpinBox(minimum=1, maximum=1_000_000, value=256)
        named(self.calibration, "calibrationSpin", "Training samples that set activation ranges")
        self.observer = QComboBox()
        self.observer.addItems(list(OBSERVERS))
        named(self.observer, "observerPicker", "How calibration turns values into int8 ranges")
        self.qat_epochs = QSpinBox(minimum=1, maximum=1000, value=1)
        named(self.qat_epochs, "qatEpochsSpin", "Epochs of quantization-aware fine-tuning")
        self.compile = QCheckBox("also time torch.compile (slow to compile)")
        named(self.compile, "compileToggle", "Measure the float model compiled by torch.compile")
        self.output = QLineEdit(str(output_folder))
        named(self.output, "outputFolderEdit", "Folder for the int8 model and its JSON report")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.run_button = QPushButton("&Quantize")
        named(self.run_button, "quantizeButton", "Quantize the trained model and measure it")
        self.cancel_button = QPushButton("Cancel")
        named(self.cancel_button, "cancelQuantizeButton", "Stop at the next batch; writes nothing")
        self.progress = QProgressBar(minimum=0, maximum=100)
        named(self.progress, "quantizeProgress", "Progress of the quantization")
        self.status = QLabel()
        self.status.setWordWrap(True)
        named(self.status, "quantizeStatus", "What the lab is doing, or why it cannot run")
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["", "float", "int8", "change"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        named(self.table, "reportTable", "Float against int8 on the validation data")
        self.chart = pg.PlotWidget(title="int8 as % of float")
        named(self.chart, "reportChart", "Size, latency and accuracy: float and int8 side by side")
        self.chart.addLegend(offset=(-10, 10))
        self.chart.setLabel("left", "% of float")
        self.notes = QPlainTextEdit(readOnly=True)
        # The options table is aligned text: it needs a fixed-pitch font.
        self.notes.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        named(self.notes, "quantizeNotes", "Inference options and notes on layers kept in float")

        form = QFormLayout()
        form.addRow("&Method", self.method)
        form.addRow("&Path", self.path)
        form.addRow("Ca&libration samples", self.calibration)
        form.addRow("&Observer", self.observer)
        form.addRow("QAT &epochs", self.qat_epochs)
        form.addRow("", self.compile)
        output_row = QHBoxLayout()
        output_row.addWidget(self.output, 1)
        output_row.addWidget(browse)
        output_label = QLabel("Save &to")
        output_label.setBuddy(self.output)
        form.addRow(output_label, output_row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)
        results = QHBoxLayout()
        results.addWidget(self.table, 1)
        results.addWidget(self.chart, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.model_name)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.report_title)
        layout.addLayout(results, 1)
        layout.addWidget(self.notes)
        self._method_changed()

    def _connect(self) -> None:
        self.method.currentIndexChanged.connect(self._method_changed)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.controller.cancel)
        self.controller.progressed.connect(self._show_progress)
        self.controller.run_succeeded.connect(self._show_outcome)
        self.controller.run_failed.connect(self._show_failure)
        self.controller.run_cancelled.connect(self._show_cancelled)
        self.controller.state_changed.connect(lambda _state: self.refresh())
        self.source.changed.connect(lambda _model: self.refresh())

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Save quantized models in", self.output.text()
        )
        if folder:
            self.output.setText(folder)

    def _method_changed(self) -> None:
        method = self.selected_method()
        self.calibration.setEnabled(method == "static")
        self.observer.setEnabled(method == "static")
        self.qat_epochs.setEnabled(method == "qat")
        current = self.path.currentData()
        self.path.clear()
        for path in ("auto", "eager", MAINTAINED_PATH[method]):
            self.path.addItem(PATH_TEXT[path], path)
        self.path.setCurrentIndex(max(self.path.findData(current), 0))

    # ------------------------------------------------------------------ state
    def selected_method(self) -> str:
        return str(self.method.currentData())

    def options(self) -> QuantizationOptions:
        return QuantizationOptions(
            method=self.selected_method(),
            calibration_samples=self.calibration.value(),
            qat_epochs=self.qat_epochs.value(),
            observer=self.observer.currentText(),
            path=str(self.path.currentData()),
        )

    def unavailable_reason(self) -> str | None:
        """Why the lab cannot run now, or None."""
        return None if self.source.model.trained else NO_MODEL_REASON

    def refresh(self) -> None:
        """Enable what makes sense now; show why quantizing is not possible, if it is not."""
        running = self.controller.is_running
        self.model_name.setText(f"Model: {self.source.model.description}")
        reason = None if running else self.unavailable_reason()
        self.run_button.setEnabled(not running and reason is None)
        self.cancel_button.setEnabled(running and self.controller.state != "cancelling")
        for widget in (self.method, self.path, self.compile, self.output):
            widget.setEnabled(not running)
        if reason is not None:
            self.status.setText(reason)
            self.run_button.setToolTip(reason)
        else:
            self.run_button.setToolTip("Quantize the trained model and measure it")
            if self.status.text() == NO_MODEL_REASON or self.status.text().startswith("No model"):
                self.status.setText("Ready.")

    def start(self) -> None:
        model = self.source.model
        state = model.state_dict
        if state is None or not model.trained or self.controller.is_running:
            self.refresh()
            return
        measure = MeasureSettings(
            repeats=self.measure.repeats,
            warmup=self.measure.warmup,
            threads=self.measure.threads,
            compile=self.compile.isChecked(),
        )
        output = Path(self.output.text()).expanduser()
        self.progress.setValue(0)
        self.status.setText("Starting…")
        self.report_model = model.description
        self.controller.start(model.experiment, state, self.options(), output, measure)

    # ------------------------------------------------------------------ results
    def _show_progress(self, text: str, fraction: float) -> None:
        self.progress.setValue(round(100 * fraction))
        self.status.setText(text[:1].upper() + text[1:] + "…")

    def _show_outcome(self, outcome: QuantizationOutcome) -> None:
        self.progress.setValue(100)
        self.status.setText(f"Saved {outcome.model_path} and {outcome.report_path.name}.")
        self.show_report(outcome.report)

    def _show_failure(self, message: str) -> None:
        self.status.setText(f"Quantization failed: {message}")

    def _show_cancelled(self) -> None:
        self.progress.setValue(0)
        self.status.setText("Cancelled; nothing was written.")

    def clear_report(self) -> None:
        """Forget the report shown (another project: it was of another model)."""
        self.report, self.report_model = None, ""
        self.report_title.clear()
        self.table.setRowCount(0)
        self.chart.getPlotItem().clear()
        self.chart_values = {}
        self.notes.clear()
        self.progress.setValue(0)
        self.status.clear()
        self.refresh()

    def show_report(self, card: ReportCard) -> None:
        """Fill the table, the chart and the notes from a report card."""
        self.report = card
        self.report_title.setText(f"Report card of {self.report_model}: {card.method} int8")
        rows = list(summary_rows(card))
        names = card.class_names or tuple(str(i) for i in range(len(card.float_model.per_class)))
        changes = card.per_class_change_points
        for index, name in enumerate(names[: len(card.float_model.per_class)]):
            before, after = card.float_model.per_class[index], card.quantized.per_class[index]
            rows.append(
                (
                    f"class {name}",
                    "-" if before is None else f"{100 * before:.2f}%",
                    "-" if after is None else f"{100 * after:.2f}%",
                    "-" if changes[index] is None else f"{changes[index]:+.2f} pts",
                )
            )
        self.table.setRowCount(len(rows))
        for row, cells in enumerate(rows):
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.table.setItem(row, column, item)
        self._draw_chart(card)
        lines = report_lines(card)
        start = next((i for i, line in enumerate(lines) if line.startswith("float model")), 0)
        self.notes.setPlainText("\n".join([lines[1].strip(), "", *lines[start:]]))
        self.report_shown.emit(card)

    def _draw_chart(self, card: ReportCard) -> None:
        f, q = card.float_model, card.quantized
        values = {
            "size": (float(f.size_bytes), float(q.size_bytes)),
            "latency b1": (f.latency.batch1_ms, q.latency.batch1_ms),
            "latency b64": (f.latency.batch64_ms, q.latency.batch64_ms),
        }
        if f.accuracy is not None and q.accuracy is not None:
            values["accuracy"] = (f.accuracy, q.accuracy)
        self.chart_values = values
        labels = list(values)
        positions = list(range(len(labels)))
        percent = [100.0 * after / before if before else 0.0 for before, after in values.values()]
        plot = self.chart.getPlotItem()
        plot.clear()
        plot.addItem(
            pg.BarGraphItem(
                x=[x - 0.2 for x in positions],
                height=[100.0] * len(labels),
                width=0.4,
                brush=FLOAT_COLOUR,
                name="float",
            )
        )
        plot.addItem(
            pg.BarGraphItem(
                x=[x + 0.2 for x in positions],
                height=percent,
                width=0.4,
                brush=INT8_COLOUR,
                name="int8",
            )
        )
        plot.getAxis("bottom").setTicks([list(zip(positions, labels, strict=True))])
        plot.setYRange(0, max([100.0, *percent]) * 1.1)
