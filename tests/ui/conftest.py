"""Qt test set-up for widgets: every test must leave no worker thread behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, QThreadPool
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from workbench.ui.main_window import MainWindow


@pytest.fixture(autouse=True)
def no_leaked_threads(qapp: QApplication) -> Iterator[None]:
    """Fail a test that leaves a thread running (a controller not shut down, a stray pool job)."""
    before = threading.active_count()
    yield
    QThreadPool.globalInstance().waitForDone(5_000)
    assert threading.active_count() <= before, (
        f"{threading.active_count() - before} thread(s) still running after the test: "
        f"{[thread.name for thread in threading.enumerate()]}"
    )


def open_window(qtbot: QtBot, tmp_path: Path) -> MainWindow:
    """The main window as `workbench` opens it, with its settings and runs under tmp_path."""
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    main = MainWindow(
        settings=settings, runs_dir=tmp_path / "runs", recovery_dir=tmp_path / "recovery"
    )
    qtbot.addWidget(main)
    main.open_startup(None)
    main.show()
    return main


def close_window(main: MainWindow) -> None:
    main.session.shutdown()
    main.data_panel.shutdown()
    if main.is_built("quantization_panel"):  # the tab pages a test never showed were not built
        main.quantization_panel.controller.shutdown()
    for page in ("insight_panel", "experiments_tab", "generate_panel"):
        if main.is_built(page):
            getattr(main, page).shutdown()
    main.memory_fit.shutdown()
    main.transfer.shutdown()


@pytest.fixture
def window(qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MainWindow]:
    # Modal questions would block a test: answer "Discard" / "No" the way a hurried user would.
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: QMessageBox.StandardButton.Discard)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    main = open_window(qtbot, tmp_path)
    yield main
    close_window(main)
