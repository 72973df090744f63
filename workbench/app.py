"""Composition root: the QApplication, settings, exception hook, and the main window."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from workbench import __version__

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
DEFAULT_PRESET = "digits-mlp"


def resources_dir() -> Path:
    """Where presets and icons live: next to the package, or inside a PyInstaller bundle."""
    bundle = getattr(sys, "_MEIPASS", None)
    return Path(bundle) / "resources" if bundle else RESOURCES


def make_application(argv: list[str] | None = None) -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    QCoreApplication.setOrganizationName("Torch Workbench")
    QCoreApplication.setApplicationName("Torch Workbench")
    QCoreApplication.setApplicationVersion(__version__)
    app = QApplication(argv if argv is not None else sys.argv[:1])
    icon = resources_dir() / "icons" / "workbench.svg"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    app.setDesktopFileName("torch-workbench")
    return app


def run_app(file: str | None = None) -> int:
    """Open the window (on a project, a checkpoint, or the default preset) and run the event loop."""
    from workbench.ui.error_dialog import install_exception_hook
    from workbench.ui.main_window import MainWindow

    app = make_application()
    install_exception_hook()
    window = MainWindow()
    window.open_startup(Path(file) if file else None)
    window.show()
    return int(app.exec())
