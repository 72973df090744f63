"""The side panel for the selected tensor or module: statistics, histogram, small tensors' values."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from html import escape

import numpy as np
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from workbench.controllers.checkpoint_loader import STATS, CheckpointLoader, Task
from workbench.engine.checkpoints import (
    AnalysisCancelled,
    Histogram,
    TensorInfo,
    TensorStats,
    tensor_histogram,
    tensor_stats,
)
from workbench.engine.checkpoints.report import format_bytes, format_number, format_shape
from workbench.engine.checkpoints.tensor_data import unreadable_reason
from workbench.engine.errors import WorkbenchError
from workbench.ui.checkpoint_document import first_line
from workbench.ui.checkpoint_editor.shown_text import shown
from workbench.ui.checkpoint_editor.tree_model import TreeItem
from workbench.ui.qt import pg

VALUES_LIMIT = 256  # tensors up to this many elements show their values
SYNC_LIMIT = 1 << 20  # statistics of bigger tensors are computed on a worker thread
HISTOGRAM_BINS = 50
NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)
DETAIL_LIMIT = 120  # characters of torch's own message kept in the one-line explanation


@dataclass(frozen=True)
class TensorAnalysis:
    """What the panel shows for one tensor, computed once when it is selected."""

    stats: TensorStats
    histogram: Histogram


def analyse(tensor: torch.Tensor, stop: threading.Event | None = None) -> TensorAnalysis:
    """Statistics and histogram; AnalysisCancelled as soon as `stop` is set."""
    stats = tensor_stats(tensor, stop=stop)
    return TensorAnalysis(stats, tensor_histogram(tensor, HISTOGRAM_BINS, stop=stop, stats=stats))


def values_text(tensor: torch.Tensor) -> str:
    """The values of a small tensor, laid out as numpy prints them (4 significant digits)."""
    values = tensor.detach().cpu()
    if values.is_quantized:
        values = values.dequantize()
    if values.is_floating_point() and values.dtype not in NUMPY_FLOATS:
        values = values.float()  # bfloat16, float8 variants: numpy has no such type
    array = values.numpy()
    if array.ndim == 0:
        return str(array.item())
    return np.array2string(
        array, precision=4, suppress_small=True, separator=", ", max_line_width=72
    )


def without_values(tensor: torch.Tensor) -> str:
    """Why a tensor has no values to summarise ("" when it has): meta, sparse, bits dtypes..."""
    reason = unreadable_reason(tensor)
    return "" if reason is None else f"No statistics: it is {reason}."


def no_statistics_text(tensor: torch.Tensor, error: BaseException) -> str:
    """One readable line when summarising a tensor failed, whatever was raised."""
    if isinstance(error, WorkbenchError):
        return f"No statistics: {first_line(error)}"
    detail = first_line(error)
    if len(detail) > DETAIL_LIMIT:
        detail = detail[: DETAIL_LIMIT - 1] + "…"
    dtype = str(tensor.dtype).removeprefix("torch.")
    return f"No statistics: torch cannot summarise this {dtype} tensor ({detail})."


def analyse_or_explain(
    tensor: torch.Tensor, stop: threading.Event | None = None
) -> TensorAnalysis | str:
    """The analysis, or the one line that says why there is none (never an exception but
    AnalysisCancelled, once `stop` is set)."""
    try:
        return analyse(tensor, stop)
    except AnalysisCancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the engine raises becomes one line
        return no_statistics_text(tensor, exc)


def stats_rows(stats: TensorStats) -> list[tuple[str, str]]:
    return [
        ("Min", format_number(stats.min)),
        ("Max", format_number(stats.max)),
        ("Mean", format_number(stats.mean)),
        ("Std", format_number(stats.std)),
        ("Zeros", f"{stats.zero_fraction:.1%}"),
        ("NaN", f"{stats.nan_count:,}"),
        ("Inf", f"{stats.inf_count:,}"),
    ]


class TensorPanel(QWidget):
    """Shows one selection. Statistics are computed only when a tensor is selected, and on the
    loader's worker thread when the tensor is big, so the window stays responsive."""

    def __init__(self, loader: CheckpointLoader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tensorPanel")
        self.setAccessibleName("tensorPanel")
        self.loader = loader
        self.current_key: str | None = None
        self.analysis: TensorAnalysis | None = None
        self._pending_token: object = None
        self._build()
        loader.finished.connect(self._on_task_finished)
        loader.failed.connect(self._on_task_failed)
        self.show_nothing()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self.title = QLabel()
        self.title.setObjectName("tensorTitle")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.title)

        boxes = QHBoxLayout()
        self.info_box = QGroupBox("Tensor")
        self.info_form = QFormLayout(self.info_box)
        boxes.addWidget(self.info_box, 1)
        self.stats_box = QGroupBox("Statistics (finite values)")
        self.stats_form = QFormLayout(self.stats_box)
        boxes.addWidget(self.stats_box, 1)
        layout.addLayout(boxes)

        self.histogram = pg.PlotWidget()
        self.histogram.setObjectName("tensorHistogram")
        self.histogram.setAccessibleName("tensorHistogram")
        self.histogram.setMinimumHeight(150)
        self.histogram.setMouseEnabled(x=True, y=False)
        self.histogram.hideButtons()
        self.histogram.getPlotItem().setLabel("left", "count")
        self.histogram.getPlotItem().setLabel("bottom", "value")
        for side in ("left", "bottom"):
            self.histogram.getPlotItem().getAxis(side).enableAutoSIPrefix(False)
        self.histogram.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._bars = pg.PlotDataItem(
            stepMode="center",
            fillLevel=0,
            brush=pg.mkBrush(60, 120, 200, 160),
            pen=pg.mkPen(40, 90, 170),
        )
        self.histogram.addItem(self._bars)
        layout.addWidget(self.histogram, 2)

        self.values_box = QGroupBox("Values")
        values_layout = QVBoxLayout(self.values_box)
        self.values = QPlainTextEdit()
        self.values.setObjectName("tensorValues")
        self.values.setReadOnly(True)
        self.values.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.values.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        values_layout.addWidget(self.values)
        layout.addWidget(self.values_box, 1)
        self.filler = QWidget()  # takes the room while nothing tall is shown
        layout.addWidget(self.filler, 1)

    # what to show ------------------------------------------------------------
    def show_nothing(self, text: str = "Select a tensor to see its statistics.") -> None:
        self.cancel_statistics()
        self.current_key = None
        self.analysis = None
        self._pending_token = None
        self.title.setText(text)
        self.info_box.hide()
        self.stats_box.hide()
        self.histogram.hide()
        self.values_box.hide()
        self.filler.show()

    def show_module(self, item: TreeItem) -> None:
        """A module: its guessed type and totals; statistics only for single tensors."""
        self.show_nothing()
        node = item.node
        tensors = list(node.all_tensors()) if node else []
        self.title.setText(f"<b>{escape(shown(item.path))}</b>")
        self._fill_form(
            self.info_form,
            [
                ("Layer type", (node.layer_type if node else None) or "no guess"),
                ("Tensors", f"{len(tensors):,}"),
                ("Parameters", f"{item.parameters:,}"),
                ("Size", format_bytes(item.nbytes)),
                ("Dtype", item.dtype),
            ],
        )
        self.info_box.setTitle("Module")
        self.info_box.show()

    def show_tensor(self, info: TensorInfo, tensor: torch.Tensor) -> None:
        """Describe the tensor at once; statistics now (small) or on a worker thread (big)."""
        self.show_nothing()
        self.current_key = info.key
        self.title.setText(f"<b>{escape(shown(info.key))}</b>")
        rows = [
            ("Shape", format_shape(info.shape)),
            ("Dtype", info.dtype),
            ("Elements", f"{info.numel:,}"),
            ("Size", format_bytes(info.nbytes)),
            ("Kind", "buffer (not a parameter)" if info.is_buffer else "parameter"),
        ]
        if info.saved_device != "cpu":
            rows.append(("Saved on", f"{info.saved_device} (opened on the CPU)"))
        self._fill_form(self.info_form, rows)
        self.info_box.setTitle("Tensor")
        self.info_box.show()
        self.stats_box.show()
        problem = without_values(tensor)
        if problem:
            self._show_stats_note(problem)
            return
        if info.numel <= VALUES_LIMIT:
            self._show_values(tensor)
        if info.numel == 0:
            self._show_stats_note("The tensor is empty: no statistics.")
        elif info.numel <= SYNC_LIMIT:
            self._show_analysis(analyse_or_explain(tensor))
        else:
            self._pending_token = (info.key, id(tensor))
            self._show_stats_note(f"Computing statistics of {info.numel:,} values…")
            stop = threading.Event()
            self.loader.submit(
                Task(
                    STATS,
                    f"Computing statistics of {info.key}",
                    lambda: analyse_or_explain(tensor, stop),
                    self._pending_token,
                    stop,
                )
            )

    def cancel_statistics(self) -> None:
        """Stop the statistics in flight, if any: their result will never be shown."""
        if self._pending_token is not None:
            self._pending_token = None
            self.loader.cancel(STATS)

    def _show_values(self, tensor: torch.Tensor) -> None:
        try:
            text = values_text(tensor)
        except Exception:  # noqa: BLE001 - an exotic dtype shows no values, never a traceback
            return
        self.values.setPlainText(text)
        self.values_box.show()
        self.filler.hide()

    # results -----------------------------------------------------------------
    def _on_task_finished(self, name: str, token: object, result: object) -> None:
        if (
            name == STATS
            and token == self._pending_token
            and isinstance(result, TensorAnalysis | str)
        ):
            self._pending_token = None
            self._show_analysis(result)

    def _on_task_failed(self, name: str, token: object, error: object) -> None:
        if name == STATS and token == self._pending_token:
            self._pending_token = None
            self._show_stats_note(f"No statistics: {first_line(error)}")

    def _show_stats_note(self, text: str) -> None:
        self._clear_form(self.stats_form)
        note = QLabel(text)
        note.setTextFormat(Qt.TextFormat.PlainText)
        note.setObjectName("statsNote")
        note.setWordWrap(True)
        self.stats_form.addRow(note)

    def _show_analysis(self, analysis: TensorAnalysis | str) -> None:
        if isinstance(analysis, str):
            self._show_stats_note(analysis)
            return
        self.analysis = analysis
        self._fill_form(self.stats_form, stats_rows(analysis.stats))
        if math.isnan(analysis.stats.min):
            self.stats_form.addRow(QLabel("No finite values."))
        self._draw_histogram(analysis.histogram)

    def _draw_histogram(self, histogram: Histogram) -> None:
        if not histogram.counts:
            self.histogram.hide()
            return
        self._bars.setData(np.asarray(histogram.edges), np.asarray(histogram.counts))
        self.histogram.getPlotItem().enableAutoRange()
        self.histogram.show()
        self.filler.hide()

    # form helpers ------------------------------------------------------------
    def stats_text(self) -> dict[str, str]:
        """The statistics as shown (label -> value), for tests and copy-paste."""
        shown = {}
        for row in range(self.stats_form.rowCount()):
            label = self.stats_form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            field = self.stats_form.itemAt(row, QFormLayout.ItemRole.FieldRole)
            if label is not None and field is not None:
                label_widget, field_widget = label.widget(), field.widget()
                if isinstance(label_widget, QLabel) and isinstance(field_widget, QLabel):
                    shown[label_widget.text()] = field_widget.text()
        return shown

    def _fill_form(self, form: QFormLayout, rows: list[tuple[str, str]]) -> None:
        self._clear_form(form)
        for label, value in rows:
            field = QLabel(value)
            field.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(QLabel(label), field)

    @staticmethod
    def _clear_form(form: QFormLayout) -> None:
        while form.rowCount():
            form.removeRow(0)
