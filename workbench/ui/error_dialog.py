"""The last line of defence: uncaught exceptions become a readable dialog; the traceback goes to a log."""

from __future__ import annotations

import datetime
import sys
import traceback
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QStandardPaths, Qt
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from workbench.engine.errors import WorkbenchError
from workbench.engine.safe_text import safe_text

EXIT_INTERRUPTED = 130  # as the command line ends on Ctrl+C


def error_log_path() -> Path:
    """Where tracebacks are written: <app data>/logs/errors.log."""
    location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(location or Path.home() / ".local/share/torch-workbench") / "logs" / "errors.log"


def show_error(parent: QWidget | None, title: str, message: str, details: str = "") -> None:
    """A short message, shown as plain text (text from a file never renders as HTML)."""
    box = QMessageBox(
        QMessageBox.Icon.Critical,
        title,
        safe_text(message, multiline=True),
        QMessageBox.StandardButton.Ok,
        parent,
    )
    box.setObjectName("errorDialog")
    box.setTextFormat(Qt.TextFormat.PlainText)
    if details:
        box.setDetailedText(safe_text(details, multiline=True))
    if QApplication.platformName() == "offscreen":
        box.show()  # tests inspect it without blocking
        return
    box.exec()


def write_error_log(text: str) -> Path | None:
    """Append `text` to the error log with a time stamp; the log's path, or None if unwritable."""
    path = error_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(f"--- {datetime.datetime.now().isoformat(timespec='seconds')}\n{text}\n")
    except OSError:
        return None
    return path


def handle_exception(
    kind: type[BaseException], value: BaseException, trace: TracebackType | None
) -> None:
    """sys.excepthook for the window: log the traceback, show a readable dialog, keep running.

    A Ctrl+C in the terminal that started the window (KeyboardInterrupt) ends it quietly.
    """
    app = QApplication.instance()
    if issubclass(kind, KeyboardInterrupt):
        if isinstance(app, QApplication):
            app.exit(EXIT_INTERRUPTED)
        return
    log = write_error_log("".join(traceback.format_exception(kind, value, trace)))
    if isinstance(value, WorkbenchError):
        message = str(value)
    else:
        message = f"Something went wrong: {value or kind.__name__}. Your project was not lost."
        where = (
            f"The details are in {log}; please attach that file to a bug report."
            if log is not None
            else f"The details could not be written to {error_log_path()}."
        )
        message = f"{message}\n\n{where}"
    if not isinstance(app, QApplication):
        print(safe_text(message, multiline=True), file=sys.stderr)
        return
    show_error(_dialog_parent(app), "Torch Workbench", message)


def _dialog_parent(app: QApplication) -> QWidget | None:
    """The active window, else any visible one: the dialog shows over the application."""
    visible = [widget for widget in app.topLevelWidgets() if widget.isVisible()]
    return app.activeWindow() or (visible[0] if visible else None)


def install_exception_hook() -> None:
    sys.excepthook = handle_exception
