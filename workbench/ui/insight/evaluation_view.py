"""Where the model errs: confusion matrix, per-class table, and the samples behind each cell."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.insight.evaluation import EvaluationResult, SampleSet

GALLERY_LIMIT = 200  # samples shown per cell, worst first
THUMBNAIL = 64
Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()


class ConfusionMatrixModel(QAbstractTableModel):
    """Rows are the true classes, columns the predicted ones; counts or row-normalised shares.

    Cells are tinted by their share of the row: the diagonal (right) in blue, mistakes in
    orange, so a strong off-diagonal cell stands out at a glance.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: EvaluationResult | None = None
        self.normalized = False

    def set_result(self, result: EvaluationResult | None) -> None:
        self.beginResetModel()
        self.result = result
        self.endResetModel()

    def set_normalized(self, normalized: bool) -> None:
        self.normalized = normalized
        if self.result is not None and self.result.num_classes:
            last = self.result.num_classes - 1
            self.dataChanged.emit(self.index(0, 0), self.index(last, last))

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() or self.result is None else self.result.num_classes

    def columnCount(self, parent: Index = _ROOT) -> int:
        return self.rowCount(parent)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if self.result is None or not index.isValid():
            return None
        row, column = index.row(), index.column()
        count = int(self.result.confusion[row, column])
        share = float(self.result.normalized_confusion()[row, column])
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{share:.0%}" if self.normalized else str(count)
        if role == Qt.ItemDataRole.BackgroundRole:
            return _cell_colour(share, row == column)
        if role == Qt.ItemDataRole.ForegroundRole:
            return QColor("white") if share > 0.55 else QColor("#202020")
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return Qt.AlignmentFlag.AlignCenter
        if role == Qt.ItemDataRole.ToolTipRole:
            names = self.result.class_names
            return (
                f"{count} sample(s) of {names[row]} predicted as {names[column]} "
                f"({share:.1%} of {names[row]}); click to see them"
            )
        if role == Qt.ItemDataRole.UserRole:
            return count
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if self.result is None or role != Qt.ItemDataRole.DisplayRole:
            return None
        if section >= self.result.num_classes:
            return None
        return self.result.class_names[section]


def _cell_colour(share: float, diagonal: bool) -> QColor:
    base = QColor("#0072B2") if diagonal else QColor("#D55E00")
    strength = min(1.0, share) ** 0.7 if share > 0 else 0.0
    white = QColor("white")
    return QColor(
        round(white.red() + (base.red() - white.red()) * strength),
        round(white.green() + (base.green() - white.green()) * strength),
        round(white.blue() + (base.blue() - white.blue()) * strength),
    )


def image_pixmap(image: np.ndarray[Any, Any], size: int = THUMBNAIL) -> QPixmap:
    """A 0..1 gray [H, W] or RGB [H, W, 3] picture as a pixmap scaled up with sharp pixels."""
    data = np.ascontiguousarray(np.clip(np.nan_to_num(image) * 255, 0, 255).astype(np.uint8))
    if data.ndim == 2:
        height, width = data.shape
        qimage = QImage(data.data, width, height, width, QImage.Format.Format_Grayscale8)
    else:
        height, width = data.shape[:2]
        qimage = QImage(data.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(qimage.copy()).scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
    )


class EvaluationView(QWidget):
    """Confusion matrix (counts or normalised), per-class precision/recall, and a gallery of
    the samples in the clicked cell sorted by loss (images for image sets, rows otherwise)."""

    cell_selected = Signal(int, int)  # true class, predicted class

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("evaluationView")
        self.setAccessibleName("evaluationView")
        self.result: EvaluationResult | None = None
        self.samples: SampleSet | None = None
        self.shown_indices: list[int] = []
        self._build()

    def _build(self) -> None:
        self.matrix_model = ConfusionMatrixModel(self)
        self.matrix = QTableView()
        self.matrix.setObjectName("confusionMatrix")
        self.matrix.setAccessibleName("confusionMatrix")
        self.matrix.setModel(self.matrix_model)
        self.matrix.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        # The chosen cell keeps its tint and gets a frame: a selection colour would read as data.
        self.matrix.setStyleSheet(
            "QTableView#confusionMatrix { selection-background-color: transparent; "
            "selection-color: #202020; }"
            "QTableView#confusionMatrix::item:selected { border: 3px solid #202020; }"
        )
        self.matrix.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        for header in (self.matrix.horizontalHeader(), self.matrix.verticalHeader()):
            header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.matrix.clicked.connect(lambda index: self.show_cell(index.row(), index.column()))
        self.normalize = QCheckBox("Normalise rows (share of each true class)")
        self.normalize.setObjectName("normalizeConfusionToggle")
        self.normalize.toggled.connect(self.matrix_model.set_normalized)
        self.accuracy = QLabel("No evaluation yet: train for an epoch.")
        self.accuracy.setObjectName("evaluationAccuracyLabel")

        self.per_class = QTableWidget(0, 5)
        self.per_class.setObjectName("perClassTable")
        self.per_class.setHorizontalHeaderLabels(
            ["class", "precision", "recall (accuracy)", "F1", "samples"]
        )
        self.per_class.verticalHeader().setVisible(False)
        self.per_class.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.per_class.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)

        self.gallery_title = QLabel("Click a cell of the matrix to see its samples, worst first.")
        self.gallery_title.setWordWrap(True)
        self.gallery = QListWidget()
        self.gallery.setObjectName("misclassifiedGallery")
        self.gallery.setViewMode(QListWidget.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        self.gallery.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.gallery.setGridSize(QSize(THUMBNAIL + 36, THUMBNAIL + 40))
        self.gallery.setMovement(QListWidget.Movement.Static)
        self.rows = QTableWidget(0, 0)
        self.rows.setObjectName("misclassifiedRows")
        self.rows.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.rows.hide()

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(
            QLabel("Confusion matrix: rows are the true class, columns the prediction")
        )
        left_layout.addWidget(self.matrix, 3)
        row = QHBoxLayout()
        row.addWidget(self.normalize)
        row.addStretch(1)
        left_layout.addLayout(row)
        left_layout.addWidget(self.accuracy)
        left_layout.addWidget(self.per_class, 2)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.gallery_title)
        right_layout.addWidget(self.gallery, 1)
        right_layout.addWidget(self.rows, 1)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

    # ------------------------------------------------------------------ API

    def set_evaluation(self, result: EvaluationResult, samples: SampleSet | None = None) -> None:
        """Show a new evaluation; the selected cell, if any, is shown again with its new samples."""
        selected = self.matrix.currentIndex()
        self.result, self.samples = result, samples
        self.matrix_model.set_result(result)
        accuracy = result.accuracy
        shown = "n/a" if accuracy is None else f"{accuracy:.2%}"
        errors = int(result.size - np.trace(result.confusion))
        self.accuracy.setText(
            f"Accuracy {shown} on {result.size} validation samples; {errors} mistakes"
        )
        self._fill_per_class(result)
        if selected.isValid() and selected.row() < result.num_classes:
            self.show_cell(selected.row(), selected.column())
        else:
            self._clear_gallery("Click a cell of the matrix to see its samples, worst first.")

    def clear(self) -> None:
        """Forget the evaluation shown (another project's, or another model's)."""
        self.result, self.samples = None, None
        self.matrix_model.set_result(None)
        self.accuracy.setText("No evaluation yet: train for an epoch.")
        self.per_class.setRowCount(0)
        self._clear_gallery("Click a cell of the matrix to see its samples, worst first.")

    def show_cell(self, true_class: int, predicted_class: int) -> list[int]:
        """List the cell's samples, highest loss first; returns their indices in the split."""
        if self.result is None:
            return []
        self.matrix.setCurrentIndex(self.matrix_model.index(true_class, predicted_class))
        indices = self.result.samples_in_cell(true_class, predicted_class)
        names = self.result.class_names
        self.shown_indices = [int(i) for i in indices[:GALLERY_LIMIT]]
        more = f" (the {GALLERY_LIMIT} worst shown)" if len(indices) > GALLERY_LIMIT else ""
        what = "correct" if true_class == predicted_class else "mistaken"
        self.gallery_title.setText(
            f"{len(indices)} {what} sample(s): true {names[true_class]}, predicted "
            f"{names[predicted_class]}, sorted by loss{more}"
        )
        if self.samples is not None and self.samples.kind == "image":
            self._fill_gallery(self.shown_indices)
        else:
            self._fill_rows(self.shown_indices)
        self.cell_selected.emit(true_class, predicted_class)
        return self.shown_indices

    # ------------------------------------------------------------------ filling

    def _fill_per_class(self, result: EvaluationResult) -> None:
        rows = result.per_class()
        self.per_class.setRowCount(len(rows))
        for row, metrics in enumerate(rows):
            values = [metrics.name, _ratio(metrics.precision), _ratio(metrics.recall),
                      _ratio(metrics.f1), str(metrics.support)]  # fmt: skip
            for column, text in enumerate(values):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.per_class.setItem(row, column, item)

    def _clear_gallery(self, title: str) -> None:
        self.gallery.clear()
        self.rows.setRowCount(0)
        self.shown_indices = []
        self.gallery_title.setText(title)

    def _fill_gallery(self, indices: list[int]) -> None:
        assert self.result is not None and self.samples is not None
        self.rows.hide()
        self.gallery.show()
        self.gallery.clear()
        names = self.result.class_names
        for index in indices:
            predicted = names[int(self.result.predictions[index])]
            loss = float(self.result.losses[index])
            item = QListWidgetItem(
                QIcon(image_pixmap(self.samples.image(index))),
                f"#{index} → {predicted}\nloss {loss:.2f}",
            )
            item.setToolTip(
                f"sample {index}: true {names[int(self.result.targets[index])]}, predicted "
                f"{predicted} with {float(self.result.confidence[index]):.0%} confidence, "
                f"loss {loss:.3f}"
            )
            item.setData(Qt.ItemDataRole.UserRole, index)
            self.gallery.addItem(item)

    def _fill_rows(self, indices: list[int]) -> None:
        assert self.result is not None
        self.gallery.hide()
        self.rows.show()
        features = list(self.samples.feature_names) if self.samples is not None else []
        headers = ["sample", "true", "predicted", "loss", *features]
        self.rows.setColumnCount(len(headers))
        self.rows.setHorizontalHeaderLabels(headers)
        self.rows.setRowCount(len(indices))
        names = self.result.class_names
        for row, index in enumerate(indices):
            values = [
                str(index),
                names[int(self.result.targets[index])],
                names[int(self.result.predictions[index])],
                f"{float(self.result.losses[index]):.3f}",
            ]
            if self.samples is not None:
                values += [f"{value:.4g}" for value in self.samples.row(index)]
            for column, text in enumerate(values):
                self.rows.setItem(row, column, QTableWidgetItem(text))
        self.rows.resizeColumnsToContents()


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
