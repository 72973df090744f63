"""The last line of defence: uncaught exceptions become a dialog with details, never a traceback."""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType

from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from workbench.engine.errors import WorkbenchError

log = logging.getLogger("workbench")


def show_error(parent: QWidget | None, title: str, message: str, details: str = "") -> None:
    """A short message, with the technical details folded away behind 'Show Details...'."""
    box = QMessageBox(
        QMessageBox.Icon.Critical, title, message, QMessageBox.StandardButton.Ok, parent
    )
    box.setObjectName("errorDialog")
    if details:
        box.setDetailedText(details)
    if QApplication.platformName() == "offscreen":
        box.show()  # tests inspect it without blocking
        return
    box.exec()


def handle_exception(
    kind: type[BaseException], value: BaseException, trace: TracebackType | None
) -> None:
    """sys.excepthook for the window: log it, show a readable dialog, keep the app alive."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, trace)
        return
    details = "".join(traceback.format_exception(kind, value, trace))
    log.error("uncaught exception\n%s", details)
    if isinstance(value, WorkbenchError):
        message = str(value)
    else:
        message = f"Something went wrong: {value or kind.__name__}. Your project was not lost."
    app = QApplication.instance()
    parent = app.activeWindow() if isinstance(app, QApplication) else None
    show_error(parent, "Torch Workbench", message, details)


def install_exception_hook() -> None:
    sys.excepthook = handle_exception
