"""The real main window driven as a user drives it: build, pick data, train, stop, save, undo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QLineEdit, QMessageBox, QWidget

from tests.conftest import PRESETS
from workbench.engine.experiment import load_experiment
from workbench.ui.main_window import MainWindow


def pick(qtbot, main: MainWindow, search: str) -> None:  # type: ignore[no-untyped-def]
    panel = main.layer_panel
    qtbot.mouseClick(panel.findChild(QWidget, "addLayerButton"), Qt.MouseButton.LeftButton)
    qtbot.keyClicks(panel.catalogue.search, search)
    qtbot.keyClick(panel.catalogue.search, Qt.Key.Key_Return)


def type_into(qtbot, widget: QWidget, text: str) -> None:  # type: ignore[no-untyped-def]
    line = widget.lineEdit() if isinstance(widget, QAbstractSpinBox) else widget
    assert isinstance(line, QLineEdit)
    line.selectAll()
    qtbot.keyClick(widget, Qt.Key.Key_Backspace)
    qtbot.keyClicks(widget, text)
    qtbot.keyClick(widget, Qt.Key.Key_Return)


def choose(widget: QWidget, data: str) -> None:
    assert isinstance(widget, QComboBox)
    index = widget.findData(data)
    if index < 0:
        index = widget.findText(data)
    assert index >= 0, data
    widget.setCurrentIndex(index)


def wait_for_preview(qtbot, main: MainWindow) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: not main.data_panel.is_loading, timeout=20_000)


def test_design_handles_exist(window: MainWindow) -> None:
    for name in ("layerStack", "addLayerButton", "datasetPicker", "devicePicker", "precisionPicker",
                 "accumulationSpin", "ddpToggle", "trainButton", "stopButton", "lossPlot",
                 "accuracyPlot", "logView"):  # fmt: skip
        widget = window.findChild(QWidget, name)
        assert widget is not None, name
        assert widget.accessibleName(), name
        assert widget.toolTip() or name in ("layerStack", "lossPlot", "accuracyPlot", "logView"), (
            name
        )


def test_build_toy_mlp_in_the_ui_train_and_watch(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.new_project()
    choose(window.findChild(QWidget, "datasetPicker"), "toy")
    wait_for_preview(qtbot, window)
    for search, width in (
        ("linear", 30),
        ("relu", None),
        ("linear", 20),
        ("relu", None),
        ("linear", 2),
    ):
        pick(qtbot, window, search)
        if width is not None:
            type_into(qtbot, window.layer_panel.editor.field("out_features"), str(width))
    assert window.layer_panel.total_label.text() == "Total parameters: 752"
    data = window.data_panel
    type_into(qtbot, data.batch_size, "2")
    type_into(qtbot, data.val_batch_size, "2")
    data.drop_last.setChecked(True)
    settings = window.training_panel
    choose(settings.optimizer, "sgd")
    type_into(qtbot, settings.lr, "0.5")
    type_into(qtbot, settings.epochs, "3")
    type_into(qtbot, settings.seed, "123")
    choose(settings.device, "cpu")
    train_button = window.findChild(QWidget, "trainButton")
    assert train_button.isEnabled()

    with qtbot.waitSignal(window.session.run_ended, timeout=30_000):
        qtbot.mouseClick(train_button, Qt.MouseButton.LeftButton)
    assert window.last_summary is not None
    assert window.last_summary["train_accuracy"] == 1.0
    assert window.last_summary["val_accuracy"] == 1.0
    x, _ = window.plots.batch_curve_data()
    assert len(x) == 6  # one point per batch: 2 batches x 3 epochs
    epochs = window.plots.epoch_points()
    assert list(epochs["epoch"]) == [1, 2, 3]
    assert np.all(np.isfinite(epochs["val_accuracy"]))
    log = window.log_view.text()
    assert "Epoch: 001/003 | Batch 000/002 | Train/Val Loss: " in log
    assert "Epoch: 003/003 | Batch 001/002 | Train/Val Loss: " in log
    assert (window.last_run_dir / "model.pth").is_file()
    assert train_button.isEnabled() and not window.findChild(QWidget, "stopButton").isEnabled()
    assert (
        window.quantization_panel.unavailable_reason() is None
    )  # the trained model can be quantized


def test_invalid_stack_disables_train_and_marks_the_row(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    window.open_project(PRESETS / "mnist-cnn.toml")
    panel = window.layer_panel
    panel.select_row(6)  # Flatten
    panel.remove_current()
    train_button = window.findChild(QWidget, "trainButton")
    assert not train_button.isEnabled()
    assert (
        "layer 6 (Linear) receives [64, 12, 12]; add a Flatten before it" in train_button.toolTip()
    )
    assert panel.model.row_problem(6) is not None
    assert "add a Flatten before it" in str(panel.model.row_problem(6))
    window.undo_action.trigger()
    assert train_button.isEnabled()


def test_undo_and_redo_restore_the_stack(window: MainWindow) -> None:
    before = window.document.experiment.model.layers
    window.layer_panel.add_layer("Dropout")
    after = window.document.experiment.model.layers
    assert len(after) == len(before) + 1
    window.undo_action.trigger()
    assert window.document.experiment.model.layers == before
    window.redo_action.trigger()
    assert window.document.experiment.model.layers == after


def test_open_and_save_round_trip_a_project(window: MainWindow, tmp_path: Path) -> None:
    assert window.open_project(PRESETS / "moons-mlp.toml")
    window.layer_panel.add_layer("Dropout")
    window.document.update_train(epochs=7)
    assert window.isWindowModified()
    target = tmp_path / "mine.toml"
    assert window._save_to(target)
    assert not window.isWindowModified()
    saved = load_experiment(target)
    assert saved == window.document.experiment
    assert saved.train.epochs == 7
    window.new_project()
    assert window.open_project(target)
    assert window.document.experiment == saved
    assert "mine.toml" in window.windowTitle()
    assert str(target) in window._recent_files()


def test_bad_project_file_shows_one_message(window: MainWindow, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[train]\noptimizer = "adamm"\n')
    assert not window.open_project(bad)
    dialog = window.findChild(QMessageBox, "errorDialog")
    assert dialog is not None
    assert "train.optimizer: 'adamm' is not allowed (did you mean 'adam'?)" in dialog.text()
    dialog.close()


def long_run(window: MainWindow) -> None:
    window.open_project(PRESETS / "digits-mlp.toml")
    window.document.update_data(batch_size=4)
    window.document.update_train(epochs=50, device="cpu")


def test_stop_mid_run_ends_within_one_batch(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    long_run(window)
    assert not window.is_built("insight_panel")  # a tab page not shown yet
    with qtbot.waitSignal(window.session.batches_reported, timeout=30_000):
        window.start_training()
    assert not window.tabs.has_pending()  # every page was built to follow the run from its start
    session = window.session
    with qtbot.waitSignal(session.run_ended, timeout=10_000):
        qtbot.mouseClick(window.findChild(QWidget, "stopButton"), Qt.MouseButton.LeftButton)
        seen_at_stop = session.batches_seen
    assert session.batches_seen <= seen_at_stop + 1
    assert window.last_summary is not None and window.last_summary["status"] == "stopped"


def test_closing_mid_run_shuts_the_thread_down(qtbot, window: MainWindow, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    long_run(window)
    window.document.undo_stack.setClean()
    with qtbot.waitSignal(window.session.batches_reported, timeout=30_000):
        window.start_training()
    assert window.session.is_running
    # the quit prompt names the run (tests/ui/test_quit_prompt.py): the user agrees to stop it
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.close()
    assert not window.session.is_running


def test_pause_step_and_resume(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    long_run(window)
    with qtbot.waitSignal(window.session.batches_reported, timeout=30_000):
        window.step_training()  # from idle: a run that takes exactly one step, then waits
    session = window.session
    qtbot.waitUntil(lambda: session.last_batch is not None and session.last_batch.step == 1)
    assert session.state == "paused"
    window.step_training()
    qtbot.waitUntil(lambda: session.last_batch is not None and session.last_batch.step == 2)
    with qtbot.waitSignal(session.run_ended, timeout=10_000):
        session.stop()


def test_a_checkpoint_opens_in_the_editor_tab_and_fits_the_stack(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import torch

    from workbench.engine.experiment_model import build_experiment_model

    module = build_experiment_model(window.document.experiment).module
    path = tmp_path / "weights.pth"
    torch.save({f"module.{k}": v for k, v in module.state_dict().items()}, path)
    window.open_checkpoint(path)
    editor = window.findChild(QWidget, "checkpointEditor")
    assert window.tabs.currentWidget() is editor
    qtbot.waitUntil(
        lambda: len(window.checkpoint_editor.state_dict) == len(module.state_dict()), timeout=20_000
    )
    assert all(key.startswith("module.") for key in window.checkpoint_editor.state_dict)
    window.checkpoint_editor.strip_wrappers()
    assert set(window.checkpoint_editor.state_dict) == set(module.state_dict())


def test_weights_load_into_the_stack_or_say_why_not(window: MainWindow, tmp_path: Path) -> None:
    import torch

    from workbench.engine.experiment_model import build_experiment_model

    good = tmp_path / "good.pth"
    torch.save(build_experiment_model(window.document.experiment).module.state_dict(), good)
    assert window.load_weights_file(good)
    assert window.initial_weights is not None
    bad = tmp_path / "bad.pth"
    torch.save({"0.weight": torch.zeros(3, 3)}, bad)
    assert not window.load_weights_file(bad)
    dialog = window.findChild(QMessageBox, "errorDialog")
    assert "does not fit the current layer stack" in dialog.text()
    dialog.close()


def test_ddp_toggle_trains_through_torchrun_with_two_processes(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import torch

    window.open_project(PRESETS / "toy-mlp.toml")
    choose(window.training_panel.device, "cpu")
    toggle = window.findChild(QWidget, "ddpToggle")
    assert toggle.isEnabled()
    toggle.setChecked(True)
    assert window.document.experiment.train.ddp.enabled
    with qtbot.waitSignal(window.session.run_ended, timeout=180_000):
        qtbot.mouseClick(window.findChild(QWidget, "trainButton"), Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.session.is_ddp, timeout=10_000)
        assert not window.run_panel.pause_button.isEnabled()  # processes cannot pause
    assert window.last_summary is not None
    assert window.last_summary["world_size"] == 2
    assert window.last_summary["train_accuracy"] == 1.0
    assert "Epoch: 003/003" in window.log_view.text()
    folder = window.last_run_dir
    assert folder is not None and (folder / "model.pth").is_file()
    # The DDP run is a run like any other: listed, the current model, saved, quantizable.
    assert [(run.name, run.folder) for run in window.runs_panel.runs] == [("run 1", str(folder))]
    assert window.model_status.text() == "Model: run 1"
    assert window.save_weights_action.isEnabled() and window.open_run_folder_action.isEnabled()
    target = tmp_path / "ddp.pth"
    assert window.save_weights_file(target)
    saved = torch.load(target, weights_only=True)
    written = torch.load(folder / "model.pth", weights_only=True)
    assert set(saved) == set(written) and all(torch.equal(saved[k], written[k]) for k in saved)
    assert window.quantization_panel.unavailable_reason() is None
    assert window.quantization_panel.model_name.text() == "Model: run 1"


def test_help_diagnostics_lists_the_devices(window: MainWindow) -> None:
    dialog = window.show_diagnostics()
    text = dialog.plain_text()
    for device in window.devices:
        assert device.name in text
    dialog.close()


def test_welcome_shows_on_first_run_and_stays_dismissed(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    assert window.welcome.isVisible()
    window.welcome.dont_show_again.setChecked(True)
    qtbot.mouseClick(window.welcome.close_button, Qt.MouseButton.LeftButton)
    assert not window.welcome.isVisible()
    again = MainWindow(settings=window.settings, runs_dir=window.runs_dir)
    qtbot.addWidget(again)
    assert not again.welcome.isVisibleTo(again)
    again.show_welcome()
    assert again.welcome.isVisibleTo(again)
    again.data_panel.shutdown()


def test_presentation_mode_enlarges_fonts_and_dark_theme_darkens(window: MainWindow) -> None:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    before = app.font().pointSizeF()
    window.set_presentation_mode(True)
    assert app.font().pointSizeF() > before
    window.set_presentation_mode(False)
    assert app.font().pointSizeF() == pytest.approx(before)
    window.set_dark_theme(True)
    assert app.palette().window().color().lightness() < 100
    window.set_dark_theme(False)
    assert app.palette().window().color().lightness() > 150


def test_the_ready_window_keeps_its_long_lived_objects_out_of_the_garbage_collector(
    window: MainWindow,
) -> None:
    """A full collection mid-run walking every panel's objects stalled the window ~300 ms."""
    import gc

    assert window.is_ready and gc.get_freeze_count() > 100_000
    frozen = gc.get_freeze_count()
    assert not window.is_built("experiments_tab")
    window.tabs.build_pending()  # the tab pages built later are kept out of it too
    assert gc.get_freeze_count() > frozen
