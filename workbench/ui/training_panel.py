"""Training settings: optimizer, schedule, device, precision, accumulation and DDP, with reasons."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from PySide6.QtCore import QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QWidget,
)

from workbench.engine.devices import DeviceInfo, resolve_device
from workbench.engine.errors import DeviceError
from workbench.engine.experiment import LOSSES, OPTIMIZERS, PRECISIONS, SCHEDULERS, SchedulerSpec
from workbench.ui.field_validation import check_typed_values
from workbench.ui.project_document import ProjectDocument
from workbench.ui.widgets import named

PRECISION_LABELS = {
    "32-true": "32-bit (float32)",
    "16-mixed": "16-bit mixed (float16 + GradScaler)",
    "bf16-mixed": "bfloat16 mixed",
}


def precision_problem(device: DeviceInfo, precision: str) -> str | None:
    """Why `precision` cannot run on `device`, or None when it can."""
    from workbench.engine.devices import check_precision

    try:
        check_precision(device, precision)
    except DeviceError as exc:
        return str(exc)
    return None


def ddp_problem(device: DeviceInfo, nproc: int) -> str | None:
    """Why DDP with `nproc` processes cannot run on `device`, or None when it can."""
    if not device.ddp_backends:
        return f"DDP is not supported on {device.name}; choose the CPU or a CUDA device"
    return None


class TrainingPanel(QWidget):
    """A form over the document's [train] section; every change is one undoable edit."""

    lr_find_requested = Signal()  # the Find button beside the learning rate

    def __init__(
        self,
        document: ProjectDocument,
        devices: list[DeviceInfo],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("trainingPanel")
        self.document = document
        self.devices = devices
        self._capped: str | None = None  # why the last DDP edit got fewer processes than asked
        self._build()
        self.refresh()
        document.changed.connect(self.refresh)

    def _build(self) -> None:
        form = QFormLayout(self)
        self.optimizer = QComboBox()
        self.optimizer.addItems(list(OPTIMIZERS))
        named(self.optimizer, "optimizerPicker", "The optimizer that updates the weights")
        self.lr = QDoubleSpinBox(decimals=6, minimum=1e-6, maximum=100.0, singleStep=0.001)
        named(self.lr, "learningRateSpin", "Learning rate: the size of each optimizer step")
        self.lr_find = QPushButton("&Find…")
        named(self.lr_find, "lrFinderButton", "Run the learning-rate finder and pick a rate")
        self.lr_find.clicked.connect(self.lr_find_requested)
        self.epochs = QSpinBox(minimum=1, maximum=100_000)
        named(self.epochs, "epochsSpin", "Passes over the training data")
        self.loss = QComboBox()
        self.loss.addItems(list(LOSSES))
        named(self.loss, "lossPicker", "The loss: cross_entropy for logits, nll after LogSoftmax")
        self.scheduler = QComboBox()
        self.scheduler.addItems(["none", *SCHEDULERS])
        named(self.scheduler, "schedulerPicker", "How the learning rate changes during training")
        self.seed = QSpinBox(minimum=0, maximum=2_147_483_647)
        named(self.seed, "seedSpin", "Random seed: the same seed gives the same run")
        self.device = QComboBox()
        for device in self.devices:
            self.device.addItem(device.label(), device.name)
        self.device.insertItem(0, "auto (best available)", "auto")
        named(
            self.device, "devicePicker", "Where to train; only devices this machine has are listed"
        )
        self.precision = QComboBox()
        for name in PRECISIONS:
            self.precision.addItem(PRECISION_LABELS[name], name)
        named(self.precision, "precisionPicker", "Numeric precision of the forward pass")
        self.precision_note = QLabel()
        self.precision_note.setObjectName("precisionNote")
        self.precision_note.setWordWrap(True)
        self.precision_note.setStyleSheet("color: #B35C00;")
        self.precision_note.hide()
        self.accumulation = QSpinBox(minimum=1, maximum=65_536)
        named(self.accumulation, "accumulationSpin", "Micro-batches per optimizer step")
        self.effective_batch = QLabel()
        self.effective_batch.setObjectName("effectiveBatchLabel")
        self.ddp = QCheckBox("DistributedDataParallel")
        named(self.ddp, "ddpToggle", "Train with several processes through torchrun")
        self.nproc = QSpinBox(minimum=1, maximum=1024)
        named(self.nproc, "nprocSpin", "Processes (one per device) for DDP")
        self.nproc.setKeyboardTracking(False)  # "16" is judged whole, not as "1" then "16"
        self.ddp_note = QLabel()
        self.ddp_note.setObjectName("ddpNote")
        self.ddp_note.setWordWrap(True)
        self.ddp_note.setStyleSheet("color: #B35C00;")
        self.ddp_note.hide()

        accumulation_row = QHBoxLayout()
        accumulation_row.addWidget(self.accumulation)
        accumulation_row.addWidget(self.effective_batch, 1)
        ddp_row = QHBoxLayout()
        ddp_row.addWidget(self.ddp)
        ddp_row.addWidget(QLabel("processes:"))
        ddp_row.addWidget(self.nproc)
        form.addRow("&Optimizer", self.optimizer)
        lr_row = QHBoxLayout()
        lr_row.addWidget(self.lr, 1)
        lr_row.addWidget(self.lr_find)
        lr_label = QLabel("&Learning rate")
        lr_label.setBuddy(self.lr)
        form.addRow(lr_label, lr_row)
        form.addRow("&Epochs", self.epochs)
        form.addRow("Lo&ss", self.loss)
        form.addRow("LR s&chedule", self.scheduler)
        form.addRow("See&d", self.seed)
        form.addRow("&Device", self.device)
        form.addRow("&Precision", self.precision)
        form.addRow("", self.precision_note)
        form.addRow("Accumulate", accumulation_row)
        form.addRow("", ddp_row)
        form.addRow("", self.ddp_note)

        self._on(
            self.optimizer.currentTextChanged,
            lambda: self._edit(optimizer=self.optimizer.currentText()),
        )
        self._on(self.lr.valueChanged, lambda: self._edit(lr=self.lr.value()))
        self._on(self.epochs.valueChanged, lambda: self._edit(epochs=self.epochs.value()))
        self._on(self.loss.currentTextChanged, lambda: self._edit(loss=self.loss.currentText()))
        self._on(self.scheduler.currentTextChanged, self._scheduler_edited)
        self._on(self.seed.valueChanged, lambda: self._edit(seed=self.seed.value()))
        self._on(
            self.device.currentIndexChanged, lambda: self._edit(device=self.device.currentData())
        )
        self._on(
            self.precision.currentIndexChanged,
            lambda: self._edit(precision=self.precision.currentData()),
        )
        self._on(
            self.accumulation.valueChanged,
            lambda: self._edit(accumulate_grad_batches=self.accumulation.value()),
        )
        self._on(self.ddp.toggled, self._ddp_edited)
        self._on(self.nproc.valueChanged, self._ddp_edited)
        check_typed_values(self)  # a bad typed value is marked, never silently changed

    @staticmethod
    def _on(signal: object, slot: Callable[[], None]) -> None:
        signal.connect(lambda *_: slot())  # type: ignore[attr-defined]

    def _edit(self, **changes: object) -> None:
        self.document.update_train(**changes)

    def add_row(self, label: str, widget: QWidget) -> None:
        """A row another part of the window owns (the memory estimate)."""
        form = self.layout()
        assert isinstance(form, QFormLayout)
        form.addRow(label, widget)

    def _scheduler_edited(self) -> None:
        name = self.scheduler.currentText()
        current = self.document.experiment.train.scheduler
        if name == "none":
            self._edit(scheduler=None)
        elif current is None or current.name != name:
            self._edit(scheduler=SchedulerSpec(name=name))

    def _ddp_edited(self) -> None:
        from workbench.engine.choice_costs import ddp_process_cap

        cap = ddp_process_cap(self.selected_device(), self.nproc.value())
        current = self.document.experiment.train.ddp
        ddp = dataclasses.replace(
            current, enabled=self.ddp.isChecked(), nproc_per_node=cap.processes
        )
        if ddp == current and cap.message is None:
            return  # nothing changed (the spin box repeating itself): keep any note
        self._capped = cap.message
        self._edit(ddp=ddp)
        self._show_ddp_note(cap.message)
        if cap.message:  # show the capped count once the spin box has finished its own edit
            QTimer.singleShot(0, self.refresh)

    def set_precision_note(self, note: str | None) -> None:
        """What the chosen precision costs here (e.g. slower than float32), or None."""
        self.precision_note.setText(note or "")
        self.precision_note.setVisible(bool(note))

    def _show_ddp_note(self, message: str | None) -> None:
        self.ddp_note.setText(message or "")
        self.ddp_note.setVisible(bool(message))

    def selected_device(self) -> DeviceInfo:
        try:
            return resolve_device(self.document.experiment.train.device, self.devices)
        except DeviceError:
            return self.devices[0]

    def refresh(self) -> None:
        """Show the document's values and which choices this device rules out, and why."""
        train = self.document.experiment.train
        widgets = (
            self.optimizer, self.lr, self.epochs, self.loss, self.scheduler, self.seed,
            self.device, self.precision, self.accumulation, self.ddp, self.nproc,
        )  # fmt: skip
        blockers = [QSignalBlocker(widget) for widget in widgets]
        self.optimizer.setCurrentText(train.optimizer)
        self.lr.setValue(train.lr)
        self.epochs.setValue(train.epochs)
        self.loss.setCurrentText(train.loss)
        self.scheduler.setCurrentText(train.scheduler.name if train.scheduler else "none")
        self.seed.setValue(min(train.seed, self.seed.maximum()))
        index = self.device.findData(train.device)
        self.device.setCurrentIndex(max(index, 0))
        self.precision.setCurrentIndex(max(self.precision.findData(train.precision), 0))
        self.accumulation.setValue(train.accumulate_grad_batches)
        self.ddp.setChecked(train.ddp.enabled)
        self.nproc.setValue(train.ddp.nproc_per_node)
        del blockers
        self._show_constraints()

    def _show_constraints(self) -> None:
        experiment = self.document.experiment
        device = self.selected_device()
        model = self.precision.model()
        assert isinstance(model, QStandardItemModel)
        for row in range(self.precision.count()):
            item = model.item(row)
            problem = precision_problem(device, str(self.precision.itemData(row)))
            item.setEnabled(problem is None)
            item.setToolTip(problem or PRECISION_LABELS[str(self.precision.itemData(row))])
        problem = ddp_problem(device, experiment.train.ddp.nproc_per_node)
        self.ddp.setEnabled(problem is None or experiment.train.ddp.enabled)
        self.ddp.setToolTip(problem or "Train with several processes through torchrun")
        self.nproc.setEnabled(experiment.train.ddp.enabled)
        capped = self._capped if experiment.train.ddp.enabled else None
        self._show_ddp_note(self._ddp_excess(device) or capped)
        world = experiment.train.ddp.nproc_per_node if experiment.train.ddp.enabled else 1
        batch, k = experiment.data.batch_size, experiment.train.accumulate_grad_batches
        self.effective_batch.setText(
            f"effective batch {batch} × {k}"
            + (f" × {world}" if world > 1 else "")
            + f" = {batch * k * world}"
        )
        self.effective_batch.setAlignment(
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft
        )

    def _ddp_excess(self, device: DeviceInfo) -> str | None:
        """A file may ask for more DDP processes than this machine has cores: say so."""
        from workbench.engine.choice_costs import ddp_process_cap

        ddp = self.document.experiment.train.ddp
        return ddp_process_cap(device, ddp.nproc_per_node).message if ddp.enabled else None

    def problems(self) -> list[str]:
        """Reasons the current settings cannot run (shown on the Train button)."""
        train = self.document.experiment.train
        device = self.selected_device()
        found = [precision_problem(device, train.precision)]
        if train.ddp.enabled:
            found.append(ddp_problem(device, train.ddp.nproc_per_node))
        return [problem for problem in found if problem]
