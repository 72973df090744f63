"""The layer-stack builder: the table of layers, add/remove/move controls and the param editor."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QPoint, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStyle,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.model_builder import ModelPlan
from workbench.ui.layer_catalogue_dialog import LayerCatalogueDialog
from workbench.ui.layer_param_editor import LayerParamEditor
from workbench.ui.layer_stack_model import LayerStackModel
from workbench.ui.project_document import ProjectDocument
from workbench.ui.widgets import named

PROBLEM_STYLE = "color: #b71c1c;"


class LayerStackPanel(QWidget):
    """Build the model by adding, removing, reordering and editing layers; all undoable.

    `validity_changed(ok, message)` tells the window whether the stack can be built (to enable
    Train); `message` is the builder's first problem, empty when ok. While the document's
    layers are locked (a run trains) the stack is read-only and says why, with a button whose
    `stop_requested` asks the window to stop the run.
    """

    validity_changed = Signal(bool, str)
    stop_requested = Signal()

    def __init__(
        self,
        document: ProjectDocument,
        input_shape: Sequence[int] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("layerStackPanel")
        self.document = document
        self.model = LayerStackModel(document, input_shape, self)
        self.catalogue = LayerCatalogueDialog(self)
        self._validity: tuple[bool, str] | None = None
        self._row_before_reset: int | None = None
        self._build()
        self._make_actions()
        self.catalogue.layer_chosen.connect(self.add_layer)
        self.model.plan_changed.connect(self._show_plan)
        self.view.selectionModel().currentRowChanged.connect(self._current_row_changed)
        self.model.modelAboutToBeReset.connect(self._remember_row)
        self.model.modelReset.connect(self._restore_row)
        self.model.rowsInserted.connect(self._rows_inserted)
        document.layers_lock_changed.connect(self._lock_changed)
        self._show_plan(self.model.plan)
        if self.model.rowCount():
            self.select_row(0)

    # layout ------------------------------------------------------------------
    def _build(self) -> None:
        self.view = QTableView()
        named(self.view, "layerStack", "The layers, input at the top; drag a row to reorder")
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.view.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.view.setDragDropOverwriteMode(False)
        self.view.setDropIndicatorShown(True)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(LayerStackModel.LAYER_COLUMN, QHeaderView.ResizeMode.Stretch)
        for column in (LayerStackModel.SHAPE_COLUMN, LayerStackModel.PARAMETERS_COLUMN):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setHighlightSections(False)
        rows = self.view.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 10)
        rows.setDefaultAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        self.add_button = QPushButton("&Add layer…")
        named(self.add_button, "addLayerButton", "Add a layer after the selected one (Insert)")
        self.add_button.clicked.connect(self.open_catalogue)
        self.remove_button = self._tool_button("removeLayerButton")
        self.duplicate_button = self._tool_button("duplicateLayerButton")
        self.up_button = self._tool_button("moveLayerUpButton")
        self.down_button = self._tool_button("moveLayerDownButton")
        self.undo_button = self._tool_button("undoLayerButton")
        self.redo_button = self._tool_button("redoLayerButton")
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        for button in (self.remove_button, self.duplicate_button, self.up_button):
            buttons.addWidget(button)
        buttons.addWidget(self.down_button)
        buttons.addStretch(1)
        buttons.addWidget(self.undo_button)
        buttons.addWidget(self.redo_button)

        self.editor = LayerParamEditor(self.model, repeat_first_problem=False)
        self.editor_box = QGroupBox("Parameters")
        self.editor_box.setObjectName("layerParamBox")
        box_layout = QVBoxLayout(self.editor_box)
        scroller = QScrollArea()
        scroller.setWidgetResizable(True)
        scroller.setFrameShape(QScrollArea.Shape.NoFrame)
        scroller.setWidget(self.editor)
        scroller.viewport().setAutoFillBackground(False)  # blend into the group box
        box_layout.addWidget(scroller)

        self.total_label = QLabel()
        self.total_label.setObjectName("totalParametersLabel")
        self.total_label.setAccessibleName("totalParametersLabel")
        font = self.total_label.font()
        font.setBold(True)
        self.total_label.setFont(font)
        self.problem_label = QLabel()
        self.problem_label.setObjectName("layerStackProblem")
        self.problem_label.setAccessibleName("layerStackProblem")
        self.problem_label.setWordWrap(True)
        self.problem_label.setStyleSheet(PROBLEM_STYLE)
        self.problem_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        stack_part = QWidget()
        stack_layout = QVBoxLayout(stack_part)
        stack_layout.setContentsMargins(0, 0, 0, 0)
        stack_layout.addWidget(self.view, 1)
        stack_layout.addWidget(self.total_label)
        stack_layout.addWidget(self.problem_label)
        # A splitter keeps the table still while the editor's length changes with the layer.
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("layerStackSplitter")
        self.splitter.addWidget(stack_part)
        self.splitter.addWidget(self.editor_box)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)
        row_height = self.view.verticalHeader().defaultSectionSize()
        self.splitter.setSizes([row_height * 14, row_height * 11])

        self.lock_note = QLabel()
        named(self.lock_note, "layerStackLocked", "Why the layer stack cannot be edited now")
        self.lock_note.setWordWrap(True)
        self.stop_button = QPushButton("Stop the run")
        named(self.stop_button, "layerStackStopButton", "Stop the training to edit the stack")
        self.stop_button.clicked.connect(self.stop_requested)
        self.lock_bar = QWidget()
        lock_row = QHBoxLayout(self.lock_bar)
        lock_row.setContentsMargins(0, 0, 0, 0)
        lock_row.addWidget(self.lock_note, 1)
        lock_row.addWidget(self.stop_button)
        self.lock_bar.hide()

        layout = QVBoxLayout(self)
        layout.addWidget(self.lock_bar)
        layout.addLayout(buttons)
        layout.addWidget(self.splitter, 1)

    def _tool_button(self, name: str) -> QToolButton:
        button = QToolButton()
        button.setObjectName(name)
        button.setAccessibleName(name)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        return button

    def _make_actions(self) -> None:
        icons = self.style()
        pixmap = QStyle.StandardPixmap
        self.add_action = self._action("Add layer…", "Insert", self.open_catalogue)
        self.remove_action = self._action("Remove layer", "Delete", self.remove_current, "Remove")
        self.duplicate_action = self._action(
            "Duplicate layer", "Ctrl+D", self.duplicate_current, "Duplicate"
        )
        self.move_up_action = self._action("Move up", "Alt+Up", self.move_current_up, "Up")
        self.move_up_action.setIcon(icons.standardIcon(pixmap.SP_ArrowUp))
        self.move_down_action = self._action(
            "Move down", "Alt+Down", self.move_current_down, "Down"
        )
        self.move_down_action.setIcon(icons.standardIcon(pixmap.SP_ArrowDown))
        # The document keeps their text current ("Undo Add Linear"); the buttons stay short.
        self.undo_action, self.redo_action = self.document.undo_actions(self, "Undo", "Redo")
        self.undo_action.setIconText("Undo")
        self.redo_action.setIconText("Redo")
        pairs = (
            (self.remove_button, self.remove_action),
            (self.duplicate_button, self.duplicate_action),
            (self.up_button, self.move_up_action),
            (self.down_button, self.move_down_action),
            (self.undo_button, self.undo_action),
            (self.redo_button, self.redo_action),
        )
        for button, action in pairs:
            button.setDefaultAction(action)
        for button in (self.undo_button, self.redo_button):
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)

    def _action(
        self, text: str, shortcut: str, slot: Callable[[], object], short: str = ""
    ) -> QAction:
        action = QAction(text, self)
        if short:
            action.setIconText(short)  # what the tool button shows; menus show `text`
        action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(f"{text} ({QKeySequence(shortcut).toString()})")
        # Only while the layer table has focus, so Delete in a parameter field edits text.
        action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        action.triggered.connect(slot)
        self.view.addAction(action)
        return action

    # intents -----------------------------------------------------------------
    def current_row(self) -> int | None:
        index = self.view.currentIndex()
        return index.row() if index.isValid() else None

    def select_row(self, row: int | None) -> None:
        if row is None or not 0 <= row < self.model.rowCount():
            self.view.clearSelection()
            self.view.setCurrentIndex(QModelIndex())
            self.editor.set_row(None)
            return
        index = self.model.index(row, 0)
        flags = (
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows
        )
        self.view.selectionModel().setCurrentIndex(index, flags)
        self.view.scrollTo(index)
        self.editor.set_row(row)

    def open_catalogue(self) -> None:
        """Show the layer picker; the chosen layer goes after the current row."""
        self.catalogue.start()

    def add_layer(self, type_name: str) -> int:
        """Add a catalogue layer after the current row (at the end without one); one undo step."""
        row = self.model.add_layer(type_name, self.current_row())
        self.select_row(row)
        self.view.setFocus()
        return row

    def remove_current(self) -> None:
        row = self.current_row()
        if row is not None:
            self.model.remove_layers([row])
            self.select_row(min(row, self.model.rowCount() - 1))

    def duplicate_current(self) -> None:
        row = self.current_row()
        if row is not None:
            self.select_row(self.model.duplicate_layer(row))

    def move_current_up(self) -> None:
        self.move_current(-1)

    def move_current_down(self) -> None:
        self.move_current(1)

    def move_current(self, offset: int) -> None:
        row = self.current_row()
        if row is not None:
            self.select_row(self.model.move_layer(row, offset))

    def validity(self) -> tuple[bool, str]:
        """(True, "") when the stack builds, else (False, the builder's first problem)."""
        problem = self.model.problem()
        return (problem is None, "" if problem is None else str(problem))

    def set_vocab_size(self, size: int | None) -> None:
        self.model.set_vocab_size(size)

    def set_input_shape(self, shape: Sequence[int] | None) -> None:
        """The dataset's per-sample shape (None: the experiment's model.input_shape)."""
        self.model.set_input_shape(shape)

    # following the model -------------------------------------------------------
    def _current_row_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        self.editor.set_row(current.row() if current.isValid() else None)
        self._update_actions()

    def _rows_inserted(self, parent: QModelIndex, first: int, last: int) -> None:
        """Select what arrives (an added layer, or one an undo brings back)."""
        self.select_row(first)

    def _remember_row(self) -> None:
        self._row_before_reset = self.current_row()

    def _restore_row(self) -> None:
        """After a reset (another project, a multi-row change) keep a sensible row selected."""
        row = self._row_before_reset if self._row_before_reset is not None else 0
        self.select_row(min(row, self.model.rowCount() - 1) if self.model.rowCount() else None)

    def _show_plan(self, plan: ModelPlan) -> None:
        ok, message = self.validity()
        total = f"{self.model.total_parameters:,}" if ok else "?"
        self.total_label.setText(f"Total parameters: {total}")
        self.problem_label.setText(message)
        self.problem_label.setVisible(not ok)
        if self.current_row() is None and self.model.rowCount():
            self.editor.set_row(None)
        self._update_actions()
        if (ok, message) != self._validity:
            self._validity = (ok, message)
            self.validity_changed.emit(ok, message)

    @property
    def locked(self) -> bool:
        return bool(self.document.layers_locked)

    def _lock_changed(self, reason: str) -> None:
        """Read-only while a run trains: the buttons, the editor and dragging rest."""
        self.lock_note.setText(reason)
        self.lock_bar.setVisible(bool(reason))
        self.add_button.setEnabled(not reason)
        self.add_action.setEnabled(not reason)
        self.editor_box.setEnabled(not reason)
        mode = QAbstractItemView.DragDropMode
        self.view.setDragDropMode(mode.NoDragDrop if reason else mode.InternalMove)
        self._update_actions()

    def _update_actions(self) -> None:
        row = self.current_row()
        count = self.model.rowCount()
        selected = row is not None and not self.locked
        self.remove_action.setEnabled(selected)
        self.duplicate_action.setEnabled(selected)
        self.move_up_action.setEnabled(selected and row is not None and row > 0)
        self.move_down_action.setEnabled(selected and row is not None and row < count - 1)

    def _context_menu(self, position: QPoint) -> None:
        menu = QMenu(self)
        for action in (
            self.add_action,
            self.duplicate_action,
            self.remove_action,
            self.move_up_action,
            self.move_down_action,
        ):
            menu.addAction(action)
        menu.popup(self.view.viewport().mapToGlobal(position))
