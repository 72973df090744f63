"""Quitting during a run: the prompt names the run and says what happens to it."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from tests.conftest import PRESETS
from workbench.ui.main_window import MainWindow
from workbench.ui.quit_prompt import run_in_progress_text

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


def test_no_run_no_run_prompt(window: MainWindow) -> None:
    assert run_in_progress_text(window.session, window.last_run_dir) is None


def test_the_quit_prompt_names_the_run_and_what_quitting_does(
    qtbot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    window.open_project(PRESETS / "digits-mlp.toml")
    window.document.update_data(batch_size=4)
    window.document.update_train(epochs=50, device="cpu")
    window.document.undo_stack.setClean()
    asked: list[tuple[str, str]] = []
    shown: list[Any] = []

    def answer(_parent: Any, title: str, text: str, *args: Any, **kwargs: Any) -> Any:
        asked.append((title, text))
        shown.append(window.session.last_batch)
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", answer)
    session = window.session
    with qtbot.waitSignal(session.batches_reported, timeout=30_000):
        window.start_training()
    session.pause()
    qtbot.waitUntil(lambda: session.last_batch is not None)
    folder = window.last_run_dir
    assert folder is not None and folder.name.startswith("digits-mlp-")

    window.close()  # Cancel: the window stays and the run goes on

    assert session.is_running
    batch = shown[0]
    assert asked == [
        (
            "Stop the run and quit?",
            f"“{folder.name}” is paused (epoch {batch.epoch} of 50, batch {batch.batch}/"
            f"{batch.batches}).\n\nQuitting stops it after the current batch. Its weights so far "
            "(model.pth), the metrics of the epochs it finished and the checkpoint of the last "
            f"one stay in {folder}.",
        )
    ]
    with qtbot.waitSignal(session.run_ended, timeout=10_000):
        session.stop()


def test_quitting_during_a_sweep_names_it_and_says_what_stays(
    qtbot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    window.document.update_data(batch_size=4)
    window.document.update_train(epochs=50, device="cpu")
    window.document.undo_stack.setClean()
    tab = window.experiments_tab
    form = tab.form
    form.rows["train.lr"].check.setChecked(True)
    qtbot.keyClicks(form.rows["train.lr"].values, "0.01, 0.001")
    qtbot.mouseClick(form.add_button, Qt.MouseButton.LeftButton)
    controller = tab.controller
    with qtbot.waitSignal(controller.trial_started, timeout=60_000):
        assert controller.run()
    asked: list[tuple[str, str]] = []

    def answer(_parent: Any, title: str, text: str, *args: Any, **kwargs: Any) -> Any:
        asked.append((title, text))
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", answer)
    window.close()  # Cancel: the window stays and the sweep goes on
    assert controller.is_running and len(asked) == 1
    current = controller.current
    assert current is not None
    assert asked[0] == (
        "Stop the sweep and quit?",
        f"The sweep into “{current.out_dir.name}” is running (2 trials).\n\nQuitting stops its "
        f"current trial after this batch. The finished trials stay in {current.out_dir}; the "
        "same sweep into that folder again skips them and resumes the stopped one.",
    )
    with qtbot.waitSignal(controller.sweep_finished, timeout=30_000):
        controller.stop()
