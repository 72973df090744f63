"""The runs panel: records real runs, renames, deletes, keeps a side file, overlays curves,
lists the run folders of its project after a restart and offers interrupted runs for Resume."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from pytestqt.qtbot import QtBot

from tests import factories
from tests.conftest import PRESETS
from tests.engine.test_run_history import finished_run, interrupted_run, toy
from workbench.controllers.run_session import RunSession
from workbench.engine.experiment import load_experiment
from workbench.engine.run_history import update_run_label, write_run_label
from workbench.ui.insight.run_list import RunRecord
from workbench.ui.plots import PlotsPanel
from workbench.ui.runs_panel import RunsPanel, epoch_history, runs_side_file

Rig = tuple[RunsPanel, PlotsPanel, RunSession]


@pytest.fixture
def rig(qtbot: QtBot) -> Iterator[Rig]:
    plots, controller = PlotsPanel(), RunSession()
    panel = RunsPanel(plots, controller)
    qtbot.addWidget(plots)
    qtbot.addWidget(panel)
    yield panel, plots, controller
    controller.shutdown()


def record(name: str, epochs: int = 2, **metrics: object) -> RunRecord:
    history = factories.as_rows(factories.history(epochs))
    values = {"val_accuracy": 0.6, "val_loss": 0.6, "epochs_completed": epochs,
              "wall_seconds": 75.0, "status": "completed", "dataset": "moons",
              "parameters": 354, "history": history, **metrics}  # fmt: skip
    return RunRecord(name=name, settings="moons · 5 layers", metrics=values)


def cells(panel: RunsPanel, row: int) -> list[str]:
    model = panel.model
    return [model.data(model.index(row, column)) for column in range(model.columnCount())]


def select(panel: RunsPanel, row: int) -> None:
    flags = (
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
    )
    panel.table.selectionModel().select(panel.model.index(row, 0), flags)


def test_two_trainings_make_two_rows_that_rename_delete_and_persist(
    qtbot: QtBot, rig: Rig, tmp_path: Path
) -> None:
    panel, _, controller = rig
    project = tmp_path / "moons.toml"
    panel.bind_project(project)
    experiment = load_experiment(PRESETS / "moons-mlp.toml")
    experiment = dataclasses.replace(
        experiment, train=dataclasses.replace(experiment.train, epochs=2, device="cpu")
    )
    for _ in range(2):
        with qtbot.waitSignal(controller.run_ended, timeout=60_000):
            controller.start(experiment)
    assert [run.name for run in panel.runs] == ["run 1", "run 2"]
    _, dataset, parameters, epochs, accuracy, loss, wall = cells(panel, 0)
    assert (dataset, parameters, epochs) == ("moons", "354", "2")
    assert accuracy.endswith("%") and float(loss) > 0 and wall.endswith(" s")
    assert len(epoch_history(panel.runs[0])) == 2

    assert panel.model.setData(panel.model.index(0, 0), "baseline")  # an in-place edit
    select(panel, 1)
    qtbot.keyClick(panel.table, Qt.Key.Key_Delete)
    assert [run.name for run in panel.runs] == ["baseline"]

    side = runs_side_file(project)
    assert side == tmp_path / "moons.runs.json"
    saved = json.loads(side.read_text())
    assert [run["name"] for run in saved["runs"]] == ["baseline"]
    again = RunsPanel(PlotsPanel(), controller)
    qtbot.addWidget(again)
    again.bind_project(project)
    assert [run.name for run in again.runs] == ["baseline"]
    assert cells(again, 0)[1:4] == ["moons", "354", "2"]


def test_ticked_runs_are_overlaid_and_follow_renames_and_deletes(qtbot: QtBot, rig: Rig) -> None:
    panel, plots, _ = rig
    panel.add_run(record("small"))
    panel.add_run(record("wide", epochs=3))
    model = panel.model
    assert model.setData(model.index(1, 0), Qt.CheckState.Checked, Qt.ItemDataRole.CheckStateRole)
    assert plots.overlay_names() == ["wide"]
    panel.rename(1, "wide net")
    assert plots.overlay_names() == ["wide net"]
    select(panel, 0)
    panel.overlay_selected()
    assert plots.overlay_names() == ["small", "wide net"]
    panel.delete_rows([0])
    assert plots.overlay_names() == ["wide net"]
    panel.clear_overlays()
    assert plots.overlay_names() == []


def test_the_model_passes_the_qt_model_tester(qtmodeltester, rig: Rig) -> None:  # type: ignore[no-untyped-def]
    panel = rig[0]
    panel.add_run(record("a"))
    qtmodeltester.check(panel.model)
    panel.add_run(record("b"))
    panel.set_overlaid(0, True)
    panel.rename(1, "c")
    panel.delete_rows([0])


def test_columns_say_how_a_run_ended_and_how_big_it_was(rig: Rig) -> None:
    panel = rig[0]
    panel.add_run(record("stopped", status="early_stopped", parameters=1_234_567,
                         wall_seconds=3725.0, val_accuracy=None))  # fmt: skip
    _, _, parameters, epochs, accuracy, _, wall = cells(panel, 0)
    assert (parameters, epochs, accuracy, wall) == (
        "1.2 M",
        "2 (early stopped)",
        "n/a",
        "1 h 2 min",
    )
    panel.add_run(record("minute", wall_seconds=75.0, parameters=52_000))
    assert cells(panel, 1)[2] == "52 k" and cells(panel, 1)[6] == "1 min 15 s"


def test_save_as_carries_the_runs_and_opening_another_project_shows_its_own(
    rig: Rig, tmp_path: Path
) -> None:
    panel = rig[0]
    panel.bind_project(None)  # an untitled project keeps its runs in memory
    panel.add_run(record("first"))
    panel.bind_project(tmp_path / "a.toml", keep_runs=True)  # Save As
    assert [run.name for run in panel.runs] == ["first"]
    assert runs_side_file(tmp_path / "a.toml").is_file()
    panel.bind_project(tmp_path / "b.toml")  # Open: b has no runs yet
    assert panel.runs == []
    panel.add_run(record("second"))
    panel.bind_project(tmp_path / "a.toml")
    assert [run.name for run in panel.runs] == ["first"]
    panel.bind_project(None)  # New
    assert panel.runs == []


def test_an_unreadable_side_file_is_set_aside_not_overwritten(rig: Rig, tmp_path: Path) -> None:
    panel = rig[0]
    side = runs_side_file(tmp_path / "p.toml")
    side.write_text("{ not json")
    panel.bind_project(tmp_path / "p.toml")
    assert panel.runs == []
    assert "Cannot read the run list" in panel.message.text()
    assert (tmp_path / "p.runs.json.unreadable").read_text() == "{ not json"
    panel.add_run(record("fresh"))
    assert [r["name"] for r in json.loads(side.read_text())["runs"]] == ["fresh"]


def test_a_side_file_that_cannot_be_written_is_reported(rig: Rig, tmp_path: Path) -> None:
    panel = rig[0]
    (tmp_path / "p.runs.json").mkdir()  # a folder where the file should go: any write fails
    panel.bind_project(tmp_path / "p.toml")
    panel.add_run(record("kept in memory"))
    assert [run.name for run in panel.runs] == ["kept in memory"]
    assert "Cannot save the run list" in panel.message.text()


def test_a_run_from_elsewhere_is_recorded_with_its_epoch_reports(rig: Rig) -> None:
    panel, plots, _ = rig
    experiment = load_experiment(PRESETS / "digits-mlp.toml")
    reports = factories.history(2)
    summary = factories.summary(val_accuracy=0.5, val_loss=0.55, parameters=6922)
    run = panel.record_run(experiment, summary, reports, "/runs/ddp")  # e.g. a DDP run
    assert cells(panel, 0)[1:5] == ["digits", "6,922", "2", "50.00%"]
    assert epoch_history(run) == reports and run.folder == "/runs/ddp"
    panel.set_overlaid(0, True)
    assert plots.overlay_names() == ["run 1"]


def test_a_bundled_preset_opened_as_a_project_never_gets_a_side_file(rig: Rig) -> None:
    panel = rig[0]
    panel.bind_project(PRESETS / "moons-mlp.toml")
    assert panel.side_file is None and "not saved" in panel.message.text()
    panel.add_run(record("kept in memory"))
    assert [run.name for run in panel.runs] == ["kept in memory"]
    assert not runs_side_file(PRESETS / "moons-mlp.toml").exists()


def test_a_run_stopped_before_its_first_epoch_is_not_recorded(rig: Rig) -> None:
    panel, _, controller = rig
    experiment = load_experiment(PRESETS / "toy-mlp.toml")
    controller.run_ended.emit(factories.run_result(experiment, epochs=0, status="stopped"))
    assert panel.runs == []
    controller.run_ended.emit(factories.run_result(experiment, epochs=1, status="stopped"))
    assert [run.name for run in panel.runs] == ["run 1"]


def test_run_folders_of_the_project_are_listed_and_the_rest_left_out(
    qtbot: QtBot, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    finished_run(runs / "toy-1")
    interrupted_run(runs / "toy-2")
    finished_run(runs / "other-1", project="preset:moons-mlp")
    write_run_label(runs / "toy-3", "preset:toy-mlp", toy())  # failed before its first epoch
    finished_run(runs / "toy-4")
    update_run_label(runs / "toy-4", hidden=True)  # deleted from the list earlier
    session = RunSession()
    panel = RunsPanel(PlotsPanel(), session, runs)
    qtbot.addWidget(panel)
    panel.bind_project(None, key="preset:toy-mlp")
    assert [Path(run.folder).name for run in panel.runs] == ["toy-1", "toy-2"]
    assert [cells(panel, row)[3] for row in (0, 1)] == ["3", "1 (interrupted)"]
    assert panel.resumable(1) and not panel.resumable(0)
    panel.delete_rows([0])
    panel.all_projects.setChecked(True)
    assert sorted(Path(run.folder).name for run in panel.runs) == ["other-1", "toy-2"]
