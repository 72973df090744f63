"""The teaching tabs beside the training plots: they follow the runs and show the current model.

The heavy lifting stays off the GUI thread: the controllers' insight bridge computes the live
decision boundary, a model snapshot and a probe on the training thread between batches; the full
validation pass for the confusion matrix, and a stored model's data and boundary, run as
background jobs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QFontDatabase, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)
from torch import nn

from workbench.controllers import jobs
from workbench.controllers.background_task import BackgroundTask
from workbench.controllers.insight_bridge import InsightRelay
from workbench.controllers.run_session import RunSession
from workbench.engine.current_model import CurrentModel
from workbench.engine.datasets import dataset_entry
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import ModelSpec
from workbench.engine.insight.autograd_graph import AutogradGraph
from workbench.engine.insight.decision_boundary import BoundaryGrid
from workbench.engine.insight.doctor import TrainingDoctor, stopped_by_loss_guard
from workbench.engine.insight.evaluation import (
    EvaluationResult,
    SampleSet,
    dataset_batches,
    evaluate_classifier,
)
from workbench.engine.insight.model_probe import ModelProbe, feature_maps, first_conv_filters
from workbench.engine.insight.predict import input_normalization
from workbench.engine.insight.run_context import (
    EpochInsight,
    RunContext,
    StoredModelInsight,
    stack_graph,
    stored_model_insight,
    trained_graph,
)
from workbench.engine.run_history import RunResult
from workbench.engine.script_export import export_script, write_script
from workbench.ui.error_dialog import show_error
from workbench.ui.insight.code_view import PythonHighlighter
from workbench.ui.insight.decision_boundary_view import DecisionBoundaryView
from workbench.ui.insight.doctor_banner import DoctorBanner
from workbench.ui.insight.evaluation_view import EvaluationView
from workbench.ui.insight.gradcam_view import GradCamView
from workbench.ui.insight.graph_view import AutogradGraphView
from workbench.ui.insight.model_probe_view import ModelProbeView
from workbench.ui.insight.norm_plot import SparseLogAxis
from workbench.ui.insight.predict_view import PredictView
from workbench.ui.project_document import ProjectDocument
from workbench.ui.qt import pg
from workbench.ui.screen_fit import ScrollingTabs

Array = np.ndarray[Any, Any]
GRAPH_BATCH = 4  # samples in the autograd graph's forward pass
CODE_DELAY_MS = 250  # the script preview waits for a pause in editing
TABS = ("boundary", "evaluation", "predict", "probe", "graph", "code", "gradcam")


@dataclass(frozen=True, eq=False)
class EvaluationOutcome:
    run: int
    epoch: int
    result: EvaluationResult
    filters: Array | None
    maps: Array | None


class InsightPanel(QWidget):
    """The doctor's banner over seven tabs: decision boundary, evaluation, predict, inside the
    model, autograd graph, code and Grad-CAM. It follows the session's in-process runs as they
    train, and otherwise shows the model `show_model()` hands it (a loaded file, an earlier or
    DDP run); the window places it, calls `show_model` and `clear` (another project) and
    `shutdown()`."""

    evaluation_updated = Signal(int)  # the epoch whose evaluation is now shown
    graph_updated = Signal()
    code_updated = Signal()

    def __init__(
        self,
        document: ProjectDocument,
        session: RunSession,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("insightPanel")
        self.setAccessibleName("insightPanel")
        self.document, self.session = document, session
        self.context: RunContext | None = None
        self.samples: SampleSet | None = None
        self.snapshot: nn.Module | None = None
        self.snapshot_spec: ModelSpec | None = None
        self.doctor = TrainingDoctor()
        self.probe = ModelProbe()
        self.run_id = 0
        self.current_model: CurrentModel = CurrentModel.fresh(document.experiment)
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
        self.model_name = QLabel("Model: fresh initialisation")
        self.model_name.setObjectName("insightModelName")
        self.model_name.setAccessibleName("insightModelName")
        self.banner = DoctorBanner()
        self.status = QLabel()
        self.status.setObjectName("insightStatus")
        self.status.setWordWrap(True)
        self.status.hide()
        self.tabs = ScrollingTabs()  # a page taller than a laptop's window scrolls
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
        self.gradcam = GradCamView(lambda: self.predict.last_input)
        self.tabs.addTab(self.gradcam, "Grad-CAM")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.model_name)
        layout.addWidget(self.banner)
        layout.addWidget(self.status)
        layout.addWidget(self.tabs, 1)
        self.evaluation_task = BackgroundTask(self)
        self.graph_task = BackgroundTask(self)
        self.model_task = BackgroundTask(self)
        jobs.register_owner(self)
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
        self.boundary.redraw_every.valueChanged.connect(lambda n: setattr(relay, "redraw_every", n))
        relay.attach(self.session)
        self.session.run_ended.connect(self._run_ended)
        self.document.changed.connect(self._experiment_changed)
        self.tabs.currentChanged.connect(lambda _index: self._tab_shown())
        self.evaluation_task.succeeded.connect(self._evaluation_ready)
        self.evaluation_task.failed.connect(self._evaluation_failed)
        self.evaluation_task.busy_changed.connect(self._evaluation_busy)
        self.graph_task.succeeded.connect(self._graph_ready)
        self.graph_task.failed.connect(self._graph_failed)
        self.graph_task.busy_changed.connect(self._graph_busy)
        self.model_task.succeeded.connect(self._stored_ready)
        self.model_task.failed.connect(
            lambda message: self._show_status(f"Cannot show this model: {message}")
        )
        self.code_timer.timeout.connect(self.refresh_code)
        self.evaluation.gallery.itemDoubleClicked.connect(self._explain_gallery_item)

    def _explain_gallery_item(self, item: QListWidgetItem) -> None:
        """A double-click on an evaluation sample: why did the model say that?"""
        if self.gradcam.explain_sample(int(item.data(Qt.ItemDataRole.UserRole))):
            self.show_tab("gradcam")

    def tab(self, name: str) -> QWidget:
        """A tab's page by short name: boundary, evaluation, predict, probe, graph or code."""
        page = self.tabs.widget(TABS.index(name))
        assert page is not None
        return page

    def show_tab(self, name: str) -> None:
        self.tabs.setCurrentIndex(TABS.index(name))

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Stop listening for runs and wait for background work (`jobs.shutdown_all()` calls
        it when the window closes: a finished evaluation may otherwise start the next)."""
        self.relay.detach()
        self.code_timer.stop()
        self._pending_evaluation, self._graph_waiting = None, False
        tasks = (self.evaluation_task, self.graph_task, self.model_task, self.gradcam)
        return all([task.shutdown(timeout_ms) for task in tasks])

    # ------------------------------------------------------------------ a run

    def show_model(self, model: CurrentModel, followed: bool = False) -> None:
        """Show the window's current model: `followed` when it is the run these tabs just
        watched (nothing to load), else its data and views are prepared off the GUI thread."""
        self.model_name.setText(f"Model: {model.description}")
        self.current_model = model
        if followed or not model.trained:
            if not model.trained:
                self.clear()
            return
        experiment, weights, run = model.experiment, model.weights(), self.run_id
        self._show_status(f"Loading the data for {model.description}…")
        self.model_task.run(lambda: (run, stored_model_insight(experiment, weights)))

    def clear(self) -> None:
        """Forget the runs and models shown (another project): no stale boundary, evaluation,
        prediction, probe or diagnosis is left behind."""
        self.run_id += 1
        self.context = self.samples = self.snapshot = self.snapshot_spec = None
        self.evaluated_epoch, self._pending_evaluation = None, None
        self._reset_views()
        self.predict.set_model(None, ())
        self.gradcam.set_model(None, None, ())
        self.boundary.set_data(np.zeros((0, 2)), np.zeros(0, dtype=np.int64))
        self._show_boundary_page()
        self._graph_dirty = True

    def _reset_views(self) -> None:
        self.doctor.reset()
        self.banner.set_diagnoses([])
        self.status.hide()
        self.probe = ModelProbe()
        self.probe_view.set_probe(self.probe)
        self.probe_view.set_filters(None)
        self.probe_view.set_feature_maps(None)
        self.norm_steps, self.norm_values = [], []
        self.norm_curve.setData([], [])
        self.evaluation.clear()

    @Slot(object)
    def _stored_ready(self, answer: tuple[int, StoredModelInsight]) -> None:
        run, insight = answer
        if run != self.run_id:
            return  # a run started, or another project opened, while it loaded
        context = insight.context
        self._run_started(context)
        self.status.hide()
        self.snapshot = insight.model
        self.predict.set_model(insight.model, context.info.class_names)
        self.gradcam.set_model(insight.model, self.samples, context.info.class_names)
        if insight.grid is not None:
            self.boundary.record_epoch(0, insight.grid)
            self.boundary.epoch_label.setText(self.current_model.name)
        self.evaluation.accuracy.setText(f"Evaluating {self.current_model.description}…")
        self._queue_evaluation(self._evaluation_job(context, insight.model, 0))

    @Slot(object)
    def _run_started(self, context: RunContext) -> None:
        self.run_id += 1
        self.context, self.snapshot = context, None
        self.snapshot_spec = context.experiment.model
        self.evaluated_epoch, self._pending_evaluation = None, None
        info = context.info
        self._reset_views()
        self.doctor.num_classes = info.num_classes
        self.samples = SampleSet(context.val, info.kind, info.class_names)
        self.evaluation.accuracy.setText("Evaluating the validation split after each epoch…")
        self.predict.set_task(
            info.kind, info.input_shape, input_normalization(context.experiment.data), self.samples
        )
        self.predict.set_model(None, info.class_names)
        self.gradcam.set_model(None, self.samples, info.class_names)
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
        self.gradcam.set_model(insight.model, self.samples, context.info.class_names)
        self._queue_evaluation(self._evaluation_job(context, insight.model, insight.report.epoch))
        if first:  # training changes the weights, never the graph: one redraw per run will do
            self._graph_dirty = True
            if self.tabs.currentIndex() == TABS.index("graph"):
                self.refresh_graph()

    @Slot(object, object)
    def _gradient_norms(self, steps: list[int], norms: list[float]) -> None:
        self.norm_steps += steps
        self.norm_values += [max(norm, 1e-12) if math.isfinite(norm) else 1e12 for norm in norms]
        self.norm_curve.setData(self.norm_steps, self.norm_values)

    @Slot(object)
    def _run_ended(self, result: RunResult) -> None:
        if self.context is None or not stopped_by_loss_guard(result.message):
            return
        # The loss guard ended the run (NaN, inf or an explosion): the doctor quotes its words.
        self.doctor.on_failed(result.message)
        self.banner.set_diagnoses(self.doctor.diagnoses)

    def _show_status(self, message: str) -> None:
        self.status.setText(message)
        self.status.setVisible(bool(message))

    # ------------------------------------------------------------------ evaluation

    def _evaluation_job(
        self, context: RunContext, model: nn.Module, epoch: int
    ) -> Callable[[], EvaluationOutcome]:
        run = self.run_id
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
            self.graph_task.run(lambda: trained_graph(snapshot, context, GRAPH_BATCH))
        else:
            self.graph_caption.setText(
                f"What loss.backward() walks for a batch of {GRAPH_BATCH} random inputs, through "
                "the current layer stack (untrained). Forward runs top to bottom; green leaves "
                "are the parameters whose .grad it fills."
            )
            self.graph_task.run(lambda: stack_graph(experiment, GRAPH_BATCH))

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
