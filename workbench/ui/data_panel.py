"""Data settings: dataset, its options, split and loader settings, with a preview and class balance."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.controllers import jobs
from workbench.controllers.background_task import BackgroundTask
from workbench.engine.dataset_preview import DatasetPreview, preview_dataset
from workbench.engine.datasets import CATALOGUE, OptionSpec, availability, describe_dataset
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import DataSpec
from workbench.ui.field_validation import check_typed_values
from workbench.ui.insight.palette import CLASS_COLOURS
from workbench.ui.project_document import ProjectDocument
from workbench.ui.qt import pg
from workbench.ui.widgets import named

IMAGE_GRID_COLUMNS = 8
THUMBNAIL = 40  # pixels a preview picture takes on each side
PREVIEW_DELAY_MS = 250


def option_editor(option: OptionSpec, value: Any) -> QWidget:
    """An input widget for one dataset option, drawn from its OptionSpec alone."""
    widget: QWidget
    if option.type is bool:
        box = QCheckBox()
        box.setChecked(bool(value))
        widget = box
    elif option.type is int:
        spin = QSpinBox()
        spin.setRange(
            int(option.minimum or 0) - (1 if option.default is None else 0),
            int(option.maximum or 2**31 - 1),
        )
        if option.default is None:
            spin.setSpecialValueText("all")  # the value below the minimum means "unset"
        spin.setValue(spin.minimum() if value is None else int(value))
        widget = spin
    elif option.type is float:
        double = QDoubleSpinBox(decimals=3, singleStep=0.05)
        double.setRange(
            option.minimum if option.minimum is not None else -1e9, option.maximum or 1e9
        )
        double.setValue(float(value))
        widget = double
    else:
        line = QLineEdit(str(value or ""))
        widget = line
    widget.setToolTip(option.help)
    widget.setObjectName(f"option_{option.name}")
    check_typed_values(widget)
    return widget


def option_value(option: OptionSpec, widget: QWidget) -> Any:
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    if isinstance(widget, QSpinBox):
        if option.default is None and widget.value() == widget.minimum():
            return None
        return widget.value()
    if isinstance(widget, QDoubleSpinBox):
        return widget.value()
    assert isinstance(widget, QLineEdit)
    return widget.text()


class DataPanel(QWidget):
    """A form over the document's [data] section plus a preview loaded off the GUI thread."""

    input_shape_changed = Signal(tuple)
    data_info_changed = Signal(object)  # DatasetInfo: shape, dtype and vocabulary for the model
    preview_ready = Signal(object)  # DatasetPreview

    def __init__(self, document: ProjectDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("dataPanel")
        self.document = document
        self.preview: DatasetPreview | None = None
        self._previewed: tuple[DataSpec, int] | None = None
        self._option_widgets: dict[str, tuple[OptionSpec, QWidget]] = {}
        self.loader = BackgroundTask(self)
        jobs.register_owner(self)  # its timer starts previews: it must stop with the rest
        self.loader.succeeded.connect(self._show_preview)
        self.loader.failed.connect(self._show_problem)
        # Loading waits for a pause in typing, and never delays the window's first paint.
        self._pending_preview: tuple[DataSpec, int] | None = None
        self.preview_timer = QTimer(self)
        self.preview_timer.setSingleShot(True)
        self.preview_timer.setInterval(PREVIEW_DELAY_MS)
        self.preview_timer.timeout.connect(self._start_preview)
        self._build()
        check_typed_values(self)  # a bad typed value is marked, never silently changed
        document.changed.connect(self.refresh)
        self.refresh()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.dataset = QComboBox()
        for name, entry in CATALOGUE.items():
            self.dataset.addItem(name, name)
            self.dataset.setItemData(
                self.dataset.count() - 1, entry.description, Qt.ItemDataRole.ToolTipRole
            )
        named(self.dataset, "datasetPicker", "The data to train on")
        self.description = QLabel(wordWrap=True)
        self.description.setObjectName("datasetDescription")
        self.path = QLineEdit()
        named(self.path, "dataPathEdit", "Your CSV file or image folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path, 1)
        path_row.addWidget(browse)
        self.path_row = QWidget()
        self.path_row.setLayout(path_row)
        path_row.setContentsMargins(0, 0, 0, 0)
        self.label_column = QLineEdit()
        named(self.label_column, "labelColumnEdit", "The CSV column that holds the class label")
        self.root = QLineEdit()
        named(self.root, "dataRootEdit", "Folder where torchvision datasets are kept")
        self.download = QCheckBox("Download if missing")
        named(
            self.download,
            "downloadToggle",
            "Fetch the dataset from the internet when it is not under the folder",
        )
        self.val_split = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=0.9, singleStep=0.05)
        named(
            self.val_split,
            "valSplitSpin",
            "Fraction held out for validation (when there is no test split)",
        )
        self.batch_size = QSpinBox(minimum=1, maximum=1_000_000)
        named(self.batch_size, "batchSizeSpin", "Samples per training batch")
        self.val_batch_size = QSpinBox(minimum=1, maximum=1_000_000)
        named(self.val_batch_size, "valBatchSizeSpin", "Samples per validation batch")
        self.shuffle = QCheckBox("Shuffle every epoch")
        named(self.shuffle, "shuffleToggle", "Reshuffle the training data each epoch")
        self.drop_last = QCheckBox("Drop the last partial batch")
        named(
            self.drop_last,
            "dropLastToggle",
            "Skip the final batch when it is smaller than the rest",
        )
        self.workers = QSpinBox(minimum=0, maximum=64)
        named(
            self.workers,
            "workersSpin",
            "DataLoader worker processes (0: load in the training thread)",
        )
        self.in_memory = QCheckBox("Fast in-memory batches")
        named(
            self.in_memory,
            "inMemoryToggle",
            "Keep small datasets as tensors and slice batches from them",
        )

        form.addRow("&Dataset", self.dataset)
        form.addRow("", self.description)
        form.addRow("&File / folder", self.path_row)
        form.addRow("&Label column", self.label_column)
        form.addRow("&Root folder", self.root)
        form.addRow("", self.download)
        form.addRow("&Validation split", self.val_split)
        form.addRow("&Batch size", self.batch_size)
        form.addRow("Val batch si&ze", self.val_batch_size)
        form.addRow("", self.shuffle)
        form.addRow("", self.drop_last)
        form.addRow("&Workers", self.workers)
        form.addRow("", self.in_memory)
        self.form = form
        layout.addLayout(form)

        self.options_box = QGroupBox("Dataset options")
        self.options_form = QFormLayout(self.options_box)
        layout.addWidget(self.options_box)

        preview_box = QGroupBox("Preview")
        preview_layout = QVBoxLayout(preview_box)
        self.status = QLabel(wordWrap=True)
        self.status.setObjectName("dataStatus")
        self.preview_stack = QStackedWidget()
        self.scatter = pg.PlotWidget()
        self.scatter.setObjectName("dataScatter")
        self.scatter.setMinimumHeight(180)
        self.image_grid = QWidget()
        self.image_grid.setObjectName("dataImageGrid")
        self.image_layout = QGridLayout(self.image_grid)
        self.image_layout.setSpacing(4)
        # Packed at the top left: rows spread over the preview's height looked stretched.
        self.image_layout.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.table = QTableWidget()
        self.table.setObjectName("dataTable")
        for widget in (self.scatter, self.image_grid, self.table):
            self.preview_stack.addWidget(widget)
        self.balance = pg.PlotWidget()
        self.balance.setObjectName("classBalance")
        self.balance.setMaximumHeight(140)
        self.balance.setTitle("Class balance (training / validation)")
        preview_layout.addWidget(self.status)
        preview_layout.addWidget(self.preview_stack, 1)
        preview_layout.addWidget(self.balance)
        layout.addWidget(preview_box, 1)

        self.dataset.currentIndexChanged.connect(
            lambda *_: self._edit(name=self.dataset.currentData(), options={})
        )
        self.path.editingFinished.connect(lambda: self._edit(path=self.path.text() or None))
        self.label_column.editingFinished.connect(
            lambda: self._edit(label_column=self.label_column.text() or "label")
        )
        self.root.editingFinished.connect(lambda: self._edit(root=self.root.text()))
        self.download.toggled.connect(lambda on: self._edit(download=on))
        self.val_split.valueChanged.connect(lambda v: self._edit(val_split=round(v, 4)))
        self.batch_size.valueChanged.connect(lambda v: self._edit(batch_size=v))
        self.val_batch_size.valueChanged.connect(lambda v: self._edit(val_batch_size=v))
        self.shuffle.toggled.connect(lambda on: self._edit(shuffle=on))
        self.drop_last.toggled.connect(lambda on: self._edit(drop_last=on))
        self.workers.valueChanged.connect(lambda v: self._edit(num_workers=v))
        self.in_memory.toggled.connect(lambda on: self._edit(in_memory=on))

    def _browse(self) -> None:
        if self.document.experiment.data.name == "image-folder":
            path = QFileDialog.getExistingDirectory(self, "Image folder")
        else:
            path, _ = QFileDialog.getOpenFileName(
                self, "CSV file", "", "CSV files (*.csv *.tsv *.txt)"
            )
        if path:
            self.path.setText(path)
            self._edit(path=path)

    def _edit(self, **changes: Any) -> None:
        self.document.update_data(**changes)

    # ------------------------------------------------------------------ refresh

    def refresh(self) -> None:
        data = self.document.experiment.data
        entry = CATALOGUE[data.name]
        plain = (self.dataset, self.path, self.label_column, self.root, self.download, self.val_split,
                 self.batch_size, self.val_batch_size, self.shuffle, self.drop_last, self.workers,
                 self.in_memory)  # fmt: skip
        blockers = [QSignalBlocker(widget) for widget in plain]
        self.dataset.setCurrentIndex(self.dataset.findData(data.name))
        _, where = availability(data.name, data.root)
        self.description.setText(f"{entry.description}. Offline: {where}")
        self.path.setText(data.path or "")
        self.label_column.setText(data.label_column)
        self.root.setText(data.root)
        self.download.setChecked(data.download)
        self.val_split.setValue(data.val_split)
        self.batch_size.setValue(data.batch_size)
        self.val_batch_size.setValue(data.val_batch_size)
        self.shuffle.setChecked(data.shuffle)
        self.drop_last.setChecked(data.drop_last)
        self.workers.setValue(data.num_workers)
        self.in_memory.setChecked(data.in_memory)
        del blockers
        own_files = data.name in ("csv", "image-folder")
        self.form.setRowVisible(self.path_row, own_files)
        self.form.setRowVisible(self.label_column, data.name == "csv")
        self.form.setRowVisible(self.root, entry.source == "files")
        self.form.setRowVisible(self.download, entry.source == "files")
        self._rebuild_options(entry.options, data)
        self._request_preview(data)

    def _rebuild_options(self, options: tuple[OptionSpec, ...], data: DataSpec) -> None:
        names = tuple(option.name for option in options)
        if tuple(self._option_widgets) != names:
            while self.options_form.rowCount():
                self.options_form.removeRow(0)
            self._option_widgets = {}
            for option in options:
                widget = option_editor(option, data.options.get(option.name, option.default))
                self._option_widgets[option.name] = (option, widget)
                self.options_form.addRow(option.name.replace("_", " "), widget)
                self._watch_option(widget)
        else:
            for option, widget in self._option_widgets.values():
                blocker = QSignalBlocker(widget)
                value = data.options.get(option.name, option.default)
                if isinstance(widget, QCheckBox):
                    widget.setChecked(bool(value))
                elif isinstance(widget, QSpinBox):
                    widget.setValue(widget.minimum() if value is None else int(value))
                elif isinstance(widget, QDoubleSpinBox):
                    widget.setValue(float(value))
                elif isinstance(widget, QLineEdit):
                    widget.setText(str(value or ""))
                del blocker
        self.options_box.setVisible(bool(options))

    def _watch_option(self, widget: QWidget) -> None:
        if isinstance(widget, QCheckBox):
            widget.toggled.connect(lambda *_: self._options_edited())
        elif isinstance(widget, QSpinBox | QDoubleSpinBox):
            widget.valueChanged.connect(lambda *_: self._options_edited())
        elif isinstance(widget, QLineEdit):
            widget.editingFinished.connect(self._options_edited)

    def _options_edited(self) -> None:
        options = {}
        for name, (option, widget) in self._option_widgets.items():
            value = option_value(option, widget)
            if value != option.default:
                options[name] = value
        self._edit(options=options)

    # ------------------------------------------------------------------ preview

    def _request_preview(self, data: DataSpec) -> None:
        seed = self.document.experiment.train.seed
        if self._previewed == (data, seed):
            return
        self._previewed = (data, seed)
        self._announce_shape_early(data)
        self.status.setText("Loading the preview…")
        self._pending_preview = (data, seed)
        self.preview_timer.start()

    def _start_preview(self) -> None:
        if self._pending_preview is None:
            return
        data, seed = self._pending_preview
        self._pending_preview = None
        self.loader.run(lambda: preview_dataset(data, seed))

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """No new preview after this, and wait for the one in flight (`jobs.shutdown_all()`
        calls it when the window closes)."""
        self.preview_timer.stop()
        self._pending_preview = None
        return self.loader.shutdown(timeout_ms)

    @property
    def is_loading(self) -> bool:
        """True while a preview is waiting to start or being computed."""
        return self.preview_timer.isActive() or self.loader.is_busy

    def _announce_shape_early(self, data: DataSpec) -> None:
        """Datasets that are cheap to describe tell the stack their shape at once,
        so a freshly opened project is never checked against the previous dataset's shape."""
        entry = CATALOGUE[data.name]
        if entry.describe is None and entry.source != "bundled":
            # The user's own files may be large: the off-thread preview describes them. Until
            # then the stack must not plan for the previous dataset's shape and vocabulary.
            self.data_info_changed.emit(None)
            return
        try:
            info = describe_dataset(data)
        except WorkbenchError:
            return  # the preview reports the problem
        self.input_shape_changed.emit(tuple(info.input_shape))
        self.data_info_changed.emit(info)

    def _show_problem(self, message: str) -> None:
        self.preview = None
        self.status.setText(f"⚠ {message}")
        self.status.setStyleSheet("color: #B00020;")

    def _show_preview(self, preview: DatasetPreview) -> None:
        self.preview = preview
        info = preview.info
        self.status.setStyleSheet("")
        shape = "×".join(str(size) for size in info.input_shape)
        self.status.setText(
            f"{info.train_size:,} training and {info.val_size:,} validation samples · input {shape} · "
            f"{info.num_classes} classes"
        )
        if info.kind == "points2d":
            self._show_points(preview)
        elif info.kind == "image":
            self._show_images(preview)
        else:
            self._show_rows(preview)
        self._show_balance(preview)
        self.input_shape_changed.emit(tuple(info.input_shape))
        self.data_info_changed.emit(info)
        self.preview_ready.emit(preview)

    def _show_points(self, preview: DatasetPreview) -> None:
        self.scatter.clear()
        for label in np.unique(preview.labels):
            points = preview.samples[preview.labels == label]
            colour = CLASS_COLOURS[int(label) % len(CLASS_COLOURS)]
            name = (
                preview.info.class_names[int(label)]
                if int(label) < len(preview.info.class_names)
                else str(label)
            )
            self.scatter.plot(points[:, 0], points[:, 1], pen=None, symbol="o", symbolSize=6,
                              symbolBrush=colour, symbolPen=None, name=name)  # fmt: skip
        self.preview_stack.setCurrentWidget(self.scatter)

    def _show_images(self, preview: DatasetPreview) -> None:
        while self.image_layout.count():
            item = self.image_layout.takeAt(0)
            tile = item.widget() if item is not None else None
            if tile is not None:
                tile.deleteLater()
        for index, (image, label) in enumerate(
            zip(preview.samples[:32], preview.labels[:32], strict=True)
        ):
            tile = QLabel()
            tile.setPixmap(image_pixmap(image, THUMBNAIL))
            tile.setFixedSize(THUMBNAIL, THUMBNAIL)  # square, whatever room the grid has
            tile.setToolTip(preview.info.class_names[int(label)])
            tile.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.image_layout.addWidget(
                tile, index // IMAGE_GRID_COLUMNS, index % IMAGE_GRID_COLUMNS
            )
        self.preview_stack.setCurrentWidget(self.image_grid)

    def _show_rows(self, preview: DatasetPreview) -> None:
        if preview.info.kind == "text":
            self._show_text_rows(preview)
            return
        rows = preview.samples.reshape(len(preview.samples), -1)[:48]
        self.table.clear()
        self.table.setRowCount(len(rows))
        self.table.setColumnCount(rows.shape[1] + 1 if len(rows) else 0)
        self.table.setHorizontalHeaderLabels(["label", *[f"x{i}" for i in range(rows.shape[1])]])
        for r, (row, label) in enumerate(zip(rows, preview.labels, strict=False)):
            self.table.setItem(r, 0, QTableWidgetItem(_label_text(preview, label)))
            for c, value in enumerate(row):
                self.table.setItem(r, c + 1, QTableWidgetItem(f"{value:.4g}"))
        self.preview_stack.setCurrentWidget(self.table)

    def _show_text_rows(self, preview: DatasetPreview) -> None:
        """Token blocks as the text they stand for, beside the text the model must predict."""
        tokens = preview.info.class_names
        self.table.clear()
        self.table.setRowCount(min(len(preview.samples), 48))
        self.table.setColumnCount(2)
        self.table.setHorizontalHeaderLabels(["next tokens", "text"])
        for r, (sample, label) in enumerate(
            zip(preview.samples[:48], preview.labels, strict=False)
        ):
            for c, ids in enumerate((label, sample)):
                text = "".join(tokens[int(i)] for i in np.ravel(ids) if 0 <= int(i) < len(tokens))
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.preview_stack.setCurrentWidget(self.table)

    def _show_balance(self, preview: DatasetPreview) -> None:
        self.balance.clear()
        x = np.arange(len(preview.class_counts))
        self.balance.addItem(
            pg.BarGraphItem(x=x - 0.2, height=preview.class_counts, width=0.4, brush="#0072B2")
        )
        self.balance.addItem(
            pg.BarGraphItem(x=x + 0.2, height=preview.val_class_counts, width=0.4, brush="#E69F00")
        )
        axis = self.balance.getAxis("bottom")
        names = preview.info.class_names
        if len(names) <= 20:
            axis.setTicks([[(i, str(name)) for i, name in enumerate(names)]])


def image_pixmap(image: np.ndarray, size: int) -> QPixmap:
    """A [C,H,W] float image (any normalisation) as a pixmap scaled to `size` pixels."""
    array = image if image.ndim == 3 else image[None]
    low, high = float(array.min()), float(array.max())
    scaled = ((array - low) / (high - low or 1.0) * 255).astype(np.uint8)
    if scaled.shape[0] == 1:
        gray = np.ascontiguousarray(scaled[0])
        qimage = QImage(
            gray.data,
            gray.shape[1],
            gray.shape[0],
            gray.strides[0],
            QImage.Format.Format_Grayscale8,
        )
    else:
        rgb = np.ascontiguousarray(np.transpose(scaled[:3], (1, 2, 0)))
        qimage = QImage(
            rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888
        )
    return QPixmap.fromImage(qimage.copy()).scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
    )


def _label_text(preview: DatasetPreview, label: Any) -> str:
    """A class's name, or for text (a next token per position) the tokens written out."""
    names = preview.info.class_names
    values = np.asarray(label).reshape(-1)
    return (
        "".join(names[int(value)] for value in values) if values.size > 1 else names[int(values[0])]
    )
