"""The Augmentation panel: `data.augment` and `data.image_size` as controls, over a live grid of
training images from the user's own folder as the augmentation changes them."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from workbench.controllers.jobs import JobRunner
from workbench.engine.augment_preview import AugmentedSamples, augmented_samples
from workbench.engine.experiment import AugmentSpec, DataSpec, Experiment
from workbench.engine.experiment_model import experiment_preprocessing
from workbench.ui.insight.evaluation_view import image_pixmap
from workbench.ui.project_document import ProjectDocument

ROWS, COLUMNS = 4, 3
CELL = 96  # pixels of one sample in the grid
DELAY_MS = 150  # the preview waits for a pause in editing
# name, label, maximum, step, tooltip
FACTORS = (
    ("horizontal_flip", "Horizontal flip", 1.0, 0.1, "probability that an image is mirrored"),
    ("vertical_flip", "Vertical flip", 1.0, 0.1, "probability that an image is turned upside down"),
    ("rotation", "Rotation (°)", 180.0, 5.0, "at most this many degrees, either way"),
    ("brightness", "Brightness", 2.0, 0.1, "ColorJitter: brightness changes by up to this factor"),
    ("contrast", "Contrast", 2.0, 0.1, "ColorJitter: contrast changes by up to this factor"),
    ("saturation", "Saturation", 2.0, 0.1, "ColorJitter: saturation changes by up to this"),
    ("hue", "Hue", 0.5, 0.05, "ColorJitter: hue shifts by up to this (at most 0.5)"),
)


class AugmentationPanel(QWidget):
    """Edits are undoable document edits; the grid follows the document in the background."""

    preview_shown = Signal(int)  # the number of samples drawn

    def __init__(self, document: ProjectDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("augmentationPanel")
        self.setAccessibleName("augmentationPanel")
        self.document = document
        self.seed = 0
        self.samples: AugmentedSamples | None = None
        self._shown_for: tuple[Any, ...] | None = None  # what the grid shows now
        self._wanted: tuple[Any, ...] | None = None  # what it should show (a job may be running)
        self.jobs = JobRunner(self, name="AugmentPreview")
        self.jobs.succeeded.connect(self._show_samples)
        self.jobs.failed.connect(lambda _key, error: self._show_problem(str(error)))
        self.jobs.ended.connect(lambda _key: self._refresh_preview())
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(DELAY_MS)
        self.timer.timeout.connect(self._refresh_preview)
        self._build()
        document.changed.connect(self.refresh)
        self.refresh()

    # ------------------------------------------------------------------ construction

    def _build(self) -> None:
        self.image_size = QSpinBox()
        self.image_size.setObjectName("augmentImageSize")
        self.image_size.setRange(0, 1024)
        self.image_size.setSpecialValueText("default")
        self.image_size.setSuffix(" px")
        self.image_size.setToolTip("data.image_size: the size images are cropped or resized to")
        self.crop = QCheckBox("Random resized crop")
        self.crop.setObjectName("augmentRandomResizedCrop")
        self.crop.setToolTip("a random part of the image (scale: of its area) resized to the size")
        self.scale = QDoubleSpinBox()
        self.scale.setObjectName("augmentScaleMin")
        self.scale.setRange(0.01, 1.0)
        self.scale.setSingleStep(0.05)
        self.scale.setPrefix("scale from ")
        self.factors: dict[str, QDoubleSpinBox] = {}
        form = QFormLayout()
        form.addRow("Image size:", self.image_size)
        form.addRow(self.crop, self.scale)
        for name, label, maximum, step, tip in FACTORS:
            spin = QDoubleSpinBox()
            spin.setObjectName(f"augment_{name}")
            spin.setRange(0.0, maximum)
            spin.setSingleStep(step)
            spin.setDecimals(2)
            spin.setKeyboardTracking(False)
            spin.setToolTip(f"data.augment.{name}: {tip}")
            self.factors[name] = spin
            form.addRow(f"{label}:", spin)
        for widget in (self.image_size, self.scale):
            widget.setKeyboardTracking(False)
            widget.valueChanged.connect(lambda *_: self._edited())
        self.crop.toggled.connect(lambda *_: self._edited())
        for spin in self.factors.values():
            spin.valueChanged.connect(lambda *_: self._edited())

        self.shuffle = QPushButton("New samples")
        self.shuffle.setObjectName("augmentNewSamples")
        self.shuffle.setToolTip("Draw other images and other random changes")
        self.shuffle.clicked.connect(self.new_samples)
        self.same_image = QCheckBox("One image, many times")
        self.same_image.setObjectName("augmentSameImage")
        self.same_image.setToolTip("Show what the augmentation makes of a single image")
        self.same_image.toggled.connect(lambda *_: self._schedule())
        buttons = QHBoxLayout()
        buttons.addWidget(self.shuffle)
        buttons.addWidget(self.same_image)
        buttons.addStretch(1)

        self.status = QLabel()
        self.status.setObjectName("augmentStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.grid = QGridLayout()
        self.grid.setSpacing(4)
        self.cells: list[QLabel] = []
        for index in range(ROWS * COLUMNS):
            cell = QLabel()
            cell.setObjectName(f"augmentSample{index}")
            cell.setFixedSize(CELL, CELL + 16)
            cell.setAlignment(Qt.AlignmentFlag.AlignCenter)
            cell.setStyleSheet("background: #f2f2f2; border-radius: 3px;")
            self.grid.addWidget(cell, index // COLUMNS, index % COLUMNS)
            self.cells.append(cell)
        grid_box = QWidget()
        grid_box.setLayout(self.grid)
        inner = QWidget()
        layout = QVBoxLayout(inner)
        intro = QLabel(
            "Random changes to <b>training</b> images only; validation images are never augmented."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(grid_box)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    # ------------------------------------------------------------------ document <-> controls

    def refresh(self) -> None:
        """Show the document's settings; the grid follows when they changed."""
        data = self.document.experiment.data
        augment = data.augment or AugmentSpec()
        controls = [self.image_size, self.crop, self.scale, *self.factors.values()]
        for widget in controls:
            widget.blockSignals(True)
        self.image_size.setValue(data.image_size or 0)
        self.crop.setChecked(augment.random_resized_crop)
        self.scale.setValue(float(augment.scale[0]))
        for name, spin in self.factors.items():
            spin.setValue(float(getattr(augment, name)))
        for widget in controls:
            widget.blockSignals(False)
        image_folder = data.name == "image-folder"
        for widget in (*controls, self.shuffle, self.same_image):
            widget.setEnabled(image_folder)
        self.scale.setEnabled(image_folder and augment.random_resized_crop)
        if not image_folder:
            self._clear_grid()
            self._show_problem(
                'The augmentation applies to image folders: set the dataset to "image-folder" '
                "in the Data panel (or start from a pretrained network)."
            )
            return
        self._schedule()

    def augment_spec(self) -> AugmentSpec | None:
        """The controls' augmentation; None when nothing is switched on."""
        current = self.document.experiment.data.augment or AugmentSpec()
        values = {name: spin.value() for name, spin in self.factors.items()}
        spec = AugmentSpec(
            random_resized_crop=self.crop.isChecked(),
            scale=(self.scale.value(), float(current.scale[1])),
            ratio=current.ratio,
            **values,
        )
        return spec if spec.is_random else None

    def _edited(self) -> None:
        size = self.image_size.value() or None
        self.document.update_data(augment=self.augment_spec(), image_size=size)

    # ------------------------------------------------------------------ the preview

    def new_samples(self) -> None:
        self.seed += 1
        self._schedule()

    def _key(self) -> tuple[Any, ...]:
        """What the grid depends on: the data, the layers (a backbone's preprocessing), the
        seed and the one-image choice; compared by value."""
        experiment = self.document.experiment
        return (experiment.data, experiment.model.layers, self.seed, self.same_image.isChecked())

    def _schedule(self) -> None:
        if self.document.experiment.data.name != "image-folder":
            return
        self._wanted = self._key()
        if self.isVisible():
            self.timer.start()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._wanted is not None and self._wanted != self._shown_for:
            self.timer.start()

    def _refresh_preview(self) -> None:
        wanted = self._wanted
        if wanted is None or wanted == self._shown_for or self.jobs.is_busy:
            return  # nothing new, or the running job's end calls again
        experiment, seed, same = self.document.experiment, wanted[2], wanted[3]
        self._shown_for = wanted
        self.status.setText("Drawing augmented samples…")
        self.jobs.start("preview", lambda: _samples(experiment, seed, same))

    def _show_samples(self, _key: object, samples: AugmentedSamples) -> None:
        if self._shown_for != self._wanted:
            return  # settings changed since: the next job draws them
        self.samples = samples
        self._clear_grid()
        for cell, image, label in zip(self.cells, samples.images, samples.labels, strict=False):
            picture = image[..., 0] if image.shape[-1] == 1 else image
            cell.setPixmap(image_pixmap(picture / 255.0, CELL - 8))
            name = samples.class_names[label]
            cell.setToolTip(f"{name}")
            cell.setText("")
            cell.setAccessibleDescription(name)
        steps = samples.augmentation or "no augmentation: every epoch sees the same images"
        self.status.setText(f"Training images: {steps}")
        self.status.setStyleSheet("")
        self.preview_shown.emit(len(samples.images))

    def _show_problem(self, message: str) -> None:
        self.status.setText(message)
        self.status.setStyleSheet("color: #b71c1c;")

    def _clear_grid(self) -> None:
        for cell in self.cells:
            cell.clear()
            cell.setToolTip("")

    def filled_cells(self) -> int:
        """How many grid cells show a picture (for tests and accessibility tools)."""
        return sum(1 for cell in self.cells if not cell.pixmap().isNull())

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        self.timer.stop()
        self._wanted = None
        return self.jobs.shutdown(timeout_ms)


def _samples(experiment: Experiment, seed: int, same_image: bool) -> AugmentedSamples:
    data: DataSpec = experiment.data
    return augmented_samples(
        data,
        ROWS * COLUMNS,
        seed=seed,
        preprocessing=experiment_preprocessing(experiment),
        same_image=same_image,
    )
