"""File > Export Model…: write the current model as ONNX, .pt2 or TorchScript, and show the check."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from workbench.controllers.model_job import EXPORT, ModelJob, Weights
from workbench.controllers.profile_export import export_work
from workbench.engine.current_model import CurrentModel
from workbench.engine.experiment import Experiment
from workbench.engine.export import DEFAULT_ATOL, SUFFIXES, ExportResult
from workbench.ui.profile_table import tagged

FORMAT_LABELS = {
    "onnx": "ONNX (.onnx), checked with onnxruntime",
    "pt2": "PyTorch 2 exported program (.pt2)",
    "torchscript": "TorchScript (.pt; deprecated in PyTorch 2)",
}
PASS_STYLE, FAIL_STYLE = "color: #009E73; font-weight: bold", "color: #D55E00; font-weight: bold"


def size_text(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 1024:.1f} KiB"


class ExportDialog(QDialog):
    """Exports the window's current model (`weights` of `experiment`, named `model_name`), or
    a quantized model file, in the background; shows the largest difference from PyTorch and
    whether it is within the tolerance, or the error as one message."""

    exported = Signal(object)  # ExportResult
    export_failed = Signal(str)

    def __init__(
        self,
        experiment: Experiment,
        weights: Weights,
        model_name: str,
        folder: Path,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.setWindowTitle("Export Model")
        self.experiment, self.weights, self.model_name = experiment, weights, model_name
        self.last_result: ExportResult | None = None
        self.job = ModelJob(self, name="ExportThread")
        self.job.progressed.connect(self._progressed)
        self.job.succeeded.connect(lambda _kind, result: self.show_result(result))
        self.job.failed.connect(lambda _kind, message: self.show_error(message))
        self.job.busy_changed.connect(self._busy_changed)
        self._build(folder)
        self._busy_changed(False)

    def _build(self, folder: Path) -> None:
        self.current_radio = tagged(
            QRadioButton(f"Current model: {self.model_name}"), "exportCurrent"
        )
        self.current_radio.setChecked(True)
        self.quantized_radio = tagged(QRadioButton("Quantized model file:"), "exportQuantized")
        group = QButtonGroup(self)
        group.addButton(self.current_radio)
        group.addButton(self.quantized_radio)
        self.quantized_path = tagged(QLineEdit(), "exportQuantizedPath")
        self.quantized_path.setPlaceholderText("a file Quantize wrote")
        self.quantized_path.textEdited.connect(lambda _text: self.quantized_radio.setChecked(True))
        quantized_browse = QPushButton("Browse…")
        quantized_browse.clicked.connect(self._browse_quantized)
        quantized_row = QHBoxLayout()
        quantized_row.addWidget(self.quantized_radio)
        quantized_row.addWidget(self.quantized_path, 1)
        quantized_row.addWidget(quantized_browse)

        self.format_box = tagged(QComboBox(), "exportFormat")
        for fmt, text in FORMAT_LABELS.items():
            self.format_box.addItem(text, fmt)
        self.format_box.currentIndexChanged.connect(self._format_changed)
        self.output = tagged(QLineEdit(str(folder / "model.onnx")), "exportOutput")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_output)
        output_row = QHBoxLayout()
        output_row.addWidget(self.output, 1)
        output_row.addWidget(browse)

        form = QFormLayout()
        form.addRow("Model:", self.current_radio)
        form.addRow("", quantized_row)
        form.addRow("Format:", self.format_box)
        form.addRow("Output file:", output_row)
        form.addRow("Tolerance:", QLabel(f"largest absolute difference ≤ {DEFAULT_ATOL:g}"))

        self.progress = tagged(QProgressBar(), "exportProgress")
        self.progress.setRange(0, 100)
        self.difference = tagged(QLabel(""), "exportDifference")
        self.verdict = tagged(QLabel(""), "exportVerdict")
        self.file_label = tagged(QLabel(""), "exportFile")
        self.details = tagged(QLabel(""), "exportDetails")
        self.message = tagged(QLabel(""), "exportMessage")
        for label in (self.difference, self.file_label, self.details, self.message):
            label.setWordWrap(True)
        self.export_button = tagged(QPushButton("&Export"), "exportButton")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start_export)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.close_button)

        box = QVBoxLayout(self)
        box.addLayout(form)
        box.addWidget(self.progress)
        for widget in (self.verdict, self.difference, self.file_label, self.details, self.message):
            box.addWidget(widget)
        box.addStretch(1)
        box.addLayout(buttons)
        self.resize(620, 360)

    def follow(self, model: CurrentModel) -> None:
        """Another current model took the place of the one named: it is the one exported."""
        self.experiment, self.weights = model.experiment, model.weights()
        self.model_name = model.description
        self.current_radio.setText(f"Current model: {model.description}")

    # ------------------------------------------------------------------ choices
    @property
    def fmt(self) -> str:
        return str(self.format_box.currentData())

    def set_format(self, fmt: str) -> None:
        self.format_box.setCurrentIndex(self.format_box.findData(fmt))

    def _format_changed(self) -> None:
        """The output's usual suffix follows the format (a name of the user's own stays)."""
        path = Path(self.output.text())
        if path.suffix in SUFFIXES.values():
            self.output.setText(str(path.with_suffix(SUFFIXES[self.fmt])))

    def _browse_output(self) -> None:
        suffix = SUFFIXES[self.fmt]
        path, _ = QFileDialog.getSaveFileName(
            self, "Export model to", self.output.text(), f"{self.fmt} (*{suffix})"
        )
        if path:
            self.output.setText(path)

    def _browse_quantized(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Quantized model", "", "Quantized models (*.pt *.pth *.pt2)"
        )
        if path:
            self.quantized_path.setText(path)
            self.quantized_radio.setChecked(True)

    # ------------------------------------------------------------------ the export
    def start_export(self) -> bool:
        """Export in the background; False (with a message) when the choices are not usable."""
        if self.job.is_busy:
            return False
        self._clear()
        text = self.output.text().strip()
        if not text:
            self.show_error("Output file: give a file name, e.g. model.onnx")
            return False
        quantized = None
        if self.quantized_radio.isChecked():
            quantized = Path(self.quantized_path.text().strip()).expanduser()
            if not quantized.is_file():
                self.show_error(f"Quantized model file {quantized}: no such file; choose one")
                return False
        work = export_work(
            self.experiment,
            self.fmt,
            Path(text).expanduser(),
            weights=None if quantized else self.weights,
            quantized_file=quantized,
        )
        self.job.start(EXPORT, work, "The export stopped by an unexpected error")
        return True

    def _clear(self) -> None:
        self.last_result = None
        for label in (self.verdict, self.difference, self.file_label, self.details, self.message):
            label.clear()

    def _progressed(self, text: str, fraction: float) -> None:
        self.progress.setValue(int(100 * fraction))
        self.progress.setFormat(f"{text} (%p%)")

    def _busy_changed(self, busy: bool) -> None:
        self.export_button.setEnabled(not busy)
        self.close_button.setEnabled(not busy)
        self.progress.setVisible(busy)
        if busy:
            self.progress.setValue(0)

    def show_result(self, result: object) -> None:
        assert isinstance(result, ExportResult)
        self.last_result = result
        batches = ", ".join(
            f"batch {check.batch_size}: "
            + (f"{check.max_abs_diff:.3g}" if check.shapes_match else "output shapes differ")
            for check in result.checks
        )
        self.difference.setText(
            f"Largest absolute difference from PyTorch: {result.max_abs_diff:.3g} ({batches}), "
            f"checked with {result.checked_with} on {result.sample_source}"
        )
        if result.passed:
            self.verdict.setText(f"Check passed: within the tolerance {result.atol:g}")
            self.verdict.setStyleSheet(PASS_STYLE)
        else:
            self.verdict.setText(
                f"Check failed: over the tolerance {result.atol:g}; the file is kept for inspection"
            )
            self.verdict.setStyleSheet(FAIL_STYLE)
        self.file_label.setText(
            f"Wrote {result.path} ({size_text(result.size_bytes)}, a {result.model_kind} model)"
        )
        self.details.setText("\n".join([f"How: {result.how}", *result.notes]))
        self.exported.emit(result)

    def show_error(self, message: str) -> None:
        self.verdict.setText("Not exported")
        self.verdict.setStyleSheet(FAIL_STYLE)
        self.message.setText(message)
        self.export_failed.emit(message)

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        return self.job.shutdown(timeout_ms)

    def reject(self) -> None:
        if not self.job.is_busy:  # the export finishes first: it cannot be interrupted
            super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.job.is_busy:
            event.ignore()
            return
        super().closeEvent(event)
