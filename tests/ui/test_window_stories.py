"""The window's stories about which model is the current one, and which runs are whose."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox
from pytestqt.qtbot import QtBot

from tests.conftest import PRESETS
from tests.engine.test_run_history import interrupted_run, toy
from tests.ui.conftest import close_window, open_window
from workbench.engine.quantization import MeasureSettings
from workbench.engine.trainer import Trainer
from workbench.ui.main_window import MainWindow

FAST = MeasureSettings(repeats=2, warmup=1, threads=1)


def short(window: MainWindow, epochs: int = 1, **train: object) -> None:
    """Make the open project's run short and CPU-only."""
    window.document.update_train(epochs=epochs, device="cpu", **train)


def train(qtbot: QtBot, window: MainWindow) -> None:
    with qtbot.waitSignal(window.session.run_ended, timeout=120_000):
        window.start_training()


def answer(monkeypatch: pytest.MonkeyPatch, button: QMessageBox.StandardButton) -> list[str]:
    """Answer every question with `button`; returns the questions' texts as they come."""
    asked: list[str] = []

    def question(_parent: object, _title: str, text: str, *args: object) -> object:
        asked.append(text)
        return button

    monkeypatch.setattr(QMessageBox, "question", question)
    return asked


def test_load_weights_then_quantize_reports_on_the_loaded_file_and_names_it(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    short(window, lr=1e-4, optimizer="sgd")  # run 1 learns next to nothing
    train(qtbot, window)
    assert window.model_status.text() == "Model: run 1"
    run1 = window.last_result
    assert run1 is not None and run1.history[-1].val_accuracy is not None
    good = tmp_path / "good.pth"
    better = dataclasses.replace(window.document.experiment, train=dataclasses.replace(
        window.document.experiment.train, epochs=3, lr=1.0, optimizer="adadelta"))  # fmt: skip
    trainer = Trainer(better)
    trainer.fit()
    torch.save(trainer.model.state_dict(), good)
    file_accuracy = trainer.history[-1]["val_accuracy"]
    assert file_accuracy - run1.history[-1].val_accuracy > 0.3  # a report on run 1 would show

    assert window.load_weights_file(good)
    assert window.model_status.text() == "Model: good.pth (loaded file)"
    lab = window.quantization_panel
    assert lab.model_name.text() == "Model: good.pth (loaded file)"
    lab.measure = FAST
    lab.output.setText(str(tmp_path / "out"))
    with qtbot.waitSignal(lab.report_shown, timeout=180_000) as shown:
        lab.run_button.click()
    card = shown.args[0]
    assert card.float_model.accuracy == pytest.approx(file_accuracy, abs=1e-6)
    assert lab.report_title.text() == "Report card of good.pth (loaded file): dynamic int8"
    qtbot.waitUntil(lambda: not lab.controller.is_running, timeout=30_000)
    # The insight tabs show the same file: Predict asks it, Evaluate counts its answers.
    insight = window.insight_panel
    assert insight.model_name.text() == "Model: good.pth (loaded file)"
    qtbot.waitUntil(lambda: insight.evaluated_epoch == 0, timeout=60_000)  # 0: not a run's epoch
    assert insight.evaluation.result.accuracy == pytest.approx(file_accuracy, abs=1e-6)
    assert insight.predict.model is not None and len(insight.predict.class_names) == 10


def test_the_stack_is_read_only_while_a_run_trains(
    qtbot: QtBot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    short(window, epochs=50)
    window.document.update_data(batch_size=4)
    layers = window.document.experiment.model.layers
    panel = window.layer_panel
    with qtbot.waitSignal(window.session.batches_reported, timeout=60_000):
        window.start_training()
    assert not panel.lock_bar.isHidden() and "read-only" in panel.lock_note.text()
    assert not panel.add_button.isEnabled() and not panel.editor_box.isEnabled()
    assert not panel.remove_action.isEnabled() and not window.undo_action.isEnabled()
    asked = answer(monkeypatch, QMessageBox.StandardButton.No)
    panel.select_row(0)
    panel.remove_current()  # a shortcut still reaches the document: it is refused
    assert window.document.experiment.model.layers == layers
    assert len(asked) == 1 and "Stop the run now?" in asked[0]
    assert window.session.is_running  # "No": the run goes on
    answer(monkeypatch, QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(window.session.run_ended, timeout=30_000):
        panel.add_layer("Dropout")  # "Yes": the run stops
    assert window.document.experiment.model.layers == layers
    assert panel.lock_bar.isHidden() and panel.add_button.isEnabled()
    panel.select_row(0)
    panel.remove_current()
    assert len(window.document.experiment.model.layers) == len(layers) - 1


def test_a_stack_that_no_longer_fits_the_current_model_says_so_before_saving(
    qtbot: QtBot, window: MainWindow, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    short(window)
    train(qtbot, window)
    result = window.last_result
    assert result is not None and result.state_dict is not None
    target = tmp_path / "run1.pth"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    window.layer_panel.select_row(0)
    window.layer_panel.remove_current()
    assert window.model_status.text() == "Model: run 1 (made for another layer stack)"
    asked = answer(monkeypatch, QMessageBox.StandardButton.No)
    window.save_weights()
    assert "made for another layer stack" in asked[0] and not target.exists()
    answer(monkeypatch, QMessageBox.StandardButton.Yes)
    window.save_weights()  # the user insists: run 1's weights, never the stack's
    saved = torch.load(target, weights_only=True)
    assert set(saved) == set(result.state_dict)
    assert all(torch.equal(saved[key], result.state_dict[key]) for key in saved)
    window.undo_action.trigger()
    assert window.model_status.text() == "Model: run 1"


def test_switching_projects_leaves_no_stale_curve_preview_or_prediction(
    qtbot: QtBot, window: MainWindow
) -> None:
    window.open_preset(PRESETS / "spirals-mlp.toml")
    short(window, epochs=2)
    train(qtbot, window)
    insight = window.insight_panel
    qtbot.waitUntil(lambda: insight.evaluated_epoch == 2, timeout=60_000)
    assert insight.predict.model is not None and len(window.plots.epoch_points()["epoch"]) == 2
    spirals = insight.predict.class_names

    window.open_preset(PRESETS / "digits-mlp.toml")
    assert len(window.plots.epoch_points()["epoch"]) == 0
    assert len(window.plots.batch_curve_data()[0]) == 0
    assert window.log_view.text() == "" and window.run_panel.progress_text() == "No run"
    assert insight.context is None and insight.predict.model is None
    assert insight.predict.class_names != spirals and insight.evaluation.result is None
    assert insight.boundary.history.epochs == [] and insight.boundary.current is None
    assert window.model_status.text() == "Model: fresh initialisation"
    assert window.runs_panel.runs == []  # spirals' run is spirals'
    qtbot.waitUntil(lambda: not window.data_panel.is_loading, timeout=60_000)
    preview = window.data_panel.preview
    assert preview is not None and preview.info.name == "digits"


def test_after_the_window_is_reopened_the_runs_of_a_preset_are_listed(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: QMessageBox.StandardButton.Discard)
    first = open_window(qtbot, tmp_path)  # the default preset, digits-mlp
    short(first)
    train(qtbot, first)
    first.runs_panel.rename(0, "baseline")
    accuracy = first.runs_panel.model.data(first.runs_panel.model.index(0, 4))
    first.document.undo_stack.setClean()
    first.close()
    close_window(first)

    again = open_window(qtbot, tmp_path)
    try:
        panel = again.runs_panel
        assert [run.name for run in panel.runs] == ["baseline"]
        assert panel.model.data(panel.model.index(0, 4)) == accuracy
        assert len(panel.runs[0].metrics["history"]) == 1  # its curve can be overlaid
        again.open_preset(PRESETS / "moons-mlp.toml")
        assert panel.runs == []
        panel.all_projects.setChecked(True)  # every project's runs, presets' included
        assert [run.name for run in panel.runs] == ["baseline"]
    finally:
        close_window(again)


def test_an_interrupted_run_is_offered_for_resume_and_matches_an_uninterrupted_run(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    folder = window.runs_dir / "toy-mlp-crashed"
    interrupted_run(folder)  # killed in epoch 2: checkpoint.pt of epoch 1, no summary
    reference = Trainer(toy())
    reference.fit()
    window.open_preset(PRESETS / "toy-mlp.toml")
    panel = window.runs_panel
    assert [run.folder for run in panel.runs] == [str(folder)]
    assert panel.model.data(panel.model.index(0, 3)) == "1 (interrupted)"
    panel.table.selectRow(0)
    assert panel.resume_button.isEnabled()
    with qtbot.waitSignal(window.session.run_ended, timeout=120_000) as ended:
        qtbot.mouseClick(panel.resume_button, Qt.MouseButton.LeftButton)
    result = ended.args[0]
    assert result.ended == "completed" and result.folder == folder
    assert [report.epoch for report in result.history] == [1, 2, 3]
    for resumed, uninterrupted in zip(result.history[1:], reference.history[1:], strict=True):
        assert resumed.train_loss == pytest.approx(uninterrupted["train_loss"], abs=1e-7)
        assert resumed.val_loss == pytest.approx(uninterrupted["val_loss"], abs=1e-7)
    assert len(panel.runs) == 1 and panel.model.data(panel.model.index(0, 3)) == "3"
    assert not panel.resume_button.isEnabled()
