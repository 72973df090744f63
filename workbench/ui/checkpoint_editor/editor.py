"""The checkpoint editor: open any .pth safely, see what is inside, rename keys, make it fit."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMessageBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from workbench.controllers.checkpoint_loader import CheckpointLoader
from workbench.engine.checkpoints import (
    Checkpoint,
    Reconciliation,
    UnsafeCheckpointError,
    detect_wrapper_prefixes,
)
from workbench.engine.checkpoints.loading import CHECKPOINT_SUFFIXES
from workbench.ui.checkpoint_document import CheckpointDocument, ModelProvider, StateDict
from workbench.ui.checkpoint_editor.actions import (
    is_delete,
    is_redo,
    is_undo,
    make_action,
    make_toolbar,
)
from workbench.ui.checkpoint_editor.banners import Banner, refusal_text, wrapper_banner_text
from workbench.ui.checkpoint_editor.dialogs import (
    CastDialog,
    PrefixDialog,
    RenameDialog,
    trust_dialog,
)
from workbench.ui.checkpoint_editor.diff_view import DiffView
from workbench.ui.checkpoint_editor.file_info_view import FileInfoView
from workbench.ui.checkpoint_editor.header import EditorHeader, summary_html
from workbench.ui.checkpoint_editor.key_tree import KeyTree
from workbench.ui.checkpoint_editor.reconcile_view import ReconcileView
from workbench.ui.checkpoint_editor.shown_text import shown, tooltip
from workbench.ui.checkpoint_editor.tensor_panel import TensorPanel
from workbench.ui.checkpoint_editor.tree_model import TreeItem

FILE_FILTER = "Checkpoints (" + " ".join(f"*{s}" for s in CHECKPOINT_SUFFIXES) + ");;All files (*)"
SAVE_FILTERS = {"PyTorch state_dict (*.pth)": ".pth", "safetensors (*.safetensors)": ".safetensors"}
EMPTY_HINT = (
    "Open a checkpoint (.pth, .pt, .bin, .ckpt or .safetensors) with Open… or drop it here.\n"
    "It is read with weights_only=True: opening a file never runs code from it."
)
NO_COMPARISON = "Compare with another checkpoint to see what changed."
OUTDATED_COMPARISON = "The checkpoint changed since the comparison; compare again."


class CheckpointEditor(QWidget):
    """The widgets that view and edit one `CheckpointDocument` (`document`).

    `model_provider` builds the model the window's layer stack describes (None when the stack
    is not valid); the Fit to model tab compares the file with it. The editor never blocks the
    GUI thread on file work: the document's loader runs it on worker threads.
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
        self.document = CheckpointDocument(model_provider, loader, self)
        self._build()
        self._wire()
        self._refresh()
        self.setAcceptDrops(True)

    # construction ------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self._build_actions()
        toolbar: list[QAction | None] = [self.open_action, self.save_as_action, None]
        toolbar += [self.undo_action, self.redo_action, None, self.rename_action]
        toolbar += [self.regex_action, self.prefix_action, self.delete_action, self.cast_action]
        layout.addWidget(make_toolbar(toolbar))
        self.header = EditorHeader()
        layout.addWidget(self.header)
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
        self.key_tree = KeyTree()
        self.key_tree.tree.addAction(self.delete_action)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.key_tree)
        self.splitter.addWidget(self._build_tabs())
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        layout.addWidget(self.splitter, 1)

    def _build_actions(self) -> None:
        stack = self.document.undo_stack
        self.open_action = make_action(
            self, "openCheckpointAction", "Open…", "Open a checkpoint file", self.open_dialog
        )
        self.save_as_action = make_action(
            self,
            "saveCheckpointAsAction",
            "Save As…",
            "Save the edited weights as .pth or .safetensors",
            self.save_as_dialog,
        )
        # Fixed "Undo"/"Redo" labels keep the toolbar still; the tooltip names the edit.
        self.undo_action = make_action(
            self, "checkpointUndoAction", "Undo", "Nothing to undo", stack.undo
        )
        self.undo_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Undo))
        self.redo_action = make_action(
            self, "checkpointRedoAction", "Redo", "Nothing to redo", stack.redo
        )
        self.redo_action.setShortcuts(
            [QKeySequence("Ctrl+Shift+Z"), QKeySequence(QKeySequence.StandardKey.Redo)]
        )
        self.undo_action.setEnabled(False)
        self.redo_action.setEnabled(False)
        stack.canUndoChanged.connect(self.undo_action.setEnabled)
        stack.canRedoChanged.connect(self.redo_action.setEnabled)
        # Bound methods, not lambdas: the stack signals again while it is being destroyed,
        # and Qt only disconnects receivers it knows are gone.
        stack.undoTextChanged.connect(self._on_undo_text_changed)
        stack.redoTextChanged.connect(self._on_redo_text_changed)
        for action in (self.undo_action, self.redo_action):
            # The editor claims these keys while it has focus (see event()), so the window's
            # own Undo for the project never fires for a checkpoint edit.
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(action)
        self.rename_action = make_action(
            self,
            "renameKeysAction",
            "Rename…",
            "Replace text in every key, with a preview",
            self.open_rename_dialog,
        )
        self.regex_action = make_action(
            self,
            "regexRenameAction",
            "Regex rename…",
            "Rename keys with a regular expression, with a preview",
            lambda: self.open_rename_dialog(regex=True),
        )
        self.prefix_action = make_action(
            self,
            "prefixAction",
            "Prefix…",
            "Strip or add a prefix (module., _orig_mod., model.)",
            self.open_prefix_dialog,
        )
        self.delete_action = make_action(
            self,
            "deleteKeysAction",
            "Delete",
            "Delete the selected tensors or modules (undoable)",
            self.delete_selected,
        )
        self.delete_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.cast_action = make_action(
            self,
            "castAction",
            "Cast…",
            "Cast floating-point tensors to float32, float16 or bfloat16",
            self.open_cast_dialog,
        )

    def _build_tabs(self) -> QTabWidget:
        self.tabs = QTabWidget()
        self.tabs.setObjectName("checkpointTabs")
        self.tensor_panel = TensorPanel(self.document.loader)
        self.file_info = FileInfoView()
        self.reconcile_view = ReconcileView()
        self.diff_view = DiffView()
        self.tabs.addTab(self.tensor_panel, "Selection")
        self.tabs.addTab(self.file_info, "File")
        self.tabs.addTab(self.reconcile_view, "Fit to model")
        self.tabs.addTab(self.diff_view, "Compare")
        return self.tabs

    def _wire(self) -> None:
        document = self.document
        document.title_changed.connect(self.title_changed)
        document.dirty_changed.connect(self.dirty_changed)
        document.status_message.connect(self.status_message)
        document.dirty_changed.connect(self.header.set_dirty)
        document.opened.connect(self._on_opened)
        document.state_changed.connect(self._on_state_changed)
        document.saved.connect(self._on_saved)
        document.error_changed.connect(self._on_error_changed)
        document.refusal_changed.connect(self._on_refusal_changed)
        document.activity_changed.connect(self._on_activity_changed)
        document.reconciled.connect(self._on_reconciled)
        document.model_unavailable.connect(self._on_model_unavailable)
        document.compare_started.connect(self._on_compare_started)
        document.compared.connect(self.diff_view.show_diff)
        document.compare_failed.connect(self.diff_view.show_error)
        document.diff_outdated.connect(self._on_diff_outdated)
        document.undo_stack.indexChanged.connect(self._on_index_changed)
        self.key_tree.current_item_changed.connect(self._on_current_item_changed)
        self.key_tree.selection_changed.connect(self._refresh_actions)
        self.key_tree.status_message.connect(self.status_message)
        self.trust_button.clicked.connect(self._on_trust_clicked)
        self.fix_button.clicked.connect(self.strip_wrappers)
        self.reconcile_view.reconcile_requested.connect(document.reconcile)
        self.reconcile_view.apply_renames_requested.connect(document.apply_suggested_renames)
        self.diff_view.compare_requested.connect(self.compare_dialog)
        self.diff_view.trust_requested.connect(self._on_compare_trust_clicked)
        self.tabs.currentChanged.connect(self._on_tab_changed)

    # what the window uses ----------------------------------------------------
    @property
    def state_dict(self) -> StateDict:
        """The weights as edited so far (the document's; never changed in place)."""
        return self.document.state_dict

    @property
    def is_dirty(self) -> bool:
        return self.document.is_dirty

    @property
    def title(self) -> str:
        return self.document.title

    def open_file(self, path: str | Path, trust: bool = False) -> None:
        """Open `path` on a worker thread; the result (or its error) shows when it is read."""
        self.document.open(path, trust=trust)

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

    def refresh_model_availability(self) -> None:
        """Enable "Compare with the current model" or say why not (call when the stack changes)."""
        reason = self.document.model_problem()
        self.reconcile_view.set_available(not reason, reason)

    def strip_wrappers(self) -> bool:
        """The banner's Fix: strip every wrapper prefix all keys carry, as one edit."""
        return self.document.strip_wrappers()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Stop analyses and wait for file work in flight (call before the window closes)."""
        return self.document.shutdown(timeout_ms)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing the editor stops its statistics and comparisons; no result follows."""
        self.tensor_panel.cancel_statistics()
        self.document.cancel_analysis()
        super().closeEvent(event)

    # file dialogs ------------------------------------------------------------
    def open_dialog(self) -> None:
        if not self.confirm_discard():
            return
        path = self.document.path
        start = str(path.parent) if path else ""
        name, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", start, FILE_FILTER)
        if name:
            self.open_file(name)

    def compare_dialog(self) -> None:
        path = self.document.path
        start = str(path.parent) if path else ""
        name, _ = QFileDialog.getOpenFileName(self, "Compare with", start, FILE_FILTER)
        if name:
            self.document.compare_with(name)

    def save_as_dialog(self) -> None:
        current = self.document.path
        if current is None:
            return
        suggested = str(current.with_name(current.stem + "-edited.pth"))
        name, chosen = QFileDialog.getSaveFileName(
            self, "Save checkpoint as", suggested, ";;".join(SAVE_FILTERS)
        )
        if not name:
            return
        path = Path(name)
        if path.suffix not in CHECKPOINT_SUFFIXES:
            path = path.with_name(path.name + SAVE_FILTERS.get(chosen, ".pth"))
        self.document.save_as(path)

    def ask_trust(self, path: Path, unsafe_globals: tuple[str, ...]) -> bool:
        """The explicit, per-file choice to run a file's code; Cancel is the default."""
        box = trust_dialog(path, unsafe_globals, self)
        box.exec()
        clicked = box.clickedButton()
        return clicked is not None and clicked.objectName() == "trustLoadAnyway"

    def _on_trust_clicked(self) -> None:
        refused = self.document.refusal
        if refused is None:
            return
        if self.ask_trust(refused.path, refused.unsafe_globals):
            self.open_file(refused.path, trust=True)
        else:
            self.status_message.emit(f"{refused.path.name} was not opened.")

    def _on_compare_trust_clicked(self) -> None:
        refused = self.document.compare_refusal
        if refused is not None and self.ask_trust(refused.path, refused.unsafe_globals):
            self.document.compare_with(refused.path, trust=True)

    # edit dialogs ------------------------------------------------------------
    def open_rename_dialog(self, regex: bool = False) -> RenameDialog:
        """Rename with a live preview; the selected module's name is the starting text."""
        current = self.key_tree.current_path() or ""
        find = f"^{current}\\." if regex and current else current
        replace = f"{current}." if regex and current else current
        dialog = RenameDialog(self.state_dict, find, replace, regex, self)
        dialog.accepted.connect(lambda: self._rename_from(dialog))
        dialog.open()
        return dialog

    def _rename_from(self, dialog: RenameDialog) -> None:
        if dialog.is_regex:
            self.document.rename_regex(dialog.find_text, dialog.replace_text)
        else:
            self.document.rename_substring(dialog.find_text, dialog.replace_text)

    def open_prefix_dialog(self) -> PrefixDialog:
        found = detect_wrapper_prefixes(self.state_dict)
        dialog = PrefixDialog(self.state_dict, found[0] if found else "", parent=self)
        document = self.document
        dialog.accepted.connect(
            lambda: (document.add_prefix if dialog.adding else document.strip_prefix)(dialog.prefix)
        )
        dialog.open()
        return dialog

    def open_cast_dialog(self) -> CastDialog:
        dialog = CastDialog(self.state_dict, parent=self)
        dialog.accepted.connect(lambda: self.document.cast(dialog.dtype))
        dialog.open()
        return dialog

    def delete_selected(self) -> bool:
        return self.document.delete_keys(self.key_tree.selected_paths())

    # document signals --------------------------------------------------------
    def _on_opened(self, checkpoint: Checkpoint) -> None:
        self.reconcile_view.clear()
        self.diff_view.show_busy(NO_COMPARISON)
        self.key_tree.reset(self.document.state_dict, self.document.saved_devices())
        self.file_info.show_checkpoint(checkpoint)
        self.refresh_model_availability()
        self._refresh()

    def _on_state_changed(self) -> None:
        self.key_tree.update_state(self.document.state_dict, self.document.saved_devices())
        self._refresh()

    def _on_saved(self, _path: Path) -> None:
        self._refresh_summary()

    def _on_error_changed(self, message: str) -> None:
        if message:
            self.error_banner.show_message(message)
        else:
            self.error_banner.hide()

    def _on_refusal_changed(self, refusal: UnsafeCheckpointError | None) -> None:
        if refusal is None:
            self.unsafe_banner.hide()
        else:
            self.unsafe_banner.show_message(
                refusal_text(refusal.path, refusal.unsafe_globals), rich=True
            )

    def _on_activity_changed(self, text: str) -> None:
        self.header.show_activity(text)
        self._refresh_actions()

    def _on_reconciled(self, result: Reconciliation, strict_error: str | None) -> None:
        self.reconcile_view.set_available(True)
        self.reconcile_view.show_result(result, strict_error)

    def _on_model_unavailable(self, reason: str) -> None:
        self.reconcile_view.set_available(False, reason)

    def _on_compare_started(self, text: str) -> None:
        self.diff_view.show_busy(text)
        self.tabs.setCurrentWidget(self.diff_view)

    def _on_diff_outdated(self) -> None:
        self.diff_view.show_busy(OUTDATED_COMPARISON)

    def _on_current_item_changed(self, item: TreeItem | None) -> None:
        if item is None:
            self.tensor_panel.show_nothing()
        elif item.info is not None:
            self.tensor_panel.show_tensor(item.info, self.state_dict[item.info.key])
        else:
            self.tensor_panel.show_module(item)

    def _on_tab_changed(self, _index: int) -> None:
        if self.tabs.currentWidget() is self.reconcile_view:
            self.refresh_model_availability()

    def _on_undo_text_changed(self, text: str) -> None:
        self.undo_action.setToolTip(tooltip(f"Undo {text} (Ctrl+Z)") if text else "Nothing to undo")

    def _on_redo_text_changed(self, text: str) -> None:
        self.redo_action.setToolTip(
            tooltip(f"Redo {text} (Ctrl+Shift+Z)") if text else "Nothing to redo"
        )

    def _on_index_changed(self, _index: int) -> None:
        self._refresh_actions()

    # refresh -----------------------------------------------------------------
    def _refresh(self) -> None:
        has_file = self.document.is_open
        self.empty_hint.setVisible(not has_file)
        self.splitter.setVisible(has_file)
        self.header.set_dirty(self.is_dirty)
        self._refresh_summary()
        self._refresh_wrapper_banner()
        self._refresh_actions()

    def _refresh_summary(self) -> None:
        checkpoint, path = self.document.checkpoint, self.document.path
        if checkpoint is None or path is None:
            self.header.show_summary("<b>No checkpoint open</b>", "")
            return
        model = self.key_tree.tree_model
        keys, parameters, nbytes = len(self.state_dict), model.total_parameters, model.total_bytes
        self.header.show_summary(
            summary_html(checkpoint, path, keys, parameters, nbytes), str(path)
        )

    def _refresh_wrapper_banner(self) -> None:
        found = detect_wrapper_prefixes(self.state_dict) if self.state_dict else []
        if found:
            self.wrapper_banner.show_message(wrapper_banner_text(found))
            self.fix_button.setText(f"Fix: strip '{shown(''.join(found))}'")
        else:
            self.wrapper_banner.hide()

    def _refresh_actions(self) -> None:
        ready = self.document.can_edit
        for action in (
            self.rename_action,
            self.regex_action,
            self.prefix_action,
            self.cast_action,
            self.save_as_action,
        ):
            action.setEnabled(ready)
        self.delete_action.setEnabled(ready and self.key_tree.has_selection())
        self.open_action.setEnabled(self.document.can_open)
        self.diff_view.set_available(ready)

    # keyboard and drops ------------------------------------------------------
    def _owns_key(self, event: QKeyEvent) -> bool:
        if is_undo(event) or is_redo(event):
            return True
        return is_delete(event) and self.key_tree.tree.hasFocus()

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
        if is_undo(event):
            self.document.undo_stack.undo()
        elif is_redo(event):
            self.document.undo_stack.redo()
        elif is_delete(event) and self.key_tree.tree.hasFocus():
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
