"""Profile tab: where a training step's time goes, layer by layer, and measured what-ifs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from PySide6.QtCore import Qt, QTemporaryDir, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.controllers.model_job import PROFILE, WHAT_IFS, ModelJob, Weights
from workbench.engine.experiment import Experiment
from workbench.ui.profile_table import (
    SHARE_COLUMN,
    LayerTimeModel,
    ShareBarDelegate,
    milliseconds,
    percent,
    tagged,
)

if TYPE_CHECKING:  # the profiler loads torch.utils.flop_counter (and triton): loaded on first use
    from workbench.engine.profiling import ProfileReport, WhatIf

PHASE_COLOURS = ("#999999", "#0072B2", "#E69F00", "#009E73")  # data, forward, backward, optimizer
COMPILE_SKIPPED = "skipped: tick “torch.compile” to measure it (compiling takes a minute or more)"


@dataclass(frozen=True)
class ProfileSource:
    """What to profile: the project's experiment, the weights, and the name a user reads."""

    experiment: Experiment
    weights: Weights
    description: str


class StepSplitBar(QWidget):
    """One horizontal bar split into the step's phases: data, forward, backward, optimizer."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.parts: tuple[float, ...] = ()
        self.setMinimumHeight(14)
        self.setMaximumHeight(14)

    def set_parts(self, parts: tuple[float, ...]) -> None:
        self.parts = parts
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        total = sum(self.parts)
        if total <= 0:
            return
        painter = QPainter(self)
        left = 0.0
        for value, colour in zip(self.parts, PHASE_COLOURS, strict=False):
            width = self.width() * value / total
            painter.fillRect(int(left), 0, max(round(width), 1), self.height(), QColor(colour))
            left += width
        painter.end()


def step_parts(report: ProfileReport) -> tuple[tuple[str, float], ...]:
    step = report.step
    return (
        ("data", step.data_ms),
        ("forward", step.forward_ms + step.loss_ms),
        ("backward", step.backward_ms),
        ("optimizer", step.optimizer_ms),
    )


def speed_text(what_if: WhatIf) -> str:
    from workbench.engine.profiling.report import MEASURED

    ratio = what_if.speed_ratio
    if what_if.status != MEASURED or ratio is None:
        return "—"
    if ratio >= 1.0 or ratio <= 0.0:
        return f"{ratio:.2f}× faster"
    return f"{1.0 / ratio:.2f}× slower"


class ProfilePanel(QWidget):
    """Profiles the window's model (`source()`), in the background, and draws the result.

    `hottest_found(name)` names the hottest layer once a profile is shown, so the window can
    mark its row in the layer stack.
    """

    hottest_found = Signal(str)
    report_shown = Signal(object)  # ProfileReport
    what_ifs_shown = Signal(object)  # tuple[WhatIf, ...]

    def __init__(self, source: Callable[[], ProfileSource], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = source
        self.report: ProfileReport | None = None
        self.profiled: ProfileSource | None = None
        self._trace_dir = QTemporaryDir()
        self.job = ModelJob(self, name="ProfileThread")
        self.job.progressed.connect(self._progressed)
        self.job.succeeded.connect(self._succeeded)
        self.job.failed.connect(self._failed)
        self.job.cancelled.connect(lambda kind: self._failed(kind, "Cancelled: nothing measured."))
        self.job.busy_changed.connect(self._busy_changed)
        self._build()
        self._busy_changed(False)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.heading = tagged(
            QLabel("Profile a training step of the current model."), "profileHeading"
        )
        self.heading.setWordWrap(True)
        self.steps = tagged(QSpinBox(), "profileSteps")
        self.steps.setRange(1, 200)
        self.steps.setValue(10)
        self.steps.setToolTip("Training steps timed (after up to 3 warm-up steps)")
        self.profile_button = tagged(QPushButton("&Profile"), "profileButton")
        self.profile_button.clicked.connect(self.start_profile)
        self.cancel_button = tagged(QPushButton("Cancel"), "profileCancel")
        self.cancel_button.clicked.connect(self.job.cancel)
        self.progress = tagged(QProgressBar(), "profileProgress")
        self.progress.setRange(0, 100)
        self.status = tagged(QLabel(""), "profileStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Steps:"))
        controls.addWidget(self.steps)
        controls.addWidget(self.profile_button)
        controls.addWidget(self.cancel_button)
        controls.addWidget(self.progress, 1)

        self.step_label = tagged(QLabel(""), "profileStepSplit")
        self.step_label.setWordWrap(True)
        self.step_bar = StepSplitBar()
        self.memory_label = tagged(QLabel(""), "profilePeakMemory")
        self.memory_label.setWordWrap(True)
        self.trace_button = tagged(QPushButton("Save Chrome &Trace…"), "profileSaveTrace")
        self.trace_button.setToolTip(
            "A trace of two steps, for ui.perfetto.dev or chrome://tracing"
        )
        self.trace_button.clicked.connect(self.save_trace_dialog)
        memory_row = QHBoxLayout()
        memory_row.addWidget(self.memory_label, 1)
        memory_row.addWidget(self.trace_button)

        self.table_model = LayerTimeModel(self)
        self.table = tagged(QTableView(), "profileLayerTable")
        self.table.setModel(self.table_model)
        self.table.setItemDelegateForColumn(SHARE_COLUMN, ShareBarDelegate(self.table_model, self))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(SHARE_COLUMN, QHeaderView.ResizeMode.Stretch)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self._what_if_box())
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)

        box = QVBoxLayout(self)
        box.addWidget(self.heading)
        box.addLayout(controls)
        box.addWidget(self.status)
        box.addWidget(self.step_label)
        box.addWidget(self.step_bar)
        box.addLayout(memory_row)
        box.addWidget(splitter, 1)

    def _what_if_box(self) -> QGroupBox:
        group = QGroupBox("What if… (each measured side by side with the step as configured)")
        self.what_if_button = tagged(QPushButton("&Measure What-ifs"), "profileWhatIfsButton")
        self.what_if_button.setToolTip("Times training steps again for each change: a minute or so")
        self.what_if_button.clicked.connect(self.start_what_ifs)
        self.compile_check = tagged(QCheckBox("torch.compile (slow to compile)"), "profileCompile")
        self.compile_check.setToolTip("Also measure torch.compile: a minute or more to compile")
        self.what_if_table = tagged(QTableWidget(0, 3), "profileWhatIfTable")
        self.what_if_table.setHorizontalHeaderLabels(("What if", "Training step speed", "How"))
        self.what_if_table.verticalHeader().setVisible(False)
        self.what_if_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.what_if_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.what_if_table.setWordWrap(False)
        self.what_if_table.setMinimumHeight(130)
        self.what_if_status = tagged(QLabel(""), "profileWhatIfStatus")
        row = QHBoxLayout()
        row.addWidget(self.what_if_button)
        row.addWidget(self.compile_check)
        row.addWidget(self.what_if_status, 1)
        box = QVBoxLayout(group)
        box.addLayout(row)
        box.addWidget(self.what_if_table)
        return group

    # ------------------------------------------------------------------ actions
    @property
    def trace_path(self) -> Path:
        return Path(self._trace_dir.path()) / "profile-trace.json"

    def start_profile(self) -> bool:
        """Profile the current model in the background; False when busy."""
        if self.job.is_busy:
            return False
        from workbench.controllers.profile_export import profile_work

        source = self.source()
        self.profiled = source
        self.heading.setText(f"Profile of {source.description}")
        self.trace_path.unlink(missing_ok=True)
        work = profile_work(source.experiment, source.weights, self.steps.value(), self.trace_path)
        self.job.start(PROFILE, work, "Profiling stopped by an unexpected error")
        self._say(f"Profiling {source.description}…")
        return True

    def start_what_ifs(self) -> bool:
        """Measure the what-ifs for the profiled model (they train copies: this takes time)."""
        if self.job.is_busy or self.profiled is None:
            return False
        from workbench.controllers.profile_export import what_ifs_work

        source = self.profiled
        compile_too = self.compile_check.isEnabled() and self.compile_check.isChecked()
        work = what_ifs_work(source.experiment, source.weights, compile_too)
        self.job.start(WHAT_IFS, work, "The what-ifs stopped by an unexpected error")
        self.what_if_status.setText("Measuring: each what-if trains copies of the model…")
        return True

    def save_trace_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save Chrome trace", "profile-trace.json", "Chrome trace (*.json)"
        )
        if path:
            self.save_trace(Path(path))

    def save_trace(self, path: Path) -> bool:
        """Copy the profile's Chrome trace to PATH."""
        try:
            shutil.copyfile(self.trace_path, path)
        except OSError as exc:
            self._say(f"Cannot save the trace to {path}: {exc.strerror or exc}")
            return False
        self._say(f"Saved the Chrome trace to {path}: open it in ui.perfetto.dev")
        return True

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        return self.job.shutdown(timeout_ms)

    # ------------------------------------------------------------------ outcomes
    def _say(self, text: str) -> None:
        self.status.setText(text)

    def _progressed(self, text: str, fraction: float) -> None:
        self.progress.setValue(int(100 * fraction))
        self.progress.setFormat(f"{text} (%p%)")

    def _busy_changed(self, busy: bool) -> None:
        self.profile_button.setEnabled(not busy)
        self.steps.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.progress.setVisible(busy)
        self.what_if_button.setEnabled(not busy and self.report is not None)
        self.trace_button.setEnabled(not busy and self.trace_path.is_file())
        if busy:
            self.progress.setValue(0)

    def _failed(self, kind: str, message: str) -> None:
        (self.what_if_status.setText if kind == WHAT_IFS else self._say)(message)

    def _succeeded(self, kind: str, result: object) -> None:
        if kind == PROFILE:
            self.show_report(cast("ProfileReport", result))
        elif kind == WHAT_IFS:
            self.show_what_ifs(cast("tuple[WhatIf, ...]", result))

    def clear(self) -> None:
        """Forget the profile shown: the layer stack it measured has changed."""
        if self.job.is_busy or self.report is None:
            return
        self.report = self.profiled = None
        self.table_model.set_report(None)
        self.step_bar.set_parts(())
        self.what_if_table.setRowCount(0)
        for label in (self.step_label, self.memory_label, self.what_if_status):
            label.clear()
        self.trace_path.unlink(missing_ok=True)
        self.heading.setText("The layer stack has changed: profile it again.")
        self._say("")
        self._busy_changed(False)

    def show_report(self, report: ProfileReport) -> None:
        from workbench.engine.profiling import compile_problem

        problem = compile_problem(report.device.split(":")[0])
        self.compile_check.setEnabled(problem is None)
        if problem is not None:
            self.compile_check.setChecked(False)
            self.compile_check.setToolTip(problem)
        self.report = report
        self.table_model.set_report(report)
        parts = step_parts(report)
        total = report.step.total_ms
        self.step_label.setText(
            f"Step {milliseconds(total)}: "
            + " · ".join(
                f"<span style='color:{colour}'>■</span> {name} {milliseconds(value)} "
                f"({percent(value / total if total else 0.0)})"
                for (name, value), colour in zip(parts, PHASE_COLOURS, strict=True)
            )
        )
        self.step_bar.set_parts(tuple(value for _name, value in parts))
        memory = report.memory
        self.memory_label.setText(
            "Peak memory: not measured"
            if memory is None
            else f"Peak memory {_mib(memory.peak_bytes)} = {_mib(memory.held_bytes)} held "
            f"(weights, optimizer state, batch) + {_mib(memory.step_peak_bytes)} at the "
            f"step's peak"
        )
        self.what_if_table.setRowCount(0)
        self.what_if_status.setText("Not measured yet: they take a minute or so")
        hottest = report.hottest
        data = "" if report.real_data else "; random batches shaped like the data"
        self._say(
            f"{report.device}, {report.precision}, batch {report.batch_size}, "
            f"{report.steps} steps{data}. "
            + (f"Hottest layer: {hottest.label} ({hottest.type})." if hottest else "")
        )
        if self.table_model.hottest_row is not None:
            self.table.selectRow(self.table_model.hottest_row)
        self._busy_changed(self.job.is_busy)
        self.report_shown.emit(report)
        if hottest is not None:
            self.hottest_found.emit(hottest.name)

    def show_what_ifs(self, what_ifs: tuple[WhatIf, ...]) -> None:
        from workbench.engine.profiling.report import MEASURED, SKIPPED

        self.what_if_table.setRowCount(len(what_ifs))
        for row, what_if in enumerate(what_ifs):
            how = (
                what_if.detail
                if what_if.status == MEASURED
                else f"{what_if.status}: {what_if.detail}"
            )
            if what_if.name == "torch.compile" and what_if.status == SKIPPED:
                how = COMPILE_SKIPPED
            for column, text in enumerate((what_if.name, speed_text(what_if), how)):
                self.what_if_table.setItem(row, column, QTableWidgetItem(text))
        self.what_if_status.setText(
            "Speeds of a whole training step, against the step as configured"
        )
        self.what_ifs_shown.emit(what_ifs)


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"
