"""The teaching tabs beside the training plots, fed live by the training controller.

The heavy lifting stays off the GUI thread: an observer on the training thread computes the
live decision boundary, a model snapshot and a probe between batches (where reading the model
is safe), and the full validation pass for the confusion matrix runs in a BackgroundTask.
"""

from __future__ import annotations

import keyword
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PySide6.QtCore import QObject, QRegularExpression, Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QHideEvent,
    QShowEvent,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from workbench.controllers.background_task import BackgroundTask
from workbench.controllers.training_controller import TrainingController
from workbench.engine.datasets import (
    BatchSource,
    DatasetInfo,
    LoaderBatchSource,
    TensorBatchSource,
    dataset_entry,
    describe_dataset,
)
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import Experiment, ModelSpec
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.insight.autograd_graph import AutogradGraph, autograd_graph
from workbench.engine.insight.decision_boundary import BoundaryGrid, LiveBoundary, padded_ranges
from workbench.engine.insight.doctor import TrainingDoctor
from workbench.engine.insight.evaluation import (
    EvaluationResult,
    SampleSet,
    dataset_batches,
    evaluate_classifier,
)
from workbench.engine.insight.model_probe import (
    ModelProbe,
    ProbeSnapshot,
    feature_maps,
    first_conv_filters,
    probe,
)
from workbench.engine.insight.outputs import snapshot_model
from workbench.engine.insight.predict import input_normalization
from workbench.engine.optimization import make_loss
from workbench.engine.reports import BaseObserver, BatchReport, EpochReport, RunStarted
from workbench.engine.script_export import export_script, write_script
from workbench.engine.trainer import Trainer
from workbench.ui.error_dialog import show_error
from workbench.ui.insight.decision_boundary_view import DecisionBoundaryView
from workbench.ui.insight.doctor_banner import DoctorBanner
from workbench.ui.insight.evaluation_view import EvaluationView
from workbench.ui.insight.graph_view import AutogradGraphView
from workbench.ui.insight.model_probe_view import ModelProbeView
from workbench.ui.insight.predict_view import PredictView
from workbench.ui.project_document import ProjectDocument
from workbench.ui.qt import pg

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Array = np.ndarray[Any, Any]
PROBE_BATCH = 256  # samples of the validation split the probe pushes through each epoch
GRAPH_BATCH = 4  # samples in the autograd graph's forward pass
NORM_INTERVAL_SECONDS = 0.02  # a gradient norm at most 50 times a second: a fixed, tiny cost
SEND_INTERVAL_SECONDS = 0.25  # how often new gradient norms travel to the GUI thread
CODE_DELAY_MS = 250  # the script preview waits for a pause in editing
TABS = ("boundary", "evaluation", "predict", "probe", "graph", "code")


# --------------------------------------------------------------------------- run data


@dataclass(frozen=True, eq=False)
class BoundaryPoints:
    """The 2-D points of both splits, as the boundary view draws them."""

    train_xy: Array
    train_labels: Array
    val_xy: Array
    val_labels: Array


@dataclass(frozen=True, eq=False)
class RunContext:
    """What the training thread learnt about a run once its data was loaded."""

    info: DatasetInfo
    experiment: Experiment
    train: Dataset[Any]
    val: Dataset[Any]
    loss_fn: LossFn
    points: BoundaryPoints | None


@dataclass(frozen=True, eq=False)
class EpochInsight:
    """An epoch's report, a copy of the model at its end (eval mode) and its probe."""

    report: EpochReport
    model: nn.Module
    probe: ProbeSnapshot | None


@dataclass(frozen=True, eq=False)
class EvaluationOutcome:
    run: int
    epoch: int
    result: EvaluationResult
    filters: Array | None
    maps: Array | None


def source_dataset(source: BatchSource) -> Dataset[Any]:
    """The dataset behind a batch source, in index order (for galleries and evaluation)."""
    if isinstance(source, TensorBatchSource):
        return TensorDataset(source.x, source.y)
    if isinstance(source, LoaderBatchSource):
        dataset: Dataset[Any] = source.loader.dataset
        return dataset
    raise TypeError(f"unknown batch source {type(source).__name__}")


def dataset_arrays(dataset: Dataset[Any]) -> tuple[Array, Array]:
    """All inputs and labels of a (small) dataset as numpy arrays."""
    xs, ys = [], []
    for x, y in dataset_batches(dataset):
        xs.append(x.detach().float().cpu().numpy())
        ys.append(y.detach().reshape(-1).long().cpu().numpy())
    if not xs:
        return np.zeros((0, 2), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.concatenate(xs), np.concatenate(ys)


def first_batch(dataset: Dataset[Any], size: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    return next(iter(dataset_batches(dataset, size)), None)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# --------------------------------------------------------------------------- training thread


class InsightRelay(QObject):
    """Carries the training thread's findings to the GUI thread (queued, in order)."""

    started = Signal(object)  # RunContext
    grid_ready = Signal(int, int, object)  # epoch, batch (-1: end of epoch), BoundaryGrid
    epoch_ready = Signal(object)  # EpochInsight
    gradient_norms = Signal(object, object)  # steps, total norms (new since the last)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # Read by the training thread before each live frame: frames nobody sees cost ~10 %
        # of a fast run's time. (A plain bool: reading it from another thread is safe.)
        self.live_frames_wanted = True


class StepGradientNorms:
    """The total gradient norm right before optimizer steps, sampled at most every
    `interval` seconds so that fast runs pay a fixed, small price (one fused norm)."""

    def __init__(self, trainer: Trainer, interval: float = NORM_INTERVAL_SECONDS) -> None:
        self.trainer, self.interval = trainer, interval
        self.steps: list[int] = []
        self.norms: list[float] = []
        self._last = -math.inf

    def on_after_backward(self, model: nn.Module) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        gradients = [p.grad for p in model.parameters() if p.grad is not None]
        if gradients:
            self.steps.append(self.trainer.step + 1)  # the step these gradients are for
            self.norms.append(float(nn.utils.get_total_norm(gradients)))


class InsightObserver(BaseObserver):
    """Runs on the training thread, between batches: the live boundary of 2-D sets, a model
    snapshot and a probe after each epoch, and the gradient norm before each optimizer step.

    A failure here must never stop the training: it is reported once and the observer goes
    quiet for the rest of the run.
    """

    def __init__(self, trainer: Trainer, relay: InsightRelay) -> None:
        self.trainer, self.relay = trainer, relay
        self.live: LiveBoundary | None = None
        self.probe_batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self.norms: StepGradientNorms | None = None
        self.active = True
        self._sent, self._last_send = 0, 0.0

    def _guarded(self, work: Callable[..., None], *args: Any) -> None:
        if not self.active:
            return
        try:
            work(*args)
        except Exception as exc:  # noqa: BLE001 - a view must never stop the training
            self.active = False
            self.relay.failed.emit(f"The insight tabs stopped following this run: {_one_line(exc)}")

    def on_started(self, report: RunStarted) -> None:
        self._guarded(self._start, report)

    def on_batch_end(self, report: BatchReport) -> None:
        if self.live is not None and self.relay.live_frames_wanted:
            self._guarded(self.live.on_batch_end, report)
        if time.monotonic() - self._last_send >= SEND_INTERVAL_SECONDS:
            self._guarded(self._send_norms)

    def on_epoch_end(self, report: EpochReport) -> None:
        self._guarded(self._epoch_end, report)

    def on_after_backward(self, model: nn.Module) -> None:
        if self.norms is not None:
            self._guarded(self.norms.on_after_backward, model)

    def _start(self, report: RunStarted) -> None:
        trainer = self.trainer
        loaders = trainer.loaders
        info = loaders.info
        train, val = source_dataset(loaders.train), source_dataset(loaders.val)
        self.probe_batch = first_batch(val, PROBE_BATCH) or first_batch(train, PROBE_BATCH)
        # Under 16-mixed the gradients still carry the loss scale there: the norms would lie.
        if trainer.precision.name != "16-mixed":
            self.norms = StepGradientNorms(trainer)
        points = None
        if info.kind == "points2d" and tuple(info.input_shape) == (2,):
            train_xy, train_labels = dataset_arrays(train)
            val_xy, val_labels = dataset_arrays(val)
            points = BoundaryPoints(train_xy, train_labels, val_xy, val_labels)
        self.relay.started.emit(
            RunContext(info, trainer.experiment, train, val, trainer.loss_fn, points)
        )
        if points is not None:
            x_range, y_range = padded_ranges(np.concatenate([points.train_xy, points.val_xy]))
            self.live = LiveBoundary(
                lambda: trainer.model, x_range, y_range, on_grid=self.relay.grid_ready.emit
            )
            self.live.on_started(report)

    def _epoch_end(self, report: EpochReport) -> None:
        if self.live is not None:
            self.live.on_epoch_end(report)
        model = self.trainer.model
        measured = None
        if self.probe_batch is not None:
            measured = probe(model, report.epoch, self.probe_batch, self.trainer.loss_fn)
        snapshot = snapshot_model(model).eval()  # eval for good: readers never flip its mode
        self._send_norms()
        self.relay.epoch_ready.emit(EpochInsight(report, snapshot, measured))

    def _send_norms(self) -> None:
        self._last_send = time.monotonic()
        if self.norms is None or len(self.norms.steps) <= self._sent:
            return
        steps, norms = self.norms.steps[self._sent :], self.norms.norms[self._sent :]
        self._sent = len(self.norms.steps)
        self.relay.gradient_norms.emit(list(steps), list(norms))


# --------------------------------------------------------------------------- code preview


def _format(colour: str, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    style = QTextCharFormat()
    style.setForeground(QColor(colour))
    if bold:
        style.setFontWeight(QFont.Weight.Bold)
    style.setFontItalic(italic)
    return style


class PythonHighlighter(QSyntaxHighlighter):
    """Keywords, names being defined, numbers, strings, comments and docstrings, in colour."""

    _IN_DOCSTRING = 1

    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)
        words = "|".join(keyword.kwlist)
        self.rules = [
            (QRegularExpression(rf"\b(?:{words})\b"), _format("#7A3E9D", bold=True)),
            (QRegularExpression(r"\b(?:def|class)\s+(\w+)"), _format("#0060A0", bold=True)),
            (
                QRegularExpression(r"\b[0-9][0-9_]*(?:\.[0-9]+)?(?:e-?[0-9]+)?\b"),
                _format("#A35200"),
            ),
            (QRegularExpression(r"\"[^\"\n]*\"|'[^'\n]*'"), _format("#2E7D32")),
            (QRegularExpression(r"#[^\n]*$"), _format("#707070", italic=True)),
        ]
        self.docstring = _format("#2E7D32", italic=True)
        self.quotes = QRegularExpression('"""')

    def highlightBlock(self, text: str) -> None:
        for pattern, style in self.rules:
            matches = pattern.globalMatch(text)
            while matches.hasNext():
                match = matches.next()
                group = 1 if pattern.captureCount() else 0
                self.setFormat(match.capturedStart(group), match.capturedLength(group), style)
        self._docstrings(text)

    def _docstrings(self, text: str) -> None:
        self.setCurrentBlockState(0)
        start = 0 if self.previousBlockState() == self._IN_DOCSTRING else -1
        position = 0
        while True:
            match = self.quotes.match(text, position)
            if start < 0:
                if not match.hasMatch():
                    return
                start, position = match.capturedStart(), match.capturedEnd()
                continue
            if not match.hasMatch():
                self.setFormat(start, len(text) - start, self.docstring)
                self.setCurrentBlockState(self._IN_DOCSTRING)
                return
            self.setFormat(start, match.capturedEnd() - start, self.docstring)
            start, position = -1, match.capturedEnd()


# --------------------------------------------------------------------------- plots


class SparseLogAxis(pg.AxisItem):  # type: ignore[misc]
    """A log axis that labels 1, 2 and 5 times powers of ten (only the powers where space is
    short) instead of every minor tick, which piles up labels on a short plot."""

    LABEL_PIXELS = 18

    def logTickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        numbers = [10 ** float(value) * scale for value in values]
        mantissas = [round(number / 10 ** math.floor(math.log10(number)), 3) for number in numbers]
        keep = {1.0, 2.0, 5.0}
        length = self.geometry().height() if self.orientation in ("left", "right") else 0
        if length and sum(m in keep for m in mantissas) * self.LABEL_PIXELS > length:
            keep = {1.0}
        return [f"{n:g}" if m in keep else "" for n, m in zip(numbers, mantissas, strict=True)]


# --------------------------------------------------------------------------- the panel


class InsightPanel(QWidget):
    """The doctor's banner over six tabs: decision boundary, evaluation, predict, inside the
    model, autograd graph and code. It wires itself to the document and the controller; the
    window only places it and calls `shutdown()` on close."""

    evaluation_updated = Signal(int)  # the epoch whose evaluation is now shown
    graph_updated = Signal()
    code_updated = Signal()

    def __init__(
        self,
        document: ProjectDocument,
        controller: TrainingController,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("insightPanel")
        self.setAccessibleName("insightPanel")
        self.document, self.controller = document, controller
        self.context: RunContext | None = None
        self.samples: SampleSet | None = None
        self.snapshot: nn.Module | None = None
        self.snapshot_spec: ModelSpec | None = None
        self.doctor = TrainingDoctor()
        self.probe = ModelProbe()
        self.run_id = 0
        self.evaluated_epoch: int | None = None
        self._pending_evaluation: Callable[[], EvaluationOutcome] | None = None
        self._graph_dirty = self._code_dirty = True
        self._graph_waiting = False
        self._build()
        self.relay = InsightRelay(self)
        self._wire()
        self._show_boundary_page()
        self._update_live_frames()

    # ------------------------------------------------------------------ construction

    def _build(self) -> None:
        self.banner = DoctorBanner()
        self.status = QLabel()
        self.status.setObjectName("insightStatus")
        self.status.setWordWrap(True)
        self.status.hide()
        self.tabs = QTabWidget()
        self.tabs.setObjectName("insightTabs")
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self._boundary_page(), "Decision boundary")
        self.evaluation = EvaluationView()
        self.tabs.addTab(self.evaluation, "Evaluation")
        self.predict = PredictView()
        self.tabs.addTab(self.predict, "Predict")
        self.tabs.addTab(self._probe_page(), "Inside the model")
        self.tabs.addTab(self._graph_page(), "Autograd graph")
        self.tabs.addTab(self._code_page(), "Code")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.banner)
        layout.addWidget(self.status)
        layout.addWidget(self.tabs, 1)
        self.evaluation_task = BackgroundTask(self)
        self.graph_task = BackgroundTask(self)
        self.code_timer = QTimer(self)
        self.code_timer.setSingleShot(True)
        self.code_timer.setInterval(CODE_DELAY_MS)

    def _boundary_page(self) -> QWidget:
        self.boundary = DecisionBoundaryView()
        self.boundary_note = QLabel()
        self.boundary_note.setObjectName("boundaryNote")
        self.boundary_note.setWordWrap(True)
        self.boundary_note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.boundary_note.setMargin(40)
        self.boundary_pages = QStackedWidget()
        self.boundary_pages.addWidget(self.boundary)
        self.boundary_pages.addWidget(self.boundary_note)
        return self.boundary_pages

    def _probe_page(self) -> QWidget:
        self.probe_view = ModelProbeView()
        self.norm_plot = pg.PlotWidget(
            title="Total gradient norm before optimizer steps",
            axisItems={"left": SparseLogAxis(orientation="left")},
        )
        self.norm_plot.setObjectName("stepGradientNormPlot")
        self.norm_plot.setMenuEnabled(False)
        self.norm_plot.setLogMode(y=True)
        self.norm_plot.setLabel("bottom", "optimizer step")
        self.norm_plot.setMinimumHeight(170)
        self.norm_curve = self.norm_plot.plot(pen=pg.mkPen("#D55E00", width=1.5))
        self.norm_steps: list[int] = []
        self.norm_values: list[float] = []
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.probe_view)
        splitter.addWidget(self.norm_plot)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        return splitter

    def _graph_page(self) -> QWidget:
        self.graph_view = AutogradGraphView()
        self.graph_caption = QLabel()
        self.graph_caption.setObjectName("graphCaption")
        self.graph_caption.setWordWrap(True)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.graph_caption)
        layout.addWidget(self.graph_view, 1)
        return page

    def _code_page(self) -> QWidget:
        self.code_view = QPlainTextEdit()
        self.code_view.setObjectName("scriptPreview")
        self.code_view.setAccessibleName("scriptPreview")
        self.code_view.setReadOnly(True)
        self.code_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.code_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.highlighter = PythonHighlighter(self.code_view.document())
        self.code_caption = QLabel(
            "The plain PyTorch script that trains this experiment (it follows your edits)."
        )
        self.code_caption.setWordWrap(True)
        self.save_script_button = QPushButton("Save script…")
        self.save_script_button.setObjectName("saveScriptButton")
        self.save_script_button.setToolTip("Write this script to a .py file you can run anywhere")
        self.save_script_button.clicked.connect(self.save_script_dialog)
        row = QHBoxLayout()
        row.addWidget(self.code_caption, 1)
        row.addWidget(self.save_script_button)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(row)
        layout.addWidget(self.code_view, 1)
        return page

    def _wire(self) -> None:
        relay = self.relay
        relay.started.connect(self._run_started)
        relay.grid_ready.connect(self._grid_ready)
        relay.epoch_ready.connect(self._epoch_ready)
        relay.gradient_norms.connect(self._gradient_norms)
        relay.failed.connect(self._show_status)
        self.controller.add_observer_factory(self._observer_for)
        self.controller.run_failed.connect(self._run_failed)
        self.document.changed.connect(self._experiment_changed)
        self.tabs.currentChanged.connect(lambda _index: self._tab_shown())
        self.evaluation_task.succeeded.connect(self._evaluation_ready)
        self.evaluation_task.failed.connect(self._evaluation_failed)
        self.evaluation_task.busy_changed.connect(self._evaluation_busy)
        self.graph_task.succeeded.connect(self._graph_ready)
        self.graph_task.failed.connect(self._graph_failed)
        self.graph_task.busy_changed.connect(self._graph_busy)
        self.code_timer.timeout.connect(self.refresh_code)

    def _observer_for(self, trainer: Trainer) -> InsightObserver:
        return InsightObserver(trainer, self.relay)

    def tab(self, name: str) -> QWidget:
        """A tab's page by short name: boundary, evaluation, predict, probe, graph or code."""
        page = self.tabs.widget(TABS.index(name))
        assert page is not None
        return page

    def show_tab(self, name: str) -> None:
        self.tabs.setCurrentIndex(TABS.index(name))

    def shutdown(self) -> None:
        """Stop listening for runs and wait for background work (call when the window closes)."""
        self.controller.remove_observer_factory(self._observer_for)
        self.code_timer.stop()
        self._pending_evaluation, self._graph_waiting = None, False
        self.evaluation_task.shutdown()
        self.graph_task.shutdown()

    # ------------------------------------------------------------------ a run

    @Slot(object)
    def _run_started(self, context: RunContext) -> None:
        self.run_id += 1
        self.context, self.snapshot = context, None
        self.snapshot_spec = context.experiment.model
        self.evaluated_epoch, self._pending_evaluation = None, None
        info = context.info
        self.doctor.reset()
        self.doctor.num_classes = info.num_classes
        self.banner.set_diagnoses([])
        self.status.hide()
        self.probe = ModelProbe()
        self.probe_view.set_probe(self.probe)
        self.probe_view.set_filters(None)
        self.probe_view.set_feature_maps(None)
        self.norm_steps, self.norm_values = [], []
        self.norm_curve.setData([], [])
        self.samples = SampleSet(context.val, info.kind, info.class_names)
        self.evaluation.matrix_model.set_result(None)
        self.evaluation.accuracy.setText("Evaluating the validation split after each epoch…")
        self.predict.set_task(
            info.kind, info.input_shape, input_normalization(context.experiment.data), self.samples
        )
        self.predict.set_model(None, info.class_names)
        points = context.points
        if points is not None:
            self.boundary.set_data(
                points.train_xy, points.train_labels, points.val_xy, points.val_labels,
                info.class_names,
            )  # fmt: skip
        self._show_boundary_page()
        self._graph_dirty = True

    @Slot(int, int, object)
    def _grid_ready(self, epoch: int, batch: int, grid: BoundaryGrid) -> None:
        if batch >= 0:
            self.boundary.set_grid(grid)
        else:
            self.boundary.record_epoch(epoch, grid)

    @Slot(object)
    def _epoch_ready(self, insight: EpochInsight) -> None:
        context = self.context
        if context is None:
            return
        self.doctor.add_epoch(insight.report)
        if insight.probe is not None:
            self.probe.snapshots.append(insight.probe)
            self.doctor.set_snapshot(insight.probe)
            self.probe_view.set_probe(self.probe)
        self.banner.set_diagnoses(self.doctor.diagnoses)
        first = self.snapshot is None
        self.snapshot = insight.model
        self.predict.set_model(insight.model, context.info.class_names)
        self._queue_evaluation(self._evaluation_job(context, insight))
        if first:  # training changes the weights, never the graph: one redraw per run will do
            self._graph_dirty = True
            if self.tabs.currentIndex() == TABS.index("graph"):
                self.refresh_graph()

    @Slot(object, object)
    def _gradient_norms(self, steps: list[int], norms: list[float]) -> None:
        self.norm_steps += steps
        self.norm_values += [max(norm, 1e-12) if math.isfinite(norm) else 1e12 for norm in norms]
        self.norm_curve.setData(self.norm_steps, self.norm_values)

    @Slot(str)
    def _run_failed(self, message: str) -> None:
        if "loss became" not in message or self.context is None:
            return
        # The run ended on a non-finite loss: the doctor explains divergence from such a row.
        trainer = self.controller.trainer
        optimizer = getattr(trainer, "optimizer", None)
        lr = float(optimizer.param_groups[0]["lr"]) if optimizer is not None else None
        epoch = len(self.doctor.history) + 1
        self.doctor.add_epoch({"epoch": epoch, "train_loss": math.nan, "lr": lr})
        self.banner.set_diagnoses(self.doctor.diagnoses)

    def _show_status(self, message: str) -> None:
        self.status.setText(message)
        self.status.setVisible(bool(message))

    # ------------------------------------------------------------------ evaluation

    def _evaluation_job(
        self, context: RunContext, insight: EpochInsight
    ) -> Callable[[], EvaluationOutcome]:
        run, epoch, model = self.run_id, insight.report.epoch, insight.model
        batch_size = max(1, context.experiment.data.val_batch_size)
        names = context.info.class_names
        samples = self.samples

        def evaluate() -> EvaluationOutcome:
            result = evaluate_classifier(model, dataset_batches(context.val, batch_size), names)
            filters = first_conv_filters(model)
            maps = None
            if filters is not None and samples is not None and len(samples):
                maps = feature_maps(model, samples.input(0))
            return EvaluationOutcome(run, epoch, result, filters, maps)

        return evaluate

    def _queue_evaluation(self, job: Callable[[], EvaluationOutcome]) -> None:
        """One evaluation at a time; while one runs, only the newest epoch waits its turn."""
        if self.evaluation_task.is_busy:
            self._pending_evaluation = job
        else:
            self.evaluation_task.run(job)

    @Slot(bool)
    def _evaluation_busy(self, busy: bool) -> None:
        if not busy and self._pending_evaluation is not None:
            job, self._pending_evaluation = self._pending_evaluation, None
            self.evaluation_task.run(job)

    @Slot(object)
    def _evaluation_ready(self, outcome: EvaluationOutcome) -> None:
        if outcome.run != self.run_id:
            return  # a finished evaluation of an earlier run
        self.evaluation.set_evaluation(outcome.result, self.samples)
        self.probe_view.set_filters(outcome.filters)
        self.probe_view.set_feature_maps(outcome.maps)
        self.evaluated_epoch = outcome.epoch
        self.evaluation_updated.emit(outcome.epoch)

    @Slot(str)
    def _evaluation_failed(self, message: str) -> None:
        self.evaluation.accuracy.setText(f"The evaluation failed: {message}")

    # ------------------------------------------------------------------ tabs on demand

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._update_live_frames()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.relay.live_frames_wanted = False  # the children learn they are hidden only later

    def _update_live_frames(self) -> None:
        """Live boundary frames only while someone can see them (epoch grids always)."""
        self.relay.live_frames_wanted = self.boundary.isVisible()

    def _tab_shown(self) -> None:
        self._update_live_frames()
        current = self.tabs.currentIndex()
        if current == TABS.index("graph") and self._graph_dirty:
            self.refresh_graph()
        elif current == TABS.index("code") and self._code_dirty:
            self.refresh_code()

    @Slot()
    def _experiment_changed(self) -> None:
        self._graph_dirty = self._code_dirty = True
        if self.context is None:
            self._show_boundary_page()
        current = self.tabs.currentIndex()
        if current == TABS.index("code"):
            self.code_timer.start()
        elif current == TABS.index("graph"):
            self.refresh_graph()

    def _show_boundary_page(self) -> None:
        """The boundary of the last run's 2-D data; else a note on what the tab needs."""
        if self.context is not None:
            name, kind = self.context.info.name, self.context.info.kind
            shape = tuple(self.context.info.input_shape)
        else:
            name = self.document.experiment.data.name
            try:
                kind, shape = dataset_entry(name).kind, ()
            except WorkbenchError:
                kind, shape = "", ()
        if kind == "points2d" and shape in ((), (2,)):
            self.boundary_pages.setCurrentWidget(self.boundary)
            self._update_live_frames()
            return
        inputs = " is not such a dataset"
        if shape:
            count = math.prod(shape)
            sizes = ",&nbsp;".join(str(size) for size in shape)  # the shape never wraps
            inputs = f" has inputs of shape [{sizes}]"
            inputs += f" ({count} numbers)" if count != 1 else ""
        self.boundary_note.setText(
            "<p style='font-size:large'><b>The decision boundary needs a 2-D dataset.</b></p>"
            "<p>It colours every point of a plane by the class the model predicts there, so it "
            f"can only be drawn for inputs of two numbers; <b>{name}</b>{inputs}."
            "</p><p>Pick <b>moons</b>, <b>circles</b>, <b>xor</b>, <b>spirals</b>, <b>blobs</b> "
            "or <b>toy</b> in the Data panel (or open the moons-mlp preset) and train, to watch "
            "the model bend its boundary.</p>"
        )
        self.boundary_pages.setCurrentWidget(self.boundary_note)
        self._update_live_frames()

    # ------------------------------------------------------------------ autograd graph

    def refresh_graph(self) -> None:
        """Rebuild the graph off the GUI thread: of the trained model when the stack still
        matches it, else of the current stack freshly built (random inputs of the right shape).
        While one is being built, the next waits for it (edits can come faster)."""
        if self.graph_task.is_busy:
            self._graph_waiting = True
            return
        self._graph_dirty = self._graph_waiting = False
        experiment = self.document.experiment
        context, snapshot = self.context, self.snapshot
        trained = (
            snapshot is not None and context is not None
            and self.snapshot_spec == experiment.model
        )  # fmt: skip
        if trained:
            assert snapshot is not None and context is not None
            self.graph_caption.setText(
                f"What loss.backward() walks for a batch of {GRAPH_BATCH} validation samples, "
                "through the trained model. Forward runs top to bottom; green leaves are the "
                "parameters whose .grad it fills."
            )
            self.graph_task.run(lambda: _trained_graph(snapshot, context))
        else:
            self.graph_caption.setText(
                f"What loss.backward() walks for a batch of {GRAPH_BATCH} random inputs, through "
                "the current layer stack (untrained). Forward runs top to bottom; green leaves "
                "are the parameters whose .grad it fills."
            )
            self.graph_task.run(lambda: _stack_graph(experiment))

    @Slot(bool)
    def _graph_busy(self, busy: bool) -> None:
        if not busy and self._graph_waiting:
            self.refresh_graph()

    @Slot(object)
    def _graph_ready(self, graph: AutogradGraph) -> None:
        self.graph_view.set_graph(graph)
        self.graph_updated.emit()

    @Slot(str)
    def _graph_failed(self, message: str) -> None:
        self.graph_view.scene().clear()
        self.graph_caption.setText(f"No graph for this layer stack yet: {message}")
        self.graph_updated.emit()

    # ------------------------------------------------------------------ code

    def refresh_code(self) -> None:
        """Show the script for the current experiment, or why it cannot be exported yet."""
        self.code_timer.stop()
        self._code_dirty = False
        experiment = self.document.experiment
        try:
            text = export_script(experiment, self._source_name())
        except WorkbenchError as exc:
            text = f"# This experiment cannot be exported yet:\n# {exc}\n"
            self.save_script_button.setEnabled(False)
        else:
            self.save_script_button.setEnabled(True)
        scroll = self.code_view.verticalScrollBar().value()
        self.code_view.setPlainText(text)
        self.code_view.verticalScrollBar().setValue(scroll)
        self.code_updated.emit()

    def _source_name(self) -> str | None:
        return self.document.path.name if self.document.path is not None else None

    def save_script(self, path: str | Path) -> Path | None:
        """Write the script atomically; a problem is shown, not raised."""
        try:
            written = write_script(self.document.experiment, path, self._source_name())
        except WorkbenchError as exc:
            show_error(self, "Cannot export the script", str(exc))
            return None
        except OSError as exc:
            show_error(self, "Cannot save the script", f"{path}: {exc.strerror or exc}")
            return None
        self.code_caption.setText(f"Saved {written}; run it with: python {written.name}")
        return written

    def save_script_dialog(self) -> None:
        start = self.document.path.with_suffix(".py") if self.document.path else Path("train.py")
        path, _ = QFileDialog.getSaveFileName(
            self, "Save training script", str(start), "Python script (*.py)"
        )
        if path:
            self.save_script(path if path.endswith(".py") else f"{path}.py")


# --------------------------------------------------------------------------- graph jobs


def _graph_with_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn
) -> AutogradGraph:
    try:
        return autograd_graph(model, x, y, loss_fn)
    except (RuntimeError, ValueError, IndexError):
        return autograd_graph(model, x)  # a loss that cannot take these targets: to the output


def _trained_graph(snapshot: nn.Module, context: RunContext) -> AutogradGraph:
    batch = first_batch(context.val, GRAPH_BATCH) or first_batch(context.train, GRAPH_BATCH)
    if batch is None:
        raise ValueError("the dataset has no samples")
    x, y = batch
    # A private copy: the graph needs train mode, and other readers share the snapshot.
    return _graph_with_loss(snapshot_model(snapshot), x, y, context.loss_fn)


def _stack_graph(experiment: Experiment) -> AutogradGraph:
    built = build_experiment_model(experiment)
    info = describe_dataset(experiment.data)
    shape = tuple(experiment.model.input_shape or info.input_shape)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((GRAPH_BATCH, *shape), generator=generator)
    y = torch.randint(0, max(info.num_classes, 1), (GRAPH_BATCH,), generator=generator)
    return _graph_with_loss(built.module, x, y, make_loss(experiment.train.loss))
