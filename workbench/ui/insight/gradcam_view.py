"""Insight's Grad-CAM tab: "why did it say cat": the evidence for a class laid over the image,
for a validation image of the gallery or for the Predict tab's input, computed off the GUI thread."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from torch import nn

from workbench.controllers.jobs import JobRunner
from workbench.engine.insight.evaluation import SampleSet, display_image
from workbench.engine.insight.grad_cam import GradCam, grad_cam, overlay
from workbench.ui.insight.evaluation_view import image_pixmap

GALLERY_SIZE = 24  # validation images offered to explain
THUMB = 64
PICTURE = 240


@dataclass(frozen=True, eq=False)
class Explanation:
    """One Grad-CAM answer, ready to draw."""

    source: str  # "validation image 3", "the Predict tab's input"
    picture: np.ndarray[Any, np.dtype[np.float32]]  # the image in 0..1, [H, W, 3]
    heat: np.ndarray[Any, np.dtype[np.uint8]]  # the image with the heatmap over it, [H, W, 3]
    cam: GradCam
    true_class: int | None


def explain(
    model: nn.Module, x: torch.Tensor, source: str, target: int | None, true_class: int | None
) -> Explanation:
    """Grad-CAM of one input (as the model is fed) on a private copy of the model."""
    cam = grad_cam(copy.deepcopy(model), x, target)
    picture = display_image(x)
    if picture.ndim == 2:
        picture = np.repeat(picture[..., None], 3, axis=2)
    rgb = (picture * 255).round().astype(np.uint8)
    return Explanation(source, picture, overlay(rgb, cam.heatmap), cam, true_class)


def gallery_pictures(samples: SampleSet, count: int) -> list[tuple[np.ndarray[Any, Any], int]]:
    """The first `count` validation images for display, with their classes (read from disk:
    a worker's job)."""
    return [
        (samples.image(index), samples.label(index)) for index in range(min(count, len(samples)))
    ]


class GradCamView(QWidget):
    """`set_model(model, samples, class_names)` after each epoch; a click on the gallery or
    the Explain button asks for a heatmap; `explained` when one is shown."""

    explained = Signal(object)  # Explanation

    def __init__(
        self,
        predict_input: Callable[[], torch.Tensor | None] = lambda: None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("gradCamView")
        self.setAccessibleName("gradCamView")
        self.predict_input = predict_input
        self.model: nn.Module | None = None
        self.samples: SampleSet | None = None
        self.class_names: tuple[str, ...] = ()
        self.explanation: Explanation | None = None
        self._asked: tuple[str, Callable[[], tuple[torch.Tensor, int | None]]] | None = None
        self._gallery_for: SampleSet | None = None  # whose images the gallery shows
        self._pending = False  # asked again while a heatmap was being computed
        self.jobs = JobRunner(self, name="GradCam")
        self.jobs.succeeded.connect(self._job_done)
        self.jobs.ended.connect(self._job_ended)
        self.jobs.failed.connect(lambda _key, error: self._show_problem(str(error)))
        self._build()

    def _build(self) -> None:
        self.gallery = QListWidget()
        self.gallery.setObjectName("gradcamGallery")
        self.gallery.setViewMode(QListWidget.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(THUMB, THUMB))
        self.gallery.setGridSize(QSize(THUMB + 16, THUMB + 24))
        self.gallery.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.gallery.setMovement(QListWidget.Movement.Static)
        self.gallery.itemClicked.connect(
            lambda item: self.explain_sample(int(item.data(Qt.ItemDataRole.UserRole)))
        )
        self.explain_predict = QPushButton("Explain the Predict tab's input")
        self.explain_predict.setObjectName("gradcamExplainPredict")
        self.explain_predict.clicked.connect(self.explain_predicted)
        self.target = QComboBox()
        self.target.setObjectName("gradcamTarget")
        self.target.setToolTip("Whose evidence to show: the predicted class, or another")
        self.target.activated.connect(lambda _index: self._ask_again())
        self.image = QLabel()
        self.image.setObjectName("gradcamImage")
        self.image.setFixedSize(PICTURE, PICTURE)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.heatmap = QLabel()
        self.heatmap.setObjectName("gradcamHeatmap")
        self.heatmap.setFixedSize(PICTURE, PICTURE)
        self.heatmap.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label = QLabel(
            "Train an image model, then click an image to see why the model says what it says."
        )
        self.label.setObjectName("gradcamLabel")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        controls = QHBoxLayout()
        controls.addWidget(QLabel("Evidence for:"))
        controls.addWidget(self.target, 1)
        controls.addWidget(self.explain_predict)
        pictures = QHBoxLayout()
        pictures.addWidget(self.image)
        pictures.addWidget(self.heatmap)
        pictures.addStretch(1)
        right = QVBoxLayout()
        right.addLayout(controls)
        right.addLayout(pictures)
        right.addWidget(self.label)
        right.addStretch(1)
        left = QVBoxLayout()
        left.addWidget(QLabel("Validation images (click one):"))
        left.addWidget(self.gallery, 1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(left, 2)
        layout.addLayout(right, 3)
        self._set_targets(())

    # ------------------------------------------------------------------ API

    def set_model(
        self, model: nn.Module | None, samples: SampleSet | None, class_names: Sequence[str]
    ) -> None:
        """The model to explain (a snapshot after each epoch) and the validation images."""
        self.model = model
        if tuple(class_names) != self.class_names:
            self._set_targets(class_names)
        if samples is not self.samples:
            self.samples = samples
            self.gallery.clear()
            self._gallery_for = None
            if samples is not None and samples.kind == "image" and len(samples):
                self._load_gallery()
            else:
                self._gallery_for = samples  # nothing to show
        if model is None:
            self.explanation = self._asked = None
            self.image.clear()
            self.heatmap.clear()
        elif self._asked is not None:
            self._ask_again()  # the same image, the newer weights

    def explain_sample(self, index: int) -> bool:
        """Explain validation image `index` (False when there is no model or image yet)."""
        samples = self.samples
        if samples is None or not 0 <= index < len(samples):
            return False
        return self._ask(
            f"validation image {index}", lambda: (samples.input(index), samples.label(index))
        )

    def explain_predicted(self) -> bool:
        """Explain what the Predict tab last asked the model about."""
        x = self.predict_input()
        if x is None:
            self._show_problem("Pick or draw an input in the Predict tab first.")
            return False
        return self._ask("the Predict tab's input", lambda: (x, None))

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        return self.jobs.shutdown(timeout_ms)

    # ------------------------------------------------------------------ jobs

    def _ask(self, source: str, sample: Callable[[], tuple[torch.Tensor, int | None]]) -> bool:
        if self.model is None:
            self._show_problem("Train the model first: there is nothing to explain yet.")
            return False
        self._asked = (source, sample)
        self._ask_again()
        return True

    def _ask_again(self) -> None:
        if self._asked is None or self.model is None:
            return
        if self.jobs.is_running("explain"):
            self._pending = True
            return
        self._pending = False
        source, sample = self._asked
        model, target = self.model, self.target.currentData()
        self.label.setText(f"Computing Grad-CAM for {source}…")

        def work() -> Explanation:
            x, true_class = sample()
            return explain(model, x, source, target, true_class)

        self._start("explain", work)

    def _start(self, key: str, work: Callable[[], object]) -> None:
        if not self.jobs.is_running(key):
            self.jobs.start(key, work)

    def _load_gallery(self) -> None:
        samples = self.samples
        if samples is not None:
            self._start("gallery", lambda: (samples, gallery_pictures(samples, GALLERY_SIZE)))

    def _job_done(self, key: str, result: Any) -> None:
        if key == "gallery":
            samples, pictures = result
            if samples is self.samples:
                self._gallery_for = samples
                self._fill_gallery(pictures)
            return
        self.explanation = result
        self._show(result)

    def _job_ended(self, key: object) -> None:
        if key == "explain" and self._pending:
            self._ask_again()
        samples = self.samples
        if key == "gallery" and samples is not None and self._gallery_for is not samples:
            self._load_gallery()  # the samples changed while the previous gallery loaded

    # ------------------------------------------------------------------ drawing

    def _set_targets(self, class_names: Sequence[str]) -> None:
        self.class_names = tuple(class_names)
        self.target.clear()
        self.target.addItem("the predicted class", None)
        for index, name in enumerate(self.class_names):
            self.target.addItem(name, index)

    def _fill_gallery(self, pictures: list[tuple[np.ndarray[Any, Any], int]]) -> None:
        self.gallery.clear()
        for index, (picture, label) in enumerate(pictures):
            icon = QIcon(image_pixmap(picture, THUMB))
            item = QListWidgetItem(icon, f"#{index} {self._name(label)}")
            item.setData(Qt.ItemDataRole.UserRole, index)
            self.gallery.addItem(item)

    def _show(self, explanation: Explanation) -> None:
        self.image.setPixmap(image_pixmap(explanation.picture, PICTURE))
        self.heatmap.setPixmap(image_pixmap(explanation.heat / 255.0, PICTURE))
        cam = explanation.cam
        predicted = self._name(cam.predicted)
        chance = float(cam.probabilities[cam.predicted])
        text = f"{explanation.source}: the model says <b>{predicted}</b> ({chance:.0%})"
        if explanation.true_class is not None:
            text += f"; it is {self._name(explanation.true_class)}"
        text += (
            f". Red: where the evidence for <b>{self._name(cam.target)}</b> lies "
            f"(Grad-CAM of {cam.layer})."
        )
        self.label.setText(text)
        self.label.setStyleSheet("")
        self.explained.emit(explanation)

    def _show_problem(self, message: str) -> None:
        self.label.setText(message)
        self.label.setStyleSheet("color: #b71c1c;")

    def _name(self, index: int) -> str:
        return self.class_names[index] if 0 <= index < len(self.class_names) else str(index)
