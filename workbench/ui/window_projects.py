"""The main window's project files: new, open, presets, save, recent files, and a clean slate."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu, QMessageBox

from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import load_experiment
from workbench.engine.resources import resources_dir
from workbench.ui.error_dialog import show_error
from workbench.ui.project_document import ProjectDocument
from workbench.ui.recovery import RecoveryStore

if TYPE_CHECKING:  # these load PyTorch: the window imports them once the frame is shown
    from workbench.controllers.current_model import CurrentModelHolder
    from workbench.controllers.run_session import RunSession
    from workbench.ui.runs_panel import RunsPanel

PRESETS_DIR = resources_dir() / "presets"
DEFAULT_PRESET = PRESETS_DIR / "digits-mlp.toml"
MAX_RECENT = 8
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


class ProjectFiles(QMainWindow):
    """The File menu's project half of MainWindow (a mixin: MainWindow builds what it uses)."""

    settings: QSettings
    document: ProjectDocument
    recovery: RecoveryStore
    session: RunSession
    current: CurrentModelHolder
    runs_panel: RunsPanel
    recent_menu: QMenu
    preset_name: str | None
    _saving_project: bool

    if TYPE_CHECKING:  # made by the other halves of MainWindow

        def open_checkpoint(self, path: Path) -> None: ...
        def start_over(self) -> None: ...

    # ------------------------------------------------------------------ opening

    def open_startup(self, file: Path | None) -> None:
        """First thing after start: a crash's recovery, else FILE, else the default preset."""
        pending = self.recovery.pending()
        if pending is not None and self._ask_restore():
            experiment, original = pending
            self.preset_name = None
            self.document.replace(experiment, original)
            self.document.undo_stack.resetClean()  # recovered edits are unsaved
            self.start_over()
        elif file is not None and file.suffix.lower() in CHECKPOINT_SUFFIXES:
            self.open_preset(DEFAULT_PRESET)
            self.open_checkpoint(file)
        elif file is not None:
            self.open_project(file)
        else:
            last = str(self.settings.value("lastProject", "", str) or "")
            if last and Path(last).is_file():
                self.open_project(Path(last))
            else:
                self.open_preset(DEFAULT_PRESET)
        self.recovery.start()

    def _ask_restore(self) -> bool:
        answer = QMessageBox.question(
            self,
            "Recover unsaved work?",
            "Torch Workbench did not close cleanly last time. Restore the unsaved project?",
        )
        if answer != QMessageBox.StandardButton.Yes:
            self.recovery.clear()
            return False
        return True

    def may_leave_project(self) -> bool:
        """False (and says why) while a run trains; else asks before losing unsaved edits."""
        if self.session.is_running:
            show_error(
                self,
                "A run is training",
                "Stop the run before opening another project: its curves, log and model "
                "belong to this one.",
            )
            return False
        return self.maybe_save()

    def maybe_save(self) -> bool:
        """Ask before losing unsaved edits; False when the user cancels."""
        if not self.document.is_dirty:
            return True
        answer = QMessageBox.warning(
            self,
            "Unsaved changes",
            f"Save the changes to {self.project_display_name()}?",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Save:
            return self.save_project()
        return answer == QMessageBox.StandardButton.Discard

    def new_project(self) -> None:
        if self.may_leave_project():
            self.preset_name = None
            self.document.new()
            self.start_over()

    def open_project_dialog(self) -> None:
        if not self.may_leave_project():
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Open experiment", "", "Experiment files (*.toml)"
        )
        if path:
            self.open_project(Path(path))

    def open_project(self, path: Path) -> bool:
        if self.session.is_running:
            self.may_leave_project()  # says why not
            return False
        try:
            experiment = load_experiment(path)
        except WorkbenchError as exc:
            show_error(self, "Cannot open the project", str(exc))
            return False
        self.preset_name = None
        self.document.replace(experiment, path)
        self.start_over()
        self._add_recent(path)
        self.settings.setValue("lastProject", str(path))
        return True

    def open_preset(self, path: Path) -> None:
        """A preset opens as an untitled copy, so saving never overwrites the bundled file."""
        if not self.may_leave_project():
            return
        try:
            experiment = load_experiment(path)
        except WorkbenchError as exc:
            show_error(self, "Cannot open the preset", str(exc))
            return
        self.preset_name = path.stem  # before the document says so: the run list follows it
        self.document.replace(experiment, None)
        self.start_over()
        self._update_title()

    # ------------------------------------------------------------------ saving

    def save_project(self) -> bool:
        if self.document.path is None:
            return self.save_project_as()
        return self._save_to(self.document.path)

    def save_project_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save experiment", self.document.title, "Experiment files (*.toml)"
        )
        if not path:
            return False
        target = Path(path) if path.endswith(".toml") else Path(path + ".toml")
        return self._save_to(target)

    def _save_to(self, path: Path) -> bool:
        self._saving_project = True
        try:
            self.document.save(path)
        except OSError as exc:
            show_error(self, "Cannot save the project", f"{path}: {exc.strerror or exc}")
            return False
        finally:
            self._saving_project = False
        self.preset_name = None
        self._update_title()
        self._add_recent(path)
        self.settings.setValue("lastProject", str(path))
        self.statusBar().showMessage(f"Saved {path}", 4000)
        return True

    @property
    def project_key(self) -> str:
        """What ties a run folder to this project (the file, the preset, or `untitled`)."""
        from workbench.engine.run_history import project_key

        return project_key(self.document.path, self.preset_name)

    def _project_path_changed(self, path: str) -> None:
        """The run list follows the project (a Save As takes the runs along)."""
        project = Path(path) if path else None
        self.runs_panel.bind_project(project, keep_runs=self._saving_project, key=self.project_key)

    # ------------------------------------------------------------------ recent files

    def _recent_files(self) -> list[str]:
        value = self.settings.value("recentFiles", [], list)
        return [str(item) for item in value] if isinstance(value, list) else []

    def _add_recent(self, path: Path) -> None:
        files = [str(path)] + [item for item in self._recent_files() if item != str(path)]
        self.settings.setValue("recentFiles", files[:MAX_RECENT])
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self._recent_files()
        for item in files:
            self.recent_menu.addAction(item, functools.partial(self._open_recent, Path(item)))
        self.recent_menu.setEnabled(bool(files))

    def _open_recent(self, path: Path) -> None:
        if self.may_leave_project():
            self.open_project(path)

    def _preset_actions(self, menu: QMenu) -> list[QAction]:
        return [
            menu.addAction(preset.stem, functools.partial(self.open_preset, preset))
            for preset in sorted(PRESETS_DIR.glob("*.toml"))
        ]

    def project_display_name(self) -> str:
        """The project as the title bar and every dialog name it: file, preset or Untitled."""
        if self.document.path is None and self.preset_name:
            return f"{self.preset_name} (preset)"
        return self.document.title

    def _update_title(self) -> None:
        name = self.project_display_name()
        self.setWindowTitle(f"{name}[*] — Torch Workbench")
        self.setWindowModified(self.document.is_dirty)
