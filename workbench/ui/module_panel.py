"""Where the layer stack is for a model from code: its read-only module tree (shapes, parameters),
Reload, Open in Editor, and a watcher that rebuilds the tree when the file changes on disk."""

from __future__ import annotations

from pathlib import Path

import torch
from PySide6.QtCore import QFileSystemWatcher, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QFontDatabase
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QStackedWidget,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from workbench.controllers.code_trust import code_file
from workbench.engine.errors import ModelCodeError, WorkbenchError
from workbench.engine.experiment import DataSpec, ModelSpec
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.model_builder import BuiltModel
from workbench.engine.model_source import model_label, model_reference
from workbench.engine.module_trust import file_digest
from workbench.ui.module_tree import ModuleTreeModel
from workbench.ui.project_document import ProjectDocument
from workbench.ui.trust_prompt import TrustGuard
from workbench.ui.widgets import named

DEBOUNCE_MS = 300  # an editor's save is often several writes: rebuild once they settle
TREE_PAGE, MESSAGE_PAGE = 0, 1
BuildKey = tuple[ModelSpec, DataSpec, str]  # the model, its data, the code's sha256


class ModulePanel(QWidget):
    """Shows the document's model from code; imports the file only once the guard agrees.

    `validity_changed(ok, message)` tells the window whether Train may start: ok once the model
    was built from the file's current content, else the problem shown (a syntax error at the
    user's line, a declined import). `rebuilt` follows every build or failure.
    """

    validity_changed = Signal(bool, str)
    rebuilt = Signal()

    def __init__(
        self, document: ProjectDocument, guard: TrustGuard, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("modulePanel")
        self.document = document
        self.guard = guard
        self.built: BuiltModel | None = None
        self.problem = "No model from code in this project"
        self.problem_path: Path | None = None
        self._built_key: BuildKey | None = None
        self._asked: ModelSpec | None = None  # the spec last shown (asked about if needed)
        self._ask_next = True  # another project: ask about its file again, even if declined
        self._validity: tuple[bool, str] | None = None
        self._watched_digest = ""
        self._build()
        self.watcher = QFileSystemWatcher(self)
        self.watcher.fileChanged.connect(self._file_touched)
        self.watcher.directoryChanged.connect(self._file_touched)
        self.debounce = QTimer(self)
        self.debounce.setSingleShot(True)
        self.debounce.setInterval(DEBOUNCE_MS)
        self.debounce.timeout.connect(self._file_changed)
        document.path_changed.connect(self._project_replaced)
        document.changed.connect(self._document_changed)

    # layout ------------------------------------------------------------------
    def _build(self) -> None:
        self.title = QLabel()
        self.title.setObjectName("moduleTitle")
        self.title.setStyleSheet("font-weight: bold;")
        self.path_label = QLabel()
        self.path_label.setObjectName("modulePath")
        self.path_label.setWordWrap(True)
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.reload_action = QAction("&Reload", self)
        self.reload_action.setToolTip("Import the file again and rebuild the module tree")
        self.reload_action.triggered.connect(self.reload)
        self.editor_action = QAction("Open in &Editor", self)
        self.editor_action.setToolTip("Open the model's file in your default editor")
        self.editor_action.triggered.connect(self.open_in_editor)
        buttons = QHBoxLayout()
        for action, name in ((self.reload_action, "reloadCode"), (self.editor_action, "openCode")):
            button = QToolButton()
            button.setDefaultAction(action)
            named(button, name, action.toolTip())
            buttons.addWidget(button)
        buttons.addStretch(1)

        self.tree_model = ModuleTreeModel(self)
        self.tree = QTreeView()
        named(self.tree, "moduleTree", "The model's modules, as print(model) nests them")
        self.tree.setModel(self.tree_model)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.message = QPlainTextEdit()
        named(self.message, "moduleProblem", "Why the module tree cannot be shown")
        self.message.setReadOnly(True)
        self.message.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.pages = QStackedWidget()
        self.pages.addWidget(self.tree)
        self.pages.addWidget(self.message)
        self.total = QLabel()
        self.total.setObjectName("moduleTotal")

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.path_label)
        layout.addLayout(buttons)
        layout.addWidget(self.pages, 1)
        layout.addWidget(self.total)

    # what it shows -------------------------------------------------------------
    def validity(self) -> tuple[bool, str]:
        return (True, "") if self.built is not None else (False, self.problem)

    @property
    def total_parameters(self) -> int | None:
        return self.built.total_parameters if self.built is not None else None

    def _project_replaced(self, _path: str) -> None:
        self._ask_next = True

    def _document_changed(self) -> None:
        spec = self.document.experiment.model
        if not spec.from_code:
            self._forget()
            return
        ask = self._ask_next or spec != self._asked
        if ask or self._key_changed():
            self.refresh(ask=ask)

    def reload(self) -> None:
        """Import the file again (asking first if its content was not agreed to) and rebuild."""
        self.refresh(ask=True, force=True)

    def refresh(self, ask: bool = False, force: bool = False) -> None:
        """Build the document's model from code and show its tree, or the problem in its place.
        Without `ask`, a file not agreed to is left unimported."""
        experiment = self.document.experiment
        spec = experiment.model
        if not spec.from_code:
            self._forget()
            return
        self._asked, self._ask_next = spec, False
        file = self._code_file(spec)
        self._show_source(spec, file)
        self._watch(file)
        digest = self._digest(file)
        key: BuildKey = (spec, experiment.data, digest)
        if key == self._built_key and not force:
            return
        if self._agreed(file, ask):
            self._build_model(key, file)
            return
        self._show_problem(
            f"{file}\nwas not imported: running a project's Python file runs its code, and you "
            "have not agreed to run this content.\n\nClick Reload to be asked again.",
            "Not imported",
            file,
        )

    def _agreed(self, file: Path | None, ask: bool) -> bool:
        """Whether the file may be imported now: agreed before, or (with `ask`) agreed now."""
        if file is None or not file.is_file() or self.guard.is_trusted(file):
            return True
        return ask and self.guard.may_import(file)

    def _build_model(self, key: BuildKey, file: Path | None) -> None:
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                built = build_experiment_model(self.document.experiment)
        except ModelCodeError as exc:
            self._show_problem(str(exc), "Your model code fails", _error_path(exc) or file)
            return
        except WorkbenchError as exc:
            self._show_problem(str(exc), "The model cannot be built", file)
            return
        except Exception as exc:  # noqa: BLE001 - the user's code may raise anything
            self._show_problem(f"{type(exc).__name__}: {exc}", "Your model code fails", file)
            return
        self._built_key = key
        self.built = built
        self.tree_model.set_rows(built.module_rows)
        self.tree.expandAll()
        self.pages.setCurrentIndex(TREE_PAGE)
        total, trainable = built.total_parameters, built.trainable_parameters
        frozen = f" ({trainable:,} trainable)" if trainable != total else ""
        self.total.setText(f"Total parameters: {total:,}{frozen}")
        self.total.setStyleSheet("")
        self._set_validity()
        self.rebuilt.emit()

    def _show_problem(self, message: str, heading: str, path: Path | None) -> None:
        self.built, self._built_key = None, None
        self.problem = message
        self.problem_path = path
        self.tree_model.set_rows(())
        self.message.setPlainText(message)
        self.pages.setCurrentIndex(MESSAGE_PAGE)
        self.total.setText(heading)
        self.total.setStyleSheet("color: #b71c1c; font-weight: bold;")
        self._set_validity()
        self.rebuilt.emit()

    def _show_source(self, spec: ModelSpec, file: Path | None) -> None:
        self.title.setText(model_label(spec))
        self.path_label.setText(str(file) if file is not None else str(spec.module))
        self.path_label.setToolTip(self.path_label.text())
        self.editor_action.setEnabled(file is not None)

    def _forget(self) -> None:
        """The project has no model from code: nothing shown, nothing watched."""
        self._asked, self._built_key, self.built = None, None, None
        self.problem = "No model from code in this project"
        self._watch(None)
        self.tree_model.set_rows(())

    def _set_validity(self) -> None:
        validity = self.validity()
        if validity != self._validity:
            self._validity = validity
            self.validity_changed.emit(*validity)

    def _key_changed(self) -> bool:
        """Whether the data changed since the last build (the model is built for its shape)."""
        key = self._built_key
        return key is None or key[1] != self.document.experiment.data

    # the file ------------------------------------------------------------------
    @staticmethod
    def _code_file(spec: ModelSpec) -> Path | None:
        try:
            reference = model_reference(spec).resolved(None)
        except ValueError:
            return None
        return reference.path if reference.path is not None else code_file(reference)

    @staticmethod
    def _digest(file: Path | None) -> str:
        if file is None:
            return ""
        try:
            return file_digest(file)
        except WorkbenchError:
            return ""

    def _watch(self, file: Path | None) -> None:
        """Watch the file (and its folder: an editor may save by replacing the file)."""
        old = self.watcher.files() + self.watcher.directories()
        if old:
            self.watcher.removePaths(old)
        self._watched_digest = self._digest(file)
        if file is not None and file.parent.is_dir():
            self.watcher.addPath(str(file.parent))
            if file.is_file():
                self.watcher.addPath(str(file))

    def _file_touched(self, _path: str) -> None:
        self.debounce.start()

    def _file_changed(self) -> None:
        """The file settled after a change on disk: rebuild when its content really changed
        (the new content is asked about like any other)."""
        spec = self.document.experiment.model
        file = self._code_file(spec) if spec.from_code else None
        if file is None:
            return
        if file.is_file() and str(file) not in self.watcher.files():
            self.watcher.addPath(str(file))  # it was replaced: watch the new one
        if self._digest(file) != self._watched_digest:
            self.refresh(ask=True)

    def open_in_editor(self) -> bool:
        """The file (or the one an error points at) in the desktop's default application."""
        spec = self.document.experiment.model
        path = self.problem_path if self.built is None and self.problem_path else None
        path = path or (self._code_file(spec) if spec.from_code else None)
        if path is None:
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def _error_path(exc: ModelCodeError) -> Path | None:
    return Path(exc.path) if exc.path else None
