"""Autosave to a recovery file, so a crash or kill loses at most the last few seconds of edits."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, QTimer

from workbench.engine.atomic import atomic_write_text
from workbench.engine.errors import ExperimentError
from workbench.engine.experiment import Experiment, dump_experiment, parse_experiment
from workbench.ui.project_document import ProjectDocument

AUTOSAVE_INTERVAL_MS = 10_000  # well inside the promised 30 seconds


def default_recovery_dir() -> Path:
    location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(location or Path.home() / ".local/share/torch-workbench") / "recovery"


class RecoveryStore(QObject):
    """Writes the unsaved project every few seconds; cleared on save and on a clean exit."""

    def __init__(
        self, document: ProjectDocument, folder: Path | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.document = document
        self.folder = folder or default_recovery_dir()
        self.project_file = self.folder / "project.toml"
        self.info_file = self.folder / "project.json"
        self.timer = QTimer(self)
        self.timer.setInterval(AUTOSAVE_INTERVAL_MS)
        self.timer.timeout.connect(self.save_now)
        document.dirty_changed.connect(self._dirty_changed)

    def start(self) -> None:
        self.timer.start()

    def _dirty_changed(self, dirty: bool) -> None:
        if not dirty:
            self.clear()

    def save_now(self) -> None:
        if not self.document.is_dirty:
            return
        atomic_write_text(self.project_file, dump_experiment(self.document.experiment))
        original = str(self.document.path) if self.document.path else None
        atomic_write_text(self.info_file, json.dumps({"original_path": original}))

    def clear(self) -> None:
        self.project_file.unlink(missing_ok=True)
        self.info_file.unlink(missing_ok=True)

    def pending(self) -> tuple[Experiment, Path | None] | None:
        """The project left by a crash, if any (a damaged file is discarded, not shown)."""
        if not self.project_file.is_file():
            return None
        try:
            experiment = parse_experiment(
                self.project_file.read_text("utf-8"), str(self.project_file)
            )
            info = json.loads(self.info_file.read_text("utf-8")) if self.info_file.is_file() else {}
        except (ExperimentError, OSError, ValueError):
            self.clear()
            return None
        original = info.get("original_path")
        return experiment, Path(original) if original else None
