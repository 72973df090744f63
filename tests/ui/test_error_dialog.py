"""Errors in the window: a readable message and where the log is, never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from workbench.engine.errors import DatasetError
from workbench.ui import error_dialog
from workbench.ui.main_window import MainWindow


@pytest.fixture
def log_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "logs" / "errors.log"
    monkeypatch.setattr(error_dialog, "error_log_path", lambda: path)
    return path


@pytest.fixture
def app_window(qtbot) -> QWidget:  # type: ignore[no-untyped-def]
    """A visible window the dialog opens over, as the main window would be."""
    widget = QWidget()
    qtbot.addWidget(widget)
    widget.show()
    return widget


def shown_dialog(parent: QWidget) -> QMessageBox:
    box = parent.findChild(QMessageBox, "errorDialog")
    assert isinstance(box, QMessageBox) and box.isVisible()
    return box


def raise_and_handle(error: BaseException) -> None:
    try:
        raise error
    except BaseException:  # noqa: BLE001 - handed on as sys.excepthook would be
        error_dialog.handle_exception(*sys.exc_info())  # type: ignore[arg-type]


def test_an_unexpected_error_shows_a_message_and_the_log_not_a_traceback(
    app_window: QWidget, log_path: Path
) -> None:
    raise_and_handle(ValueError("float8 tensors have no min"))
    box = shown_dialog(app_window)
    try:
        assert box.text() == (
            "Something went wrong: float8 tensors have no min. Your project was not lost.\n\n"
            f"The details are in {log_path}; please attach that file to a bug report."
        )
        assert box.detailedText() == ""
        assert "Traceback" not in box.text()
        logged = log_path.read_text()
        assert "Traceback (most recent call last)" in logged
        assert "ValueError: float8 tensors have no min" in logged
    finally:
        box.close()


def test_a_named_error_shows_its_message_as_plain_text(app_window: QWidget, log_path: Path) -> None:
    raise_and_handle(DatasetError("<b>data.csv</b>: bad\x1b[31m row"))
    box = shown_dialog(app_window)
    try:
        assert box.text() == "<b>data.csv</b>: bad\\x1b[31m row"
        assert box.textFormat().name == "PlainText"
        assert log_path.is_file()
    finally:
        box.close()


def test_an_unwritable_log_is_said_too(
    app_window: QWidget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(error_dialog, "error_log_path", lambda: blocker / "logs" / "errors.log")
    raise_and_handle(RuntimeError("boom"))
    box = shown_dialog(app_window)
    try:
        assert f"The details could not be written to {blocker}" in box.text()
    finally:
        box.close()


def test_ctrl_c_in_the_window_ends_it_quietly_with_130(
    qapp: QApplication, log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    QTimer.singleShot(0, lambda: raise_and_handle(KeyboardInterrupt()))
    deadline = QTimer()  # a failure, not a hang
    deadline.setSingleShot(True)
    deadline.timeout.connect(lambda: qapp.exit(1))
    deadline.start(30_000)
    code = qapp.exec()
    deadline.stop()
    assert code == 130
    assert capsys.readouterr().err == ""
    assert not log_path.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[data]\nval_split = nan\n", "data.val_split: nan is not a finite number"),
        ("x = " + "[" * 50_000 + "]" * 50_000, "too deeply"),
    ],
    ids=["nan", "nested-50000-deep"],
)
def test_a_hostile_project_is_a_named_error_in_the_window(
    window: MainWindow, tmp_path: Path, text: str, expected: str
) -> None:
    project = tmp_path / "hostile.toml"
    project.write_text(text)
    assert not window.open_project(project)
    dialog = window.findChild(QMessageBox, "errorDialog")
    assert dialog is not None
    assert dialog.text().startswith(f"{project}: ") and expected in dialog.text()
    assert dialog.detailedText() == ""
    dialog.close()


def test_opening_a_project_over_a_hostile_archive_is_safe(
    window: MainWindow,
    qtbot,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from tests.engine.test_dataset_archives import ATTACKS, _hostile_root

    root, outside = _hostile_root(tmp_path, ATTACKS["dot-dot"])
    project = tmp_path / "cifar.toml"
    project.write_text(
        '[model]\nlayers = [{ type = "Flatten" }, { type = "Linear", out_features = 10 }]\n'
        f'[data]\nname = "cifar10"\nroot = "{root}"\n'
    )
    assert window.open_project(project)
    qtbot.waitUntil(lambda: not window.data_panel.is_loading, timeout=30_000)
    assert "is not the published one" in window.data_panel.status.text()
    assert not (outside / "marker").exists()
    assert sorted(path.name for path in root.iterdir()) == ["cifar-10-python.tar.gz"]
