"""Run folders read back as RunResults: finished, interrupted, labelled, listed, or refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from tests.conftest import PRESETS
from workbench.engine.current_model import FILE, FRESH, CurrentModel
from workbench.engine.experiment import Experiment, LayerSpec, load_experiment
from workbench.engine.reports import BaseObserver, EpochReport
from workbench.engine.run_history import (
    RunHistoryError,
    list_runs,
    load_run_weights,
    project_key,
    read_run,
    read_run_label,
    update_run_label,
    write_run_label,
)
from workbench.engine.trainer import Trainer


def toy(epochs: int = 3) -> Experiment:
    experiment = load_experiment(PRESETS / "toy-mlp.toml")
    return dataclasses.replace(
        experiment, train=dataclasses.replace(experiment.train, epochs=epochs, device="cpu")
    )


class Crash(Exception):
    """Stands for a kill: the run ends without writing its summary."""


class CrashAtEpoch(BaseObserver):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, report: EpochReport) -> None:
        if report.epoch == self.epoch:
            raise Crash


def finished_run(folder: Path, project: str = "preset:toy-mlp") -> Trainer:
    write_run_label(folder, project, toy())
    trainer = Trainer(toy(), out_dir=folder)
    trainer.fit()
    return trainer


def interrupted_run(folder: Path, project: str = "preset:toy-mlp") -> None:
    """A run killed during epoch 2: checkpoint.pt and metrics.csv of epoch 1, no summary."""
    write_run_label(folder, project, toy())
    with pytest.raises(Crash):
        Trainer(toy(), out_dir=folder, observer=CrashAtEpoch(2)).fit()
    assert not (folder / "summary.json").exists()


def test_a_finished_run_reads_back_with_its_history_and_weights(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    trainer = finished_run(folder)
    run = read_run(folder, weights=True)
    assert (run.ended, run.project, run.name) == ("completed", "preset:toy-mlp", "")
    assert run.experiment == toy() and run.folder == folder and not run.resumable
    assert [report.epoch for report in run.history] == [1, 2, 3]
    assert run.history[-1].val_loss == pytest.approx(trainer.history[-1]["val_loss"])
    assert run.summary["epochs_completed"] == 3
    assert run.state_dict is not None
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(run.state_dict[key], value)
    assert read_run(folder).state_dict is None  # listing reads no weights


def test_a_killed_run_is_interrupted_and_resumable_with_its_first_epoch(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    interrupted_run(folder)
    run = read_run(folder)
    assert run.ended == "interrupted" and run.resumable
    assert run.checkpoint == folder / "checkpoint.pt"
    assert [report.epoch for report in run.history] == [1]  # metrics.csv is written each epoch
    assert run.summary["status"] == "interrupted"


def test_labels_rename_hide_and_list_runs_by_project(tmp_path: Path) -> None:
    finished_run(tmp_path / "a-1")
    interrupted_run(tmp_path / "a-2")
    finished_run(tmp_path / "b-1", project="untitled")
    (tmp_path / "notes").mkdir()  # not a run folder
    (tmp_path / "stray.txt").write_text("x")
    update_run_label(tmp_path / "a-1", name="baseline")
    assert [run.folder.name for run in list_runs(tmp_path, "preset:toy-mlp")] == ["a-1", "a-2"]
    assert [run.name for run in list_runs(tmp_path, "preset:toy-mlp")] == ["baseline", ""]
    assert {run.folder.name for run in list_runs(tmp_path)} == {"a-1", "a-2", "b-1"}
    update_run_label(tmp_path / "a-2", hidden=True)
    assert [run.folder.name for run in list_runs(tmp_path, "preset:toy-mlp")] == ["a-1"]
    assert read_run_label(tmp_path / "a-2")["hidden"] is True
    assert list_runs(tmp_path / "missing") == []


def test_a_damaged_folder_is_left_out_of_the_list_and_refused_with_its_name(
    tmp_path: Path,
) -> None:
    finished_run(tmp_path / "good")
    finished_run(tmp_path / "bad")
    (tmp_path / "bad" / "summary.json").write_text("{ not json")
    assert [run.folder.name for run in list_runs(tmp_path)] == ["good"]
    with pytest.raises(RunHistoryError, match=r"bad/summary\.json: unreadable"):
        read_run(tmp_path / "bad")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunHistoryError, match="not a run folder"):
        read_run(tmp_path / "empty")
    (tmp_path / "good" / "metrics.csv").write_text("epoch,train_loss\n1,abc\n")
    with pytest.raises(RunHistoryError, match="not a metrics table"):
        read_run(tmp_path / "good")


def test_run_weights_load_safely_or_not_at_all(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    torch.save({"w": torch.zeros(2), "code": Path("x")}, folder / "model.pth")
    with pytest.raises(RunHistoryError, match="cannot be read safely"):
        load_run_weights(folder)
    with pytest.raises(RunHistoryError, match=r"left no model\.pth"):
        load_run_weights(tmp_path)


def test_project_keys_tell_files_presets_and_unsaved_projects_apart(tmp_path: Path) -> None:
    assert project_key(tmp_path / "a.toml") == f"file:{(tmp_path / 'a.toml').resolve()}"
    assert project_key(None, "moons-mlp") == "preset:moons-mlp"
    assert project_key(tmp_path / "a.toml", "moons-mlp").startswith("file:")
    assert project_key(None) == "untitled"


def test_the_current_model_names_itself_and_knows_when_the_stack_moved_on(tmp_path: Path) -> None:
    experiment = toy()
    fresh = CurrentModel.fresh(experiment)
    assert (fresh.kind, fresh.description, fresh.trained) == (FRESH, "fresh initialisation", False)
    trainer = Trainer(experiment)
    trainer.prepare()  # a run's initial weights: seeded like the fresh model's
    for key, value in fresh.weights().items():
        assert torch.equal(value, trainer.model.state_dict()[key])
    loaded = CurrentModel.of_file(tmp_path / "good.pth", experiment, fresh.weights())
    assert (loaded.kind, loaded.description, loaded.trained) == (
        FILE,
        "good.pth (loaded file)",
        True,
    )
    assert loaded.fits(experiment)
    fewer = dataclasses.replace(
        experiment.model,
        layers=(*experiment.model.layers[:-2], LayerSpec("Linear", {"out_features": 2})),
    )
    assert not loaded.fits(dataclasses.replace(experiment, model=fewer))
    other_data = dataclasses.replace(experiment.data, name="moons")
    assert not loaded.fits(dataclasses.replace(experiment, data=other_data))
