"""Start from a pretrained network: pick a torchvision architecture, its weights, what stays
frozen and an image folder; the window gets a new unsaved project (Backbone + Linear head)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from workbench.controllers.jobs import JobRunner
from workbench.engine.backbone_catalogue import BackboneInfo, backbone_catalogue
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import Experiment
from workbench.engine.pretrained_start import freeze_value, pretrained_experiment

if TYPE_CHECKING:
    from workbench.ui.main_window import MainWindow

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()
COLUMNS = ("Network", "Parameters", "Input", "ImageNet top-1", "Weights file")
WEIGHTS_CHOICES = (
    ("DEFAULT", "Pretrained on ImageNet (DEFAULT: the torch hub cache, or downloaded)"),
    ("file", "A local weights file…"),
    ("none", "None: random initial weights"),
)
FREEZE_CHOICES = (
    ("all", "Freeze the network: train only the new last layer"),
    ("last", "Train the network's last stages and the new last layer"),
    ("none", "Train everything"),
)
_catalogue: list[BackboneInfo] | None = None  # read once per process (about a second)


class CatalogueModel(QAbstractTableModel):
    """The architectures as torchvision's weights metadata describes them (nothing is built)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.entries: list[BackboneInfo] = []

    def set_entries(self, entries: list[BackboneInfo]) -> None:
        self.beginResetModel()
        self.entries = list(entries)
        self.endResetModel()

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        entry = self.entries[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return _cell(entry, column)
        if role == Qt.ItemDataRole.UserRole:  # what the column sorts by
            return (entry.arch, entry.parameters, entry.input_size, entry.top1 or 0.0, 0)[column]
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (1, 2, 3):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            where = "in the torch hub cache" if entry.cached else f"downloaded from {entry.url}"
            return f"{entry.arch} {entry.weights}: {entry.file_name}, {where}"
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None


def _cell(entry: BackboneInfo, column: int) -> str:
    if column == 0:
        return entry.arch
    if column == 1:
        return f"{entry.parameters / 1e6:.1f} M"
    if column == 2:
        return f"{entry.input_size}×{entry.input_size}"
    if column == 3:
        return "—" if entry.top1 is None else f"{entry.top1:.1f} %"
    size = "" if entry.file_size_mb is None else f" ({entry.file_size_mb:.0f} MB)"
    return ("cached" if entry.cached else "to download") + size


class PretrainedStartDialog(QDialog):
    """The architectures load in the background; `experiment()` is the project to start."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pretrainedStartDialog")
        self.setWindowTitle("Start from a pretrained network")
        self.resize(820, 600)
        self.made: Experiment | None = None  # the project, once Create project succeeded
        self.catalogue = CatalogueModel(self)
        self.jobs = JobRunner(self, name="Backbones")
        self.jobs.succeeded.connect(lambda _key, entries: self._show_catalogue(entries))
        self.jobs.failed.connect(lambda _key, error: self.status.setText(str(error)))
        self._build()
        if _catalogue is not None:
            self._show_catalogue(_catalogue)
        else:
            self.status.setText("Reading torchvision's list of pretrained networks…")
            self.jobs.start("catalogue", backbone_catalogue)

    # ------------------------------------------------------------------ construction

    def _build(self) -> None:
        self.filter = QLineEdit()
        self.filter.setObjectName("backboneFilter")
        self.filter.setPlaceholderText("Filter: resnet, mobilenet, efficientnet…")
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.catalogue)
        self.proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.proxy.setFilterKeyColumn(0)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QTableView()
        self.table.setObjectName("backboneTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(1, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_ok())
        self.status = QLabel()
        self.status.setObjectName("pretrainedStatus")
        self.status.setWordWrap(True)

        self.weights = _combo(WEIGHTS_CHOICES, "weightsChoice")
        self.weights_file = QLineEdit()
        self.weights_file.setObjectName("weightsFileEdit")
        self.weights_file.setPlaceholderText("a state_dict as torchvision saves it (.pth)")
        self.weights_browse = QPushButton("Browse…")
        self.weights_browse.clicked.connect(self._browse_weights)
        self.weights.currentIndexChanged.connect(lambda _i: self._update_weights_row())
        self.freeze = _combo(FREEZE_CHOICES, "freezeChoice")
        self.stages = QSpinBox()
        self.stages.setObjectName("trainedStagesSpin")
        self.stages.setRange(1, 64)
        self.stages.setSuffix(" stage(s)")
        self.freeze.currentIndexChanged.connect(lambda _i: self._update_weights_row())
        self.folder = QLineEdit()
        self.folder.setObjectName("imageFolderEdit")
        self.folder.setPlaceholderText("a folder with one subfolder per class: photos/cat, …")
        self.folder.textChanged.connect(lambda _text: self._update_ok())
        folder_browse = QPushButton("Browse…")
        folder_browse.clicked.connect(self._browse_folder)
        self.image_size = QSpinBox()
        self.image_size.setObjectName("imageSizeSpin")
        self.image_size.setRange(0, 1024)
        self.image_size.setSpecialValueText("the weights' own crop")
        self.image_size.setSuffix(" px")
        self.epochs = QSpinBox()
        self.epochs.setObjectName("epochsSpin")
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(3)

        form = QFormLayout()
        form.addRow("Weights:", self.weights)
        form.addRow("", _row(self.weights_file, self.weights_browse))
        form.addRow("Training:", _row(self.freeze, self.stages))
        form.addRow("Image folder:", _row(self.folder, folder_browse))
        form.addRow("Image size:", self.image_size)
        form.addRow("Epochs:", self.epochs)
        self.problem = QLabel()
        self.problem.setObjectName("pretrainedProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #b71c1c;")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Create project")
        self.ok_button.setObjectName("createPretrainedProject")
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel(
                "A network trained on ImageNet already sees edges, textures and shapes: give "
                "it a new last layer and train that on your images."
            )
        )
        layout.addWidget(self.filter)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self._update_weights_row()

    # ------------------------------------------------------------------ state

    def _show_catalogue(self, entries: list[BackboneInfo]) -> None:
        global _catalogue
        _catalogue = entries
        self.catalogue.set_entries(entries)
        cached = sum(entry.cached for entry in entries)
        self.status.setText(
            f"{len(entries)} networks, {cached} with weights in the torch hub cache. Accuracy "
            "is ImageNet-1K top-1 as published with the weights."
        )
        self.select_arch("resnet18")

    def select_arch(self, arch: str) -> bool:
        """Select `arch` in the table (False when it is not listed)."""
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if index.data() == arch:
                self.table.selectRow(row)
                self.table.scrollTo(index)
                return True
        return False

    def selected_arch(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return str(rows[0].data()) if rows else None

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        return self.jobs.shutdown(timeout_ms)

    def _update_weights_row(self) -> None:
        from_file = self.weights.currentData() == "file"
        self.weights_file.setEnabled(from_file)
        self.weights_browse.setEnabled(from_file)
        self.stages.setEnabled(self.freeze.currentData() == "last")
        self._update_ok()

    def _update_ok(self) -> None:
        ready = self.selected_arch() is not None and bool(self.folder.text().strip())
        self.ok_button.setEnabled(ready)

    def _browse_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Weights file", "", "Weights (*.pth *.pt *.safetensors);;All files (*)"
        )
        if path:
            self.weights_file.setText(path)

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Image folder (one subfolder per class)")
        if path:
            self.folder.setText(path)

    # ------------------------------------------------------------------ the project

    def weights_value(self) -> str:
        choice = str(self.weights.currentData())
        if choice != "file":
            return choice
        text = self.weights_file.text().strip()
        if not text:
            raise ValueError("Weights: choose the local weights file, or other weights")
        if not Path(text).expanduser().is_file():
            raise ValueError(f"Weights: {text}: file not found; check the path")
        return str(Path(text).expanduser())

    def experiment(self) -> Experiment:
        """The project the choices make; a ValueError or WorkbenchError says what is wrong."""
        arch = self.selected_arch()
        if arch is None:
            raise ValueError("Pick a network in the list")
        return pretrained_experiment(
            self.folder.text().strip(),
            arch,
            self.weights_value(),
            freeze_value(str(self.freeze.currentData()), self.stages.value()),
            image_size=self.image_size.value() or None,
            epochs=self.epochs.value(),
        )

    def _accept(self) -> None:
        try:
            self.made = self.experiment()
        except (ValueError, WorkbenchError) as exc:
            self.problem.setText(str(exc))
            return
        self.problem.clear()
        self.accept()


def _combo(choices: tuple[tuple[str, str], ...], name: str) -> QComboBox:
    combo = QComboBox()
    combo.setObjectName(name)
    for value, text in choices:
        combo.addItem(text, value)
    return combo


def _row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for index, widget in enumerate(widgets):
        layout.addWidget(widget, 1 if index == 0 else 0)
    return box


# ---------------------------------------------------------------------- the window's part


def install_pretrained_start(window: MainWindow) -> QAction:
    """File > Start from a Pretrained Network… and the welcome banner's button."""
    action = QAction("Start from a &Pretrained Network…", window)
    action.setObjectName("pretrainedStartAction")
    action.setStatusTip("A new project: a pretrained torchvision network on your image folder")
    action.triggered.connect(lambda: open_pretrained_start(window))
    for menu in window.new_action.associatedObjects():
        if isinstance(menu, QMenu):  # the File menu: right after New
            actions = menu.actions()
            after = actions.index(window.new_action) + 1
            if after < len(actions):
                menu.insertAction(actions[after], action)
            else:
                menu.addAction(action)
            break
    window.welcome.pretrained_requested.connect(action.trigger)
    return action


def open_pretrained_start(window: MainWindow) -> PretrainedStartDialog | None:
    """Show the dialog (window-modal); on Create, its project replaces the current one."""
    if not window.may_leave_project():
        return None
    dialog = PretrainedStartDialog(window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.accepted.connect(lambda: _start_made(window, dialog))
    dialog.finished.connect(lambda _result: dialog.shutdown())
    dialog.open()
    return dialog


def _start_made(window: MainWindow, dialog: PretrainedStartDialog) -> None:
    if dialog.made is not None:
        start_project(window, dialog.made)


def start_project(window: MainWindow, experiment: Experiment) -> None:
    """The new project, unsaved, with nothing of the previous one left on screen."""
    window.preset_name = None
    window.document.replace(experiment, None)
    window.start_over()
    window.document.undo_stack.resetClean()  # a new project that was never saved
    window.transfer.show_augmentation()
    window.statusBar().showMessage(
        "A new project from a pretrained network: check the Augmentation panel, then Train", 8000
    )
