"""The window's memory of the model files a user agreed to run, kept in QSettings, and the import
gate that lets nothing else be imported (on the GUI thread or any worker)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings

from workbench.engine.model_source import IMPORTED, PYTHON_FILE, ModelReference
from workbench.engine.module_trust import TRUST_KEY, ModuleTrust
from workbench.engine.user_code import ImportGate, set_import_gate


class SettingsMirror(dict[str, Any]):
    """A dict that writes every value through to QSettings: the gate reads plain Python (safe
    from worker threads), the agreement outlives the window."""

    def __init__(self, settings: QSettings) -> None:
        super().__init__()
        self.settings = settings
        stored = settings.value(TRUST_KEY, "")
        if stored:
            super().__setitem__(TRUST_KEY, str(stored))

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.settings.setValue(key, value)
        self.settings.sync()


class TrustedCode(QObject):
    """Which model files (path and sha256 of their content) the user agreed to run.

    `install()` makes its `allows` the process's import gate until `uninstall()`: a run, a
    quantization or a prediction on a worker thread then imports only agreed content, and an
    unagreed file fails with UntrustedCodeError instead of running.
    """

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = ModuleTrust(SettingsMirror(settings))
        self._previous: ImportGate | None = None
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            self._previous = set_import_gate(self.store.allows)
            self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            set_import_gate(self._previous)
            self._installed = False

    def is_trusted(self, path: Path) -> bool:
        return self.store.is_trusted(path)

    def trust(self, path: Path) -> str:
        """Record agreement to the content now on disk; returns its sha256."""
        return self.store.trust(path)


def code_file(reference: ModelReference) -> Path | None:
    """The Python file importing `reference` runs (what the gate asks about); None for a .pt2,
    which holds no code, or a module that cannot be found (building it says so)."""
    if reference.kind == PYTHON_FILE:
        return reference.path
    if reference.kind == IMPORTED and reference.module_name is not None:
        top = reference.module_name.split(".")[0]
        try:
            found = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            return None
        if found is not None and found.origin and found.has_location:
            return Path(found.origin)
    return None
