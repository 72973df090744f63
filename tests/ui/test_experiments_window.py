"""The experiment lab in the window: a sweep from the Experiments tab, the LR finder, will it fit."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from workbench.engine import memory_estimate
from workbench.ui.lr_finder_dialog import LRFinderDialog
from workbench.ui.main_window import MainWindow
from workbench.ui.sweep_table_model import SORT_ROLE

LEFT = Qt.MouseButton.LeftButton


def test_a_four_trial_sweep_sorted_plotted_ranked_and_opened_as_a_project(
    qtbot: QtBot, window: MainWindow
) -> None:
    window.document.update_train(epochs=1, device="cpu")
    tab = window.experiments_tab
    window.tabs.setCurrentWidget(tab)
    form = tab.form
    form.rows["train.lr"].check.setChecked(True)
    qtbot.keyClicks(form.rows["train.lr"].values, "0.01, 0.001")
    form.rows["data.batch_size"].check.setChecked(True)
    qtbot.keyClicks(form.rows["data.batch_size"].values, "32,64")
    assert form.summary.text() == "4 trials planned."
    qtbot.mouseClick(form.add_button, LEFT)
    assert tab.queue_list.count() == 1
    assert "train.lr, data.batch_size (grid, 4 trials)" in tab.queue_list.item(0).text()

    with qtbot.waitSignal(tab.controller.sweep_finished, timeout=240_000) as finished:
        qtbot.mouseClick(tab.run_button, LEFT)
    results, stopped = finished.args
    assert not stopped
    assert [r.status for r in results] == ["completed"] * 4
    assert [dict(r.trial.values) for r in results] == [
        {"train.lr": 0.01, "data.batch_size": 32},
        {"train.lr": 0.01, "data.batch_size": 64},
        {"train.lr": 0.001, "data.batch_size": 32},
        {"train.lr": 0.001, "data.batch_size": 64},
    ]
    assert tab.queue_list.count() == 0
    assert tab.queue_state.text().startswith("Finished: 4 of 4 trials done; best val_accuracy")
    folder = tab.folder
    assert folder is not None and (folder / "sweep.csv").is_file()
    assert sorted(p.name for p in folder.glob("trial-*")) == [f"trial-00{i}" for i in (1, 2, 3, 4)]

    # Sorted by validation accuracy, best first, as the header click does.
    column = tab.model.column_of("Val accuracy")
    tab.table.sortByColumn(column, Qt.SortOrder.DescendingOrder)
    shown = [tab.proxy.index(row, column).data(SORT_ROLE) for row in range(4)]
    accuracies = [r.final["val_accuracy"] for r in results]
    assert shown == sorted(accuracies, reverse=True)
    best = max(accuracies)
    assert tab.proxy.index(0, column).data() == f"{100 * best:.2f} %"
    trial_column = tab.model.column_of("Trial")
    top_trial = int(tab.proxy.index(0, trial_column).data())
    assert results[top_trial - 1].final["val_accuracy"] == best

    # Parallel coordinates: one polyline per trial over lr, batch size and the metric.
    assert sorted(tab.parallel.lines) == [1, 2, 3, 4]
    assert [axis.name for axis in tab.parallel.axes] == [
        "train.lr",
        "data.batch_size",
        "val_accuracy",
    ]
    for line in tab.parallel.lines.values():
        _, y = line.getData()
        assert len(y) == 3 and np.isfinite(y).all()
    # Importance: a value for both parameters.
    found = {item.key: item for item in tab.importance.items}
    assert set(found) == {"train.lr", "data.batch_size"}
    for key, item in found.items():
        assert item.forest is not None and item.correlation is not None
        assert tab.importance.bars[key].text() == f"{100 * item.forest:.0f} %"
    assert sum(item.forest or 0 for item in found.values()) == pytest.approx(1.0)
    # The val curves show every trial until some are selected.
    assert sorted(tab.curves.curves) == [1, 2, 3, 4]

    # Select trial 4 (lr 0.001, batch 64) and open it as a project.
    row = next(r for r in range(4) if int(tab.proxy.index(r, trial_column).data()) == 4)
    tab.table.selectionModel().select(
        tab.proxy.index(row, 0),
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
    )
    assert sorted(tab.curves.curves) == [4]
    assert tab.parallel.lines[4].zValue() == 1
    qtbot.mouseClick(tab.open_button, LEFT)
    assert window.document.path is None and window.document.is_dirty
    assert window.training_panel.lr.value() == pytest.approx(0.001)
    assert window.document.experiment.data.batch_size == 64
    assert window.windowTitle().startswith("Untitled")


def test_the_sweep_form_says_what_is_wrong_on_the_field(window: MainWindow) -> None:
    form = window.experiments_tab.form
    form.set_values("train.lr", "0.1, abc")
    message = form.rows["train.lr"].message
    assert message.isVisibleTo(form)
    assert message.text() == "train.lr: 'abc' is not a number"
    assert not form.add_button.isEnabled()
    assert form.summary.text() == "Fix the values marked in red."

    form.set_values("train.lr", "1e-4:1e-1:log")
    assert not message.isVisibleTo(form)
    assert form.summary.text().startswith("A range is drawn from: set Random trials")
    form.random_trials.setValue(5)
    assert form.summary.text() == "5 trials planned."
    assert all(1e-4 <= t.values["train.lr"] <= 1e-1 for t in form.trials)

    form.set_values("train.lr", "1:0.1")
    assert message.text() == "train.lr=1:0.1: LOW must be below HIGH"
    form.set_values("data.batch_size", "0")
    assert form.rows["data.batch_size"].message.text() == (
        "data.batch_size: 0 is out of range; use a value at least 1"
    )
    form.set_values("train.nesterov", "true, false")  # any key of the experiment, added by hand
    assert "train.nesterov" in form.rows


def test_lr_finder_suggests_a_rate_and_use_sets_it_undoably(
    qtbot: QtBot, window: MainWindow
) -> None:
    window.document.update_train(device="cpu")
    before = window.document.experiment.train.lr
    qtbot.mouseClick(window.training_panel.lr_find, LEFT)
    dialog = window.findChild(LRFinderDialog)
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.found is not None, timeout=120_000)
    found = dialog.found
    assert found is not None and found.suggestion is not None
    assert dialog.suggestion.text() == f"Suggested learning rate: {found.suggestion:.3g}"
    assert dialog.reason.text() == f"Why: {found.reason}."
    rates, smoothed = dialog.curve.getData()
    assert len(rates) == len(found.rates) > 10
    assert list(smoothed) == pytest.approx(list(found.smoothed))
    assert dialog.marker.isVisible()
    assert dialog.marker.value() == pytest.approx(math.log10(found.suggestion))
    assert window.document.experiment.train.lr == before  # nothing changes until Use

    qtbot.mouseClick(dialog.use_button, LEFT)
    assert window.document.experiment.train.lr == found.suggestion
    assert window.training_panel.lr.value() == pytest.approx(found.suggestion, abs=1e-6)
    assert window.undo_action.text() == "&Undo Use the suggested learning rate"
    window.undo_action.trigger()
    assert window.document.experiment.train.lr == before
    assert window.training_panel.lr.value() == pytest.approx(before)


def test_memory_line_and_the_question_before_train(
    qtbot: QtBot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = window.memory_fit
    window.document.update_train(epochs=1, device="cpu")
    qtbot.waitUntil(lambda: line.text().startswith("Peak training memory ≈"), timeout=60_000)
    assert line.text().endswith(": fits")
    assert "free RAM on cpu" in line.text()

    monkeypatch.setattr(memory_estimate, "free_memory", lambda device: 4096)
    with qtbot.waitSignal(line.checker.estimated, timeout=60_000):
        window.document.update_data(batch_size=64)  # a change the estimate depends on
    assert "; free RAM on cpu: 4.0 KiB: will not fit; lower data." in line.text()
    assert "(batch 64," in line.toolTip()

    asked: list[str] = []

    def answer(reply: QMessageBox.StandardButton):  # type: ignore[no-untyped-def]
        def question(_parent: object, _title: str, text: str, *args: object) -> object:
            asked.append(text)
            return reply

        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    window.start_training()
    assert len(asked) == 1 and asked[0].endswith("Train anyway?")
    assert not window.session.is_running and window.last_run_dir is None

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    with qtbot.waitSignal(window.session.run_ended, timeout=120_000):
        window.start_training()
    assert len(asked) == 2
    assert window.last_result is not None and window.last_result.succeeded


def test_a_command_line_sweep_opens_in_the_tab(window: MainWindow, tmp_path: Path) -> None:
    from tests.engine.test_sweep_folder import toy_sweep

    toy_sweep(tmp_path / "cli")
    tab = window.experiments_tab
    assert tab.show_sweep(tmp_path / "cli")
    assert tab.model.rowCount() == 2 and tab.model.keys == ("train.lr",)
    assert [tab.model.index(r, 1).data() for r in range(2)] == ["completed", "completed"]
    assert sorted(tab.parallel.lines) == [1, 2]
    assert sorted(tab.curves.curves) == [1, 2]
    assert tab.queue_state.text() == f"Showing {tmp_path / 'cli'}: 2 of 2 trials done."

    assert not tab.show_sweep(tmp_path)
    dialog = tab.findChild(QMessageBox, "errorDialog")
    assert dialog is not None and "sweep.json: cannot be read" in dialog.text()
    assert tab.model.rowCount() == 2  # what was shown stays
