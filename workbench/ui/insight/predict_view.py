"""Predict: draw a digit, click a point or pick a row, and see logits and softmax probabilities."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from torch import nn

from workbench.engine.insight.evaluation import SampleSet, display_image
from workbench.engine.insight.predict import (
    Normalization,
    Prediction,
    drawing_to_input,
    point_input,
    predict,
    row_input,
)
from workbench.ui.insight.evaluation_view import image_pixmap
from workbench.ui.insight.palette import class_colour
from workbench.ui.qt import pg

PAD_SIZE = 280  # pixels of the drawing pad: ten times MNIST, so a mouse stroke is digit-thick


class DrawingPad(QWidget):
    """A square canvas to draw on with the mouse: white ink on black, like MNIST digits."""

    drawn = Signal()  # after each stroke

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("drawingPad")
        self.setAccessibleName("drawingPad")
        self.setFixedSize(PAD_SIZE, PAD_SIZE)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.image = QImage(PAD_SIZE, PAD_SIZE, QImage.Format.Format_Grayscale8)
        self.pen_width = PAD_SIZE // 12
        self._last: QPointF | None = None
        self.clear()

    def clear(self) -> None:
        self.image.fill(0)
        self.update()

    def stroke(self, points: Sequence[tuple[float, float]]) -> None:
        """Draw a polyline (pad pixels); what the mouse does, callable from tests."""
        painter = QPainter(self.image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(
            QPen(QColor("white"), self.pen_width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                 Qt.PenJoinStyle.RoundJoin)
        )  # fmt: skip
        if len(points) == 1:
            painter.drawPoint(QPointF(*points[0]))
        for start, end in itertools.pairwise(points):
            painter.drawLine(QPointF(*start), QPointF(*end))
        painter.end()
        self.update()

    def pixels(self) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The drawing as [H, W] ink in 0..1."""
        width, height = self.image.width(), self.image.height()
        data = np.frombuffer(self.image.constBits(), dtype=np.uint8)
        rows = data.reshape(height, self.image.bytesPerLine())[:, :width]
        return (rows.astype(np.float32) / 255.0).copy()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.drawImage(0, 0, self.image)
        painter.setPen(QPen(QColor("#808080"), 1))
        painter.drawRect(0, 0, self.width() - 1, self.height() - 1)
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._last = event.position()
        self.stroke([(self._last.x(), self._last.y())])

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._last is None:
            return
        point = event.position()
        self.stroke([(self._last.x(), self._last.y()), (point.x(), point.y())])
        self._last = point

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._last = None
        self.drawn.emit()


class ProbabilityBars(QWidget):
    """One bar per class: its softmax probability, with the raw model output beside it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("probabilityBars")
        self.setAccessibleName("probabilityBars")
        self.prediction: Prediction | None = None
        self.setMinimumWidth(300)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def set_prediction(self, prediction: Prediction | None) -> None:
        self.prediction = prediction
        self.updateGeometry()
        self.update()

    def sizeHint(self) -> QSize:
        rows = len(self.prediction.probabilities) if self.prediction is not None else 2
        return QSize(380, 26 * rows + 30)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        prediction = self.prediction
        if prediction is None:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No prediction yet")
            return
        metrics = painter.fontMetrics()
        label_width = max(metrics.horizontalAdvance(n) for n in prediction.class_names) + 10
        value_width = metrics.horizontalAdvance("100.0%  output -88.88") + 10
        row_height = max(22, metrics.height() + 8)
        header = prediction.output_kind
        painter.setPen(QColor("#404040"))
        painter.drawText(QRectF(label_width, 0, self.width() - label_width, row_height),
                         Qt.AlignmentFlag.AlignVCenter, f"softmax probability  ·  model output ({header})")  # fmt: skip
        bar_width = max(20.0, self.width() - label_width - value_width - 10)
        for row, (name, probability, output) in enumerate(
            zip(prediction.class_names, prediction.probabilities, prediction.outputs, strict=True)
        ):
            top = (row + 1) * row_height
            best = row == prediction.predicted
            font = painter.font()
            font.setBold(best)
            painter.setFont(font)
            painter.setPen(QColor("#202020"))
            painter.drawText(QRectF(0, top, label_width - 6, row_height),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, name)  # fmt: skip
            track = QRectF(label_width, top + 4, bar_width, row_height - 8)
            painter.fillRect(track, QColor("#EEEEEE"))
            colour = QColor("#0072B2") if best else QColor("#A7BFD1")
            painter.fillRect(
                QRectF(track.left(), track.top(), bar_width * float(probability), track.height()),
                colour,
            )
            painter.drawText(QRectF(track.right() + 6, top, value_width, row_height),
                             Qt.AlignmentFlag.AlignVCenter,
                             f"{float(probability):6.1%}  output {float(output):.2f}")  # fmt: skip
        painter.end()


class PredictView(QWidget):
    """Pick or make an input and see what the model says.

    `set_task(kind, input_shape, normalization, samples)` chooses the input: a drawing pad for
    image sets (the drawing is downsampled to the input shape and normalised like the data),
    a plot of the data to click for 2-D sets, an editable row for tables. A spin box picks any
    validation sample instead. `set_model(model, class_names)` after each epoch.
    """

    predicted = Signal(object)  # Prediction

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("predictView")
        self.setAccessibleName("predictView")
        self.model: nn.Module | None = None
        self.class_names: tuple[str, ...] = ()
        self.kind = "image"
        self.input_shape: tuple[int, ...] = (1, 28, 28)
        self.normalization: Normalization | None = None
        self.samples: SampleSet | None = None
        self.last_input: torch.Tensor | None = None
        self.prediction: Prediction | None = None
        self._build()

    def _build(self) -> None:
        self.pad = DrawingPad()
        self.pad.drawn.connect(self.predict_drawing)
        clear = QPushButton("Clear")
        clear.setObjectName("clearDrawingButton")
        clear.clicked.connect(self._clear)
        self.preview = QLabel()
        self.preview.setObjectName("modelInputPreview")
        self.preview.setToolTip("What the model receives: the drawing at the dataset's size")
        self.preview.setFixedSize(84, 84)
        image_page = QWidget()
        image_layout = QVBoxLayout(image_page)
        image_layout.addWidget(QLabel("Draw a digit:"))
        image_layout.addWidget(self.pad)
        row = QHBoxLayout()
        row.addWidget(clear)
        row.addWidget(QLabel("model input:"))
        row.addWidget(self.preview)
        row.addStretch(1)
        image_layout.addLayout(row)

        self.plot = pg.PlotWidget()
        self.plot.setObjectName("predictPointPlot")
        self.plot.setMenuEnabled(False)
        self.marker = pg.ScatterPlotItem(size=16, symbol="+", pen=pg.mkPen("#D00000", width=3))
        self.plot.addItem(self.marker)
        self.plot.scene().sigMouseClicked.connect(self._plot_clicked)
        self.points: list[Any] = []
        point_page = QWidget()
        point_layout = QVBoxLayout(point_page)
        point_layout.addWidget(QLabel("Click anywhere in the plane:"))
        point_layout.addWidget(self.plot)

        self.row_editor = QTableWidget(1, 0)
        self.row_editor.setObjectName("predictRowEditor")
        self.row_editor.itemChanged.connect(lambda _item: self.predict_row())
        table_page = QWidget()
        table_layout = QVBoxLayout(table_page)
        table_layout.addWidget(QLabel("Edit the row (values as the model sees them):"))
        table_layout.addWidget(self.row_editor)
        table_layout.addStretch(1)

        self.pages = QStackedWidget()
        for page in (image_page, point_page, table_page):
            self.pages.addWidget(page)
        self.sample = QSpinBox()
        self.sample.setObjectName("predictSampleSpin")
        self.sample.setToolTip("Use a sample of the validation split as the input")
        pick = QPushButton("Use validation sample")
        pick.setObjectName("useSampleButton")
        pick.clicked.connect(lambda: self.predict_sample_index(self.sample.value()))
        sample_row = QHBoxLayout()
        sample_row.addWidget(pick)
        sample_row.addWidget(self.sample)
        sample_row.addStretch(1)

        self.bars = ProbabilityBars()
        self.answer = QLabel("probabilities = torch.softmax(model(X), dim=1)")
        self.answer.setObjectName("predictAnswer")
        self.answer.setWordWrap(True)
        self.answer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        results = QVBoxLayout()
        results.addWidget(self.answer)
        results.addWidget(self.bars, 1)

        left = QVBoxLayout()
        left.addWidget(self.pages, 1)
        left.addLayout(sample_row)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addLayout(results, 1)

    # ------------------------------------------------------------------ API

    def set_model(self, model: nn.Module | None, class_names: Sequence[str]) -> None:
        """The model to ask (a snapshot while training runs); re-predicts the current input."""
        self.model, self.class_names = model, tuple(class_names)
        if self.last_input is not None:
            self.predict_input(self.last_input)

    def set_task(
        self,
        kind: str,
        input_shape: Sequence[int],
        normalization: Normalization | None = None,
        samples: SampleSet | None = None,
    ) -> None:
        self.kind, self.input_shape = kind, tuple(input_shape)
        self.normalization, self.samples = normalization, samples
        self.pages.setCurrentIndex({"image": 0, "points2d": 1}.get(kind, 2))
        self.sample.setRange(0, max(len(samples) - 1, 0) if samples is not None else 0)
        self.last_input = None
        if kind == "points2d" and samples is not None:
            self._draw_points(samples)
        if kind not in ("image", "points2d"):
            self._set_row(np.zeros(int(np.prod(self.input_shape)), dtype=np.float32))

    def predict_input(self, x: torch.Tensor) -> Prediction | None:
        """Ask the model about one sample (without a batch dimension) and show the answer."""
        self.last_input = x
        if self.model is None:
            self.answer.setText("Train the model first: there is nothing to ask yet.")
            return None
        try:
            prediction = predict(self.model, x, self.class_names)
        except (RuntimeError, ValueError) as exc:
            self.answer.setText(f"The model cannot take this input: {str(exc).splitlines()[0]}")
            return None
        self.prediction = prediction
        self.bars.set_prediction(prediction)
        self.answer.setText(
            f"probabilities = torch.softmax(model(X), dim=1)  →  <b>{prediction.predicted_name}</b> "
            f"({prediction.confidence:.1%})"
        )
        self.predicted.emit(prediction)
        return prediction

    def predict_drawing(self) -> Prediction | None:
        x = drawing_to_input(self.pad.pixels(), self.input_shape, self.normalization)
        self._show_preview(x)
        return self.predict_input(x)

    def predict_point(self, x: float, y: float) -> Prediction | None:
        self.marker.setData([x], [y])
        return self.predict_input(point_input(x, y))

    def predict_row(self) -> Prediction | None:
        values = []
        for column in range(self.row_editor.columnCount()):
            item = self.row_editor.item(0, column)
            text = item.text() if item is not None else "0"
            try:
                values.append(float(text))
            except ValueError:
                self.answer.setText(f"Column {column + 1}: {text!r} is not a number")
                return None
        return self.predict_input(row_input(values))

    def predict_sample_index(self, index: int) -> Prediction | None:
        if self.samples is None or not len(self.samples):
            return None
        x = self.samples.input(index)
        if self.kind == "image":
            self._show_preview(x)
        elif self.kind == "points2d":
            self.marker.setData([float(x[0])], [float(x[1])])
        else:
            self._set_row(x.reshape(-1).numpy())
        return self.predict_input(x)

    # ------------------------------------------------------------------ helpers

    def _clear(self) -> None:
        self.pad.clear()
        self.preview.clear()

    def _show_preview(self, x: torch.Tensor) -> None:
        self.preview.setPixmap(image_pixmap(display_image(x), 84))

    def _draw_points(self, samples: SampleSet) -> None:
        for item in self.points:
            self.plot.removeItem(item)
        inputs = torch.stack([samples.input(i) for i in range(len(samples))]).numpy()
        labels = np.array([samples.label(i) for i in range(len(samples))])
        self.points = []
        for label in np.unique(labels):
            chosen = inputs[labels == label]
            item = pg.ScatterPlotItem(chosen[:, 0], chosen[:, 1], size=6,
                                      brush=pg.mkBrush(class_colour(int(label))), pen=None)  # fmt: skip
            self.plot.addItem(item)
            self.points.append(item)
        self.plot.autoRange()

    def _plot_clicked(self, event: Any) -> None:
        point = self.plot.plotItem.vb.mapSceneToView(event.scenePos())
        self.predict_point(float(point.x()), float(point.y()))

    def _set_row(self, values: np.ndarray[Any, Any]) -> None:
        names = self.samples.feature_names if self.samples is not None else ()
        self.row_editor.blockSignals(True)
        self.row_editor.setColumnCount(len(values))
        self.row_editor.setHorizontalHeaderLabels(
            list(names) if len(names) == len(values) else [str(i) for i in range(len(values))]
        )
        for column, value in enumerate(values):
            self.row_editor.setItem(0, column, QTableWidgetItem(f"{float(value):.4g}"))
        self.row_editor.blockSignals(False)
