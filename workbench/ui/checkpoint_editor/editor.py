"""The checkpoint editor: open any .pth safely, see what is inside, rename keys, make it fit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from PySide6.QtCore import QEvent, QItemSelectionModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QDragEnterEvent,
    QDropEvent,
    QKeyEvent,
    QKeySequence,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QTabWidget,
    QToolBar,
    QTreeView,
    QVBoxLayout,
    QWidget,
)
from torch import nn

from workbench.controllers.checkpoint_loader import (
    COMPARE,
    OPEN,
    SAVE,
    STATS,
    CheckpointLoader,
    Task,
    describe_error,
)
from workbench.engine.checkpoints import (
    COMPILE_PREFIX,
    MODEL_PREFIX,
    MODULE_PREFIX,
    Checkpoint,
    CheckpointDiff,
    Reconciliation,
    UnsafeCheckpointError,
    add_prefix,
    apply_renames,
    cast_floating,
    delete_keys,
    detect_wrapper_prefixes,
    diff_state_dicts,
    find_unsafe_globals,
    load_strict,
    open_checkpoint,
    preview_regex_rename,
    preview_substring_rename,
    reconcile,
    rename_keys,
    strip_prefix,
    strip_wrapper_prefixes,
)
from workbench.engine.checkpoints.loading import CHECKPOINT_SUFFIXES
from workbench.engine.checkpoints.report import format_bytes
from workbench.engine.errors import CheckpointError, WorkbenchError
from workbench.ui.checkpoint_editor.banners import Banner
from workbench.ui.checkpoint_editor.commands import ReplaceStateDictCommand, StateDict
from workbench.ui.checkpoint_editor.dialogs import (
    CastDialog,
    PrefixDialog,
    RenameDialog,
    trust_dialog,
)
from workbench.ui.checkpoint_editor.diff_view import DiffView
from workbench.ui.checkpoint_editor.file_info_view import FileInfoView, highlights
from workbench.ui.checkpoint_editor.reconcile_view import ReconcileView
from workbench.ui.checkpoint_editor.tensor_panel import TensorPanel
from workbench.ui.checkpoint_editor.tree_model import (
    DTYPE,
    LAYER_TYPE,
    NAME,
    PARAMETERS,
    SHAPE,
    SIZE,
    CheckpointFilterModel,
    CheckpointTreeModel,
)
from workbench.ui.widgets import named

ModelProvider = Callable[[], nn.Module | None]
WRAPPER_ORIGINS = {
    MODULE_PREFIX: "DDP (DistributedDataParallel)",
    COMPILE_PREFIX: "torch.compile",
    MODEL_PREFIX: "a wrapper holding the network as self.model (e.g. Lightning)",
}
FILE_FILTER = "Checkpoints (" + " ".join(f"*{s}" for s in CHECKPOINT_SUFFIXES) + ");;All files (*)"
SAVE_FILTERS = {"PyTorch state_dict (*.pth)": ".pth", "safetensors (*.safetensors)": ".safetensors"}
EXPAND_ALL_LIMIT = 64  # files with at most this many keys open fully expanded
EXPAND_FILTERED_LIMIT = 500  # filter matches up to this many keys are shown fully expanded
FILTER_DELAY_MS = 150
NO_PROVIDER_REASON = "No model to compare with: open the editor from the window's layer stack."
NO_MODEL_REASON = (
    "The current layer stack does not build a model; fix the layer stack, then compare again."
)
EMPTY_HINT = (
    "Open a checkpoint (.pth, .pt, .bin, .ckpt or .safetensors) with Open… or drop it here.\n"
    "It is read with weights_only=True: opening a file never runs code from it."
)


def wrapper_banner_text(prefixes: list[str]) -> str:
    joined = "".join(prefixes)
    origins = " and ".join(dict.fromkeys(WRAPPER_ORIGINS[p] for p in prefixes))
    return (
        f"This file was saved from {origins}: strip '{joined}'. Every key starts with "
        f"'{joined}', and the plain model expects its keys without it."
    )


def refusal_text(path: Path, unsafe_globals: tuple[str, ...]) -> str:
    """The refusal in window words (the engine's message speaks of command-line flags)."""
    listed = "".join(f"<li><code>{name}</code></li>" for name in unsafe_globals)
    return (
        f"<b>Refused to open {path.name}.</b> Loading it would import and run these Python "
        f"objects, which a weights-only load does not allow:<ul>{listed}</ul>"
        "A pickled checkpoint can run any code it names while it is read; plain weights never "
        "need these. If you made this file or trust whoever did, <i>Load anyway…</i> reads it "
        "in a separate process and keeps only its tensors. Better: re-save it once as a plain "
        "state_dict or .safetensors."
    )


class CheckpointEditor(QWidget):
    """Open, inspect and edit one checkpoint; every edit is one step on `undo_stack`.

    `model_provider` builds the model the window's layer stack describes (None when the stack
    is not valid); the Reconcile tab compares the file with it. The editor never blocks the GUI
    thread on file work: opening, saving, comparing and big statistics run on `loader`'s
    worker threads.
    """

    title_changed = Signal(str)
    dirty_changed = Signal(bool)
    status_message = Signal(str)

    def __init__(
        self,
        model_provider: ModelProvider | None = None,
        loader: CheckpointLoader | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("checkpointEditor")
        self.setAccessibleName("checkpointEditor")
        self.model_provider = model_provider
        self.loader = loader or CheckpointLoader(self)
        self.checkpoint: Checkpoint | None = None
        self.path: Path | None = None
        self.undo_stack = QUndoStack(self)
        self.reconciliation: Reconciliation | None = None
        self.diff: CheckpointDiff | None = None
        self._state: StateDict = {}
        self._saved_device_by_tensor: dict[int, str] = {}
        self._refused: UnsafeCheckpointError | None = None
        self._compare_path: Path | None = None
        self._save_index: int | None = None
        self._working: set[str] = set()
        self._build()
        self._wire()
        self._refresh()
        self.setAcceptDrops(True)

    # construction ------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self._build_actions()
        layout.addWidget(self._build_toolbar())
        layout.addLayout(self._build_header())
        layout.addWidget(self._build_busy_row())
        self.error_banner = Banner("errorBanner", "error")
        self.unsafe_banner = Banner("unsafeBanner", "error")
        self.trust_button = self.unsafe_banner.add_button(
            "trustButton",
            "Load anyway…",
            "Choose to run this file's code in a separate process and keep its tensors",
        )
        self.wrapper_banner = Banner("wrapperBanner", "warning")
        self.fix_button = self.wrapper_banner.add_button(
            "wrapperFixButton", "Fix", "Strip the wrapper prefix from every key (undoable)"
        )
        for banner in (self.error_banner, self.unsafe_banner, self.wrapper_banner):
            layout.addWidget(banner)
        self.empty_hint = QLabel(EMPTY_HINT)
        self.empty_hint.setObjectName("checkpointEmptyHint")
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setWordWrap(True)
        layout.addWidget(self.empty_hint, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self._build_tree_side())
        self.splitter.addWidget(self._build_tabs())
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        layout.addWidget(self.splitter, 1)

    def _action(self, name: str, text: str, tip: str, slot: Callable[[], object]) -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def _build_actions(self) -> None:
        self.open_action = self._action(
            "openCheckpointAction", "Open…", "Open a checkpoint file", self.open_dialog
        )
        self.save_as_action = self._action(
            "saveCheckpointAsAction",
            "Save As…",
            "Save the edited weights as .pth or .safetensors",
            self.save_as_dialog,
        )
        # Fixed "Undo"/"Redo" labels keep the toolbar still; the tooltip names the edit.
        self.undo_action = self._action(
            "checkpointUndoAction", "Undo", "Nothing to undo", self.undo_stack.undo
        )
        self.undo_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Undo))
        self.redo_action = self._action(
            "checkpointRedoAction", "Redo", "Nothing to redo", self.undo_stack.redo
        )
        self.redo_action.setShortcuts(
            [QKeySequence("Ctrl+Shift+Z"), QKeySequence(QKeySequence.StandardKey.Redo)]
        )
        self.undo_action.setEnabled(False)
        self.redo_action.setEnabled(False)
        self.undo_stack.canUndoChanged.connect(self.undo_action.setEnabled)
        self.undo_stack.canRedoChanged.connect(self.redo_action.setEnabled)
        # Bound methods, not lambdas: the stack signals again while it is being destroyed,
        # and Qt only disconnects receivers it knows are gone.
        self.undo_stack.undoTextChanged.connect(self._on_undo_text_changed)
        self.undo_stack.redoTextChanged.connect(self._on_redo_text_changed)
        for action in (self.undo_action, self.redo_action):
            # The editor claims these keys while it has focus (see event()), so the window's
            # own Undo for the project never fires for a checkpoint edit.
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(action)
        self.rename_action = self._action(
            "renameKeysAction",
            "Rename…",
            "Replace text in every key, with a preview",
            self.open_rename_dialog,
        )
        self.regex_action = self._action(
            "regexRenameAction",
            "Regex rename…",
            "Rename keys with a regular expression, with a preview",
            lambda: self.open_rename_dialog(regex=True),
        )
        self.prefix_action = self._action(
            "prefixAction",
            "Prefix…",
            "Strip or add a prefix (module., _orig_mod., model.)",
            self.open_prefix_dialog,
        )
        self.delete_action = self._action(
            "deleteKeysAction",
            "Delete",
            "Delete the selected tensors or modules (undoable)",
            self.delete_selected,
        )
        self.delete_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.cast_action = self._action(
            "castAction",
            "Cast…",
            "Cast floating-point tensors to float32, float16 or bfloat16",
            self.open_cast_dialog,
        )

    def _build_toolbar(self) -> QToolBar:
        toolbar = QToolBar("Checkpoint")
        toolbar.setObjectName("checkpointToolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        layout: list[QAction | None] = [self.open_action, self.save_as_action, None]
        layout += [self.undo_action, self.redo_action, None, self.rename_action]
        layout += [self.regex_action, self.prefix_action, self.delete_action, self.cast_action]
        for action in layout:
            self._add_to_toolbar(toolbar, action)
        return toolbar

    @staticmethod
    def _add_to_toolbar(toolbar: QToolBar, action: QAction | None) -> None:
        if action is None:
            toolbar.addSeparator()
            return
        toolbar.addAction(action)
        button = toolbar.widgetForAction(action)
        if button is not None:
            name = action.objectName().removesuffix("Action") + "Button"
            button.setObjectName(name)
            button.setAccessibleName(name)

    def _build_header(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.summary = QLabel()
        self.summary.setObjectName("checkpointSummary")
        self.summary.setAccessibleName("checkpointSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row.addWidget(self.summary, 1)
        self.dirty_indicator = QLabel("● edited, not saved")
        named(self.dirty_indicator, "dirtyIndicator", "The edits are not saved yet: Save As…")
        self.dirty_indicator.setStyleSheet("color: #b06000; font-weight: bold;")
        row.addWidget(self.dirty_indicator)
        return row

    def _build_busy_row(self) -> QWidget:
        self.busy_row = QWidget()
        self.busy_row.setObjectName("checkpointBusy")
        row = QHBoxLayout(self.busy_row)
        row.setContentsMargins(0, 0, 0, 0)
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)  # open_checkpoint reports no fraction: a busy indicator
        self.busy_bar.setMaximumWidth(160)
        self.busy_bar.setTextVisible(False)
        self.busy_label = QLabel()
        self.busy_label.setObjectName("checkpointBusyText")
        row.addWidget(self.busy_bar)
        row.addWidget(self.busy_label, 1)
        self.busy_row.hide()
        return self.busy_row

    def _build_tree_side(self) -> QWidget:
        side = QWidget()
        column = QVBoxLayout(side)
        column.setContentsMargins(0, 0, 0, 0)
        self.filter_edit = QLineEdit()
        named(self.filter_edit, "checkpointFilter", "Show only keys containing this text")
        self.filter_edit.setPlaceholderText("Filter keys (e.g. conv, bias, layer1.0)")
        self.filter_edit.setClearButtonEnabled(True)
        # Filter once typing pauses: each pass re-filters and re-expands the whole tree.
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(FILTER_DELAY_MS)
        self._filter_timer.timeout.connect(self._apply_filter)
        column.addWidget(self.filter_edit)
        self.tree_model = CheckpointTreeModel(self)
        self.proxy = CheckpointFilterModel(self)
        self.proxy.setSourceModel(self.tree_model)
        self.tree = QTreeView()
        named(self.tree, "checkpointTree", "Modules and tensors of the state_dict")
        self.tree.setModel(self.proxy)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.header().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.tree.setSortingEnabled(True)  # click a header to sort; file order until then
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        widths = ((LAYER_TYPE, 110), (SHAPE, 110), (DTYPE, 70), (PARAMETERS, 86), (SIZE, 70))
        for column_index, width in widths:
            header.resizeSection(column_index, width)
        self.tree.setIndentation(16)
        self.tree.addAction(self.delete_action)
        column.addWidget(self.tree, 1)
        return side

    def _build_tabs(self) -> QTabWidget:
        self.tabs = QTabWidget()
        self.tabs.setObjectName("checkpointTabs")
        self.tensor_panel = TensorPanel(self.loader)
        self.file_info = FileInfoView()
        self.reconcile_view = ReconcileView()
        self.diff_view = DiffView()
        self.tabs.addTab(self.tensor_panel, "Selection")
        self.tabs.addTab(self.file_info, "File")
        self.tabs.addTab(self.reconcile_view, "Fit to model")
        self.tabs.addTab(self.diff_view, "Compare")
        return self.tabs

    def _wire(self) -> None:
        self.undo_stack.cleanChanged.connect(self._on_clean_changed)
        self.undo_stack.indexChanged.connect(self._on_index_changed)
        self.filter_edit.textChanged.connect(self._on_filter_text_changed)
        selection = self.tree.selectionModel()
        selection.currentChanged.connect(self._on_current_changed)
        selection.selectionChanged.connect(self._on_selection_changed)
        self.tree_model.modelReset.connect(self._on_model_reset)
        self.loader.progress.connect(self._on_progress)
        self.loader.finished.connect(self._on_task_finished)
        self.loader.failed.connect(self._on_task_failed)
        self.trust_button.clicked.connect(self._on_trust_clicked)
        self.fix_button.clicked.connect(self.strip_wrappers)
        self.reconcile_view.reconcile_requested.connect(self.reconcile_with_model)
        self.reconcile_view.apply_renames_requested.connect(self.apply_suggested_renames)
        self.diff_view.compare_requested.connect(self.compare_dialog)
        self.diff_view.trust_requested.connect(self._on_compare_trust_clicked)
        self.tabs.currentChanged.connect(self._on_tab_changed)

    # state -------------------------------------------------------------------
    @property
    def state_dict(self) -> StateDict:
        """The weights as edited so far (a dict the editor never changes in place)."""
        return self._state

    @property
    def is_dirty(self) -> bool:
        return not self.undo_stack.isClean()

    @property
    def title(self) -> str:
        if self.path is None:
            return "Checkpoint editor"
        return self.path.name + ("*" if self.is_dirty else "")

    def _apply_state(self, state: StateDict, keep_view: bool = True) -> None:
        """Show `state` (called by the undo commands): tree, summary, banners, reconcile."""
        expanded = self._expanded_paths() if keep_view else set()
        current = self.current_path() if keep_view else None
        self._state = state
        devices = {
            key: self._saved_device_by_tensor.get(id(tensor), "cpu")
            for key, tensor in state.items()
        }
        self.tree_model.set_state_dict(state, devices)
        self._restore_view(expanded, current)
        if self.reconciliation is not None:
            self.reconcile_with_model()
        if self.diff is not None:
            self.diff_view.show_busy("The checkpoint changed since the comparison; compare again.")
            self.diff = None
        self._refresh()

    def _load_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.path = checkpoint.path
        self._saved_device_by_tensor = {
            id(tensor): checkpoint.saved_devices.get(key, "cpu")
            for key, tensor in checkpoint.state_dict.items()
        }
        self.reconciliation = None
        self.diff = None
        self.reconcile_view.clear()
        self.diff_view.show_busy("Compare with another checkpoint to see what changed.")
        self.undo_stack.clear()
        self.filter_edit.clear()
        self._filter_timer.stop()
        self.proxy.setFilterFixedString("")
        self._apply_state(dict(checkpoint.state_dict), keep_view=False)
        self.file_info.show_checkpoint(checkpoint)
        self._default_expansion()
        self.refresh_model_availability()
        self.title_changed.emit(self.title)
        self.status_message.emit(
            f"Opened {checkpoint.path.name}: {len(self._state):,} keys, "
            f"{self.tree_model.total_parameters:,} parameters"
        )

    # opening -----------------------------------------------------------------
    def open_file(self, path: str | Path, trust: bool = False) -> None:
        """Open `path` on a worker thread; the result (or its error) shows when it is read.

        `trust=True` is the explicit per-file choice to unpickle a file that needs code, in a
        separate process; only the trust dialog passes it.
        """
        path = Path(path)
        self.error_banner.hide()
        self.unsafe_banner.hide()
        self._refused = None
        self.loader.open(path, trust_file=path if trust else None)

    def open_dialog(self) -> None:
        if not self.confirm_discard():
            return
        start = str(self.path.parent) if self.path else ""
        name, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", start, FILE_FILTER)
        if name:
            self.open_file(name)

    def confirm_discard(self) -> bool:
        """True when there are no unsaved edits or the user agrees to drop them."""
        if not self.is_dirty:
            return True
        answer = QMessageBox.question(
            self,
            "Unsaved checkpoint edits",
            f"Discard the unsaved edits to {self.title.rstrip('*')}?",
            QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Discard

    def ask_trust(self, path: Path, unsafe_globals: tuple[str, ...]) -> bool:
        """The explicit, per-file choice to run a file's code; Cancel is the default."""
        box = trust_dialog(path, unsafe_globals, self)
        box.exec()
        clicked = box.clickedButton()
        return clicked is not None and clicked.objectName() == "trustLoadAnyway"

    def _on_trust_clicked(self) -> None:
        refused = self._refused
        if refused is None:
            return
        if self.ask_trust(refused.path, refused.unsafe_globals):
            self.open_file(refused.path, trust=True)
        else:
            self.status_message.emit(f"{refused.path.name} was not opened.")

    # loader results ----------------------------------------------------------
    def _on_progress(self, name: str, text: str) -> None:
        if name == STATS:
            return
        self._working.add(name)
        self.busy_label.setText(text)
        self.busy_row.show()
        self.status_message.emit(text)
        self._refresh_actions()

    def _task_done(self, name: str) -> None:
        self._working.discard(name)
        if not self._working:
            self.busy_row.hide()
        self._refresh_actions()

    def _on_task_finished(self, name: str, token: object, result: object) -> None:
        if name == STATS:
            return
        self._task_done(name)
        if name == OPEN and isinstance(result, Checkpoint):
            self._load_checkpoint(result)
        elif name == SAVE and isinstance(token, Path):
            self._on_saved(token)
        elif name == COMPARE and isinstance(result, CheckpointDiff) and isinstance(token, Path):
            self.diff = result
            self.diff_view.show_diff(token.name, result)
            self.status_message.emit(f"Compared with {token.name}")

    def _on_task_failed(self, name: str, token: object, error: object) -> None:
        if name == STATS:
            return
        self._task_done(name)
        message = describe_error(error)
        if name == COMPARE:
            self.diff_view.show_error(message, can_trust=isinstance(error, UnsafeCheckpointError))
        elif name == OPEN and isinstance(error, UnsafeCheckpointError):
            self._refused = error
            self.unsafe_banner.show_message(
                refusal_text(error.path, error.unsafe_globals), rich=True
            )
        else:
            self.error_banner.show_message(message)
        self.status_message.emit(message.splitlines()[0])

    # edits -------------------------------------------------------------------
    def _edit(self, text: str, make: Callable[[StateDict], StateDict]) -> bool:
        """Push one undoable edit; an engine refusal shows in the error banner instead."""
        if self.checkpoint is None:
            self.error_banner.show_message("Open a checkpoint first.")
            return False
        try:
            new = make(self._state)
        except CheckpointError as exc:
            self.error_banner.show_message(str(exc))
            self.status_message.emit(str(exc).splitlines()[0])
            return False
        self.error_banner.hide()
        self.undo_stack.push(ReplaceStateDictCommand(self._apply_state, self._state, new, text))
        self.status_message.emit(f"{text}. Ctrl+Z undoes it.")
        return True

    def rename_substring(self, old: str, new: str) -> bool:
        def make(state: StateDict) -> StateDict:
            return rename_keys(state, dict(preview_substring_rename(state, old, new)))

        return self._edit(f"Rename '{old}' → '{new}'", make)

    def rename_regex(self, pattern: str, replacement: str) -> bool:
        def make(state: StateDict) -> StateDict:
            return rename_keys(state, dict(preview_regex_rename(state, pattern, replacement)))

        return self._edit(f"Regex rename '{pattern}' → '{replacement}'", make)

    def strip_prefix(self, prefix: str) -> bool:
        return self._edit(f"Strip '{prefix}'", lambda state: strip_prefix(state, prefix))

    def add_prefix(self, prefix: str) -> bool:
        return self._edit(f"Add prefix '{prefix}'", lambda state: add_prefix(state, prefix))

    def strip_wrappers(self) -> bool:
        """The banner's Fix: strip every wrapper prefix all keys carry, as one edit."""
        found = detect_wrapper_prefixes(self._state)
        if not found:
            self.status_message.emit("No wrapper prefix to strip.")
            return False
        return self._edit(f"Strip '{''.join(found)}'", strip_wrapper_prefixes)

    def delete_keys(self, selectors: list[str]) -> bool:
        """Delete keys, or whole modules by their dotted path."""
        if not selectors:
            return False
        shown = ", ".join(selectors[:3]) + (" …" if len(selectors) > 3 else "")
        return self._edit(f"Delete {shown}", lambda state: delete_keys(state, selectors))

    def delete_selected(self) -> bool:
        return self.delete_keys(self.selected_paths())

    def cast(self, dtype: str) -> bool:
        return self._edit(f"Cast to {dtype}", lambda state: cast_floating(state, dtype))

    # dialogs -----------------------------------------------------------------
    def open_rename_dialog(self, regex: bool = False) -> RenameDialog:
        """Rename with a live preview; the selected module's name is the starting text."""
        current = self.current_path() or ""
        find = f"^{current}\\." if regex and current else current
        replace = f"{current}." if regex and current else current
        dialog = RenameDialog(self._state, find, replace, regex, self)
        dialog.accepted.connect(lambda: self._rename_from(dialog))
        dialog.open()
        return dialog

    def _rename_from(self, dialog: RenameDialog) -> None:
        if dialog.is_regex:
            self.rename_regex(dialog.find_text, dialog.replace_text)
        else:
            self.rename_substring(dialog.find_text, dialog.replace_text)

    def open_prefix_dialog(self) -> PrefixDialog:
        found = detect_wrapper_prefixes(self._state)
        dialog = PrefixDialog(self._state, found[0] if found else "", parent=self)
        dialog.accepted.connect(
            lambda: (self.add_prefix if dialog.adding else self.strip_prefix)(dialog.prefix)
        )
        dialog.open()
        return dialog

    def open_cast_dialog(self) -> CastDialog:
        dialog = CastDialog(self._state, parent=self)
        dialog.accepted.connect(lambda: self.cast(dialog.dtype))
        dialog.open()
        return dialog

    # reconcile ---------------------------------------------------------------
    def _build_model(self) -> tuple[nn.Module | None, str]:
        if self.model_provider is None:
            return None, NO_PROVIDER_REASON
        try:
            model = self.model_provider()
        except WorkbenchError as exc:
            return None, f"The current layer stack does not build a model: {exc}"
        return (model, "") if model is not None else (None, NO_MODEL_REASON)

    def refresh_model_availability(self) -> None:
        """Enable "Compare with the current model" or say why not (call when the stack changes)."""
        if self.checkpoint is None:
            self.reconcile_view.set_available(False, "Open a checkpoint first.")
            return
        model, reason = self._build_model()
        self.reconcile_view.set_available(model is not None, reason)

    def reconcile_with_model(self) -> Reconciliation | None:
        """Compare the current weights with the model; strict-load them when the keys fit."""
        model, reason = self._build_model()
        if model is None or self.checkpoint is None:
            self.reconcile_view.set_available(False, reason or "Open a checkpoint first.")
            return None
        self.reconcile_view.set_available(True)
        result = reconcile(self._state, model)
        strict_error = None
        if result.fits:
            try:
                load_strict(model, self._state)
            except (CheckpointError, RuntimeError) as exc:
                strict_error = str(exc).strip().splitlines()[0]
        self.reconciliation = result
        self.reconcile_view.show_result(result, strict_error)
        return result

    def apply_suggested_renames(self) -> bool:
        result = self.reconcile_with_model()
        if result is None or not result.suggested_renames:
            self.status_message.emit("No suggested renames to apply.")
            return False
        count = len(result.suggested_renames)
        return self._edit(
            f"Apply {count} suggested rename(s)", lambda state: apply_renames(state, result)
        )

    # compare -----------------------------------------------------------------
    def compare_dialog(self) -> None:
        start = str(self.path.parent) if self.path else ""
        name, _ = QFileDialog.getOpenFileName(self, "Compare with", start, FILE_FILTER)
        if name:
            self.compare_with(name)

    def compare_with(self, path: str | Path, trust: bool = False) -> None:
        """Diff the current weights against another file, on a worker thread."""
        path = Path(path)
        self._compare_path = path
        snapshot = dict(self._state)
        trust_file = path if trust else None

        def work() -> CheckpointDiff:
            other = open_checkpoint(path, trust_file=trust_file)
            return diff_state_dicts(snapshot, other.state_dict)

        self.diff_view.show_busy(f"Comparing with {path.name}…")
        self.tabs.setCurrentWidget(self.diff_view)
        self.loader.submit(Task(COMPARE, f"Comparing with {path.name}", work, token=path))

    def _on_compare_trust_clicked(self) -> None:
        path = self._compare_path
        if path is None:
            return
        try:
            unsafe = tuple(find_unsafe_globals(path))
        except CheckpointError as exc:
            self.diff_view.show_error(str(exc))
            return
        if self.ask_trust(path, unsafe):
            self.compare_with(path, trust=True)

    # saving ------------------------------------------------------------------
    def save_as_dialog(self) -> None:
        if self.path is None:
            return
        suggested = str(self.path.with_name(self.path.stem + "-edited.pth"))
        name, chosen = QFileDialog.getSaveFileName(
            self, "Save checkpoint as", suggested, ";;".join(SAVE_FILTERS)
        )
        if not name:
            return
        path = Path(name)
        if path.suffix not in (*CHECKPOINT_SUFFIXES,):
            path = path.with_name(path.name + SAVE_FILTERS.get(chosen, ".pth"))
        self.save_as(path)

    def save_as(self, path: str | Path) -> None:
        """Write the current weights atomically (.pth or .safetensors) on a worker thread."""
        if self.checkpoint is None:
            return
        self._save_index = self.undo_stack.index()
        self.loader.save(self._state, Path(path))

    def _on_saved(self, path: Path) -> None:
        if self.undo_stack.index() == self._save_index:
            self.undo_stack.setClean()
        self.path = path
        self.title_changed.emit(self.title)
        note = ""
        if self.checkpoint is not None and self.checkpoint.metadata:
            note = " Only the weights were saved; the rest of the original file was not."
        self.status_message.emit(f"Saved {len(self._state):,} keys to {path}.{note}")
        self._refresh_summary()

    # selection ---------------------------------------------------------------
    def current_path(self) -> str | None:
        index = self.tree.currentIndex()
        if not index.isValid():
            return None
        return self.tree_model.item(self.proxy.mapToSource(index)).path

    def selected_paths(self) -> list[str]:
        """Keys and module paths of the selected rows (a module stands for all below it)."""
        rows = self.tree.selectionModel().selectedRows(NAME)
        paths = [self.tree_model.item(self.proxy.mapToSource(index)).path for index in rows]
        return [p for p in paths if not any(p.startswith(other + ".") for other in paths)]

    def select_path(self, path: str) -> bool:
        """Make a key or module the current row (the side panel shows it)."""
        source = self.tree_model.index_for_path(path)
        index = self.proxy.mapFromSource(source)
        if not index.isValid():
            return False
        self.tree.scrollTo(index)
        self.tree.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        return True

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            self.tensor_panel.show_nothing()
            return
        item = self.tree_model.item(self.proxy.mapToSource(current))
        if item.info is not None:
            tensor: torch.Tensor = self._state[item.info.key]
            self.tensor_panel.show_tensor(item.info, tensor)
        else:
            self.tensor_panel.show_module(item)

    def _on_model_reset(self) -> None:
        self.tensor_panel.show_nothing()

    # view state --------------------------------------------------------------
    def _expanded_paths(self) -> set[str]:
        expanded = set()
        stack = [QModelIndex()]
        while stack:
            parent = stack.pop()
            for row in range(self.proxy.rowCount(parent)):
                index = self.proxy.index(row, NAME, parent)
                if self.tree.isExpanded(index):
                    expanded.add(self.tree_model.item(self.proxy.mapToSource(index)).path)
                    stack.append(index)
        return expanded

    def _restore_view(self, expanded: set[str], current: str | None) -> None:
        """Small files stay fully open; big ones keep what the user had expanded."""
        self._default_expansion()
        for path in expanded:
            index = self.proxy.mapFromSource(self.tree_model.index_for_path(path))
            if index.isValid():
                self.tree.setExpanded(index, True)
        if current is not None:
            self.select_path(current)

    def _default_expansion(self) -> None:
        if len(self._state) <= EXPAND_ALL_LIMIT:
            self.tree.expandAll()
        else:
            self.tree.expandToDepth(0)

    def _apply_filter(self) -> None:
        text = self.filter_edit.text().strip()
        self.proxy.setFilterFixedString(text)
        if not text:
            self._default_expansion()
            return
        # A key is shown when it or a module above it contains the text, and a module path is
        # a prefix of its keys: counting the keys that contain it is exact.
        matching = sum(1 for key in self._state if text.lower() in key.lower())
        if matching <= EXPAND_FILTERED_LIMIT:
            self.tree.expandAll()
        else:
            self.tree.expandToDepth(1)
        self.status_message.emit(f"{matching:,} of {len(self._state):,} keys match '{text}'")

    def _on_tab_changed(self, _index: int) -> None:
        if self.tabs.currentWidget() is self.reconcile_view:
            self.refresh_model_availability()

    # refresh -----------------------------------------------------------------
    def _on_undo_text_changed(self, text: str) -> None:
        self.undo_action.setToolTip(f"Undo {text} (Ctrl+Z)" if text else "Nothing to undo")

    def _on_redo_text_changed(self, text: str) -> None:
        self.redo_action.setToolTip(f"Redo {text} (Ctrl+Shift+Z)" if text else "Nothing to redo")

    def _on_index_changed(self, _index: int) -> None:
        self._refresh_actions()

    def _on_selection_changed(self, *_args: object) -> None:
        self._refresh_actions()

    def _on_filter_text_changed(self, _text: str) -> None:
        self._filter_timer.start()

    def _on_clean_changed(self, clean: bool) -> None:
        self.dirty_changed.emit(not clean)
        self.title_changed.emit(self.title)
        self.dirty_indicator.setVisible(not clean)

    def _refresh(self) -> None:
        has_file = self.checkpoint is not None
        self.empty_hint.setVisible(not has_file)
        self.splitter.setVisible(has_file)
        self.dirty_indicator.setVisible(self.is_dirty)
        self._refresh_summary()
        self._refresh_wrapper_banner()
        self._refresh_actions()

    def _refresh_summary(self) -> None:
        checkpoint = self.checkpoint
        if checkpoint is None or self.path is None:
            self.summary.setText("<b>No checkpoint open</b>")
            return
        parts = [
            f"{len(self._state):,} keys",
            f"{self.tree_model.total_parameters:,} parameters",
            format_bytes(self.tree_model.total_bytes),
            checkpoint.format_description.split(" (")[0],
            checkpoint.layout,
            *(
                short
                for label, _value, short in highlights(checkpoint.metadata)
                if label != "Hyper-parameters"  # too long for one line; the File tab has them
            ),
        ]
        self.summary.setText(f"<b>{self.path.name}</b> — " + " · ".join(parts))
        self.summary.setToolTip(str(self.path))

    def _refresh_wrapper_banner(self) -> None:
        found = detect_wrapper_prefixes(self._state) if self._state else []
        if found:
            self.wrapper_banner.show_message(wrapper_banner_text(found))
            self.fix_button.setText(f"Fix: strip '{''.join(found)}'")
        else:
            self.wrapper_banner.hide()

    def _refresh_actions(self) -> None:
        ready = self.checkpoint is not None and not (self._working & {OPEN, SAVE})
        for action in (
            self.rename_action,
            self.regex_action,
            self.prefix_action,
            self.cast_action,
            self.save_as_action,
        ):
            action.setEnabled(ready)
        self.delete_action.setEnabled(ready and self.tree.selectionModel().hasSelection())
        self.open_action.setEnabled(OPEN not in self._working)
        self.diff_view.set_available(ready)

    # keyboard and drops ------------------------------------------------------
    def _owns_key(self, event: QKeyEvent) -> bool:
        if event.matches(QKeySequence.StandardKey.Undo) or self._is_redo(event):
            return True
        return event.matches(QKeySequence.StandardKey.Delete) and self.tree.hasFocus()

    @staticmethod
    def _is_redo(event: QKeyEvent) -> bool:
        combo = event.keyCombination()
        ctrl_shift = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
        return event.matches(QKeySequence.StandardKey.Redo) or (
            combo.key() == Qt.Key.Key_Z and combo.keyboardModifiers() == ctrl_shift
        )

    def event(self, event: QEvent) -> bool:
        # Claiming the key at ShortcutOverride makes Qt deliver it to us as a key press
        # instead of triggering the window's identical shortcuts (the project's Undo).
        if (
            event.type() == QEvent.Type.ShortcutOverride
            and isinstance(event, QKeyEvent)
            and self._owns_key(event)
        ):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.matches(QKeySequence.StandardKey.Undo):
            self.undo_stack.undo()
        elif self._is_redo(event):
            self.undo_stack.redo()
        elif event.matches(QKeySequence.StandardKey.Delete) and self.tree.hasFocus():
            self.delete_selected()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile() and self.confirm_discard():
            self.open_file(urls[0].toLocalFile())
            event.acceptProposedAction()

    # lifetime ----------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Wait for file work in flight (call before the window closes)."""
        return self.loader.shutdown(timeout_ms)
