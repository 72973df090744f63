"""Composition root: the QApplication, settings, exception hook, and the main window."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from workbench import __version__
from workbench.engine.resources import resources_dir

if TYPE_CHECKING:
    from workbench.ui.main_window import MainWindow

IMPORT_TIME = time.time()
DEFAULT_PRESET = "digits-mlp"


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


def run_app(
    file: str | None = None, startup_check: bool = False, interrupted: list[int] | None = None
) -> int:
    """Open the window (on a project, a checkpoint, or the default preset) and run the event loop.

    The frame shows first; PyTorch loads on a worker thread and the panels follow (MainWindow).
    However the loop ends (closed, or a Ctrl+C at any moment), background work is stopped and
    joined while the window still exists: a worker thread left running would abort the process.
    INTERRUPTED: where a caller holding Ctrl+C back notes one (the loop then ends at once).
    """
    from workbench.ui.error_dialog import install_exception_hook
    from workbench.ui.main_window import MainWindow
    from workbench.ui.terminal_interrupt import TerminalInterrupt

    app = make_application()
    install_exception_hook()
    terminal = TerminalInterrupt(app, interrupted)
    with terminal.installed():
        return _run_window(app, file, startup_check, MainWindow(deferred=True))


def _run_window(
    app: QApplication, file: str | None, startup_check: bool, window: MainWindow
) -> int:
    try:
        window.show()
        shown_after = time.time() - process_start_time()

        def on_ready() -> None:
            window.open_startup(Path(file) if file else None)
            if startup_check:
                QTimer.singleShot(0, lambda: _report_startup(window, shown_after))

        if startup_check:  # an install check must end, also when PyTorch cannot be loaded
            window.load_failed.connect(lambda message: _report_failure(app, message))
        window.load_in_background(then=on_ready)
        return int(app.exec())
    finally:
        _stop_background_work()


def _stop_background_work() -> None:
    from workbench.controllers import jobs
    from workbench.interrupts import deferred_interrupts

    with deferred_interrupts():  # PyTorch's import cannot be cut short: on a busy machine it
        jobs.shutdown_all(timeout_ms=120_000)  # takes far longer than a job's usual 30 s


def _report_failure(app: QApplication, message: str) -> None:
    print(f"window shown, but PyTorch could not be loaded: {message}", file=sys.stderr, flush=True)
    app.exit(1)


def _report_startup(window: MainWindow, shown_after: float) -> None:
    """Print the seconds from process start to the window shown and to it ready (and whether
    Train is enabled then), then quit."""
    ready_after = time.time() - process_start_time()
    trainable = "Train enabled" if window.train_action.isEnabled() else "Train disabled"
    print(
        f"window shown after {shown_after:.2f} s, ready after {ready_after:.2f} s: "
        f"{window.windowTitle()}; {trainable}",
        flush=True,
    )
    window.close()


def process_start_time() -> float:
    """When this process started (Linux: from /proc; elsewhere: when workbench was imported)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return IMPORT_TIME
