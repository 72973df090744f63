"""Sweeps in-process: planning, validation before any trial, the table, resuming, pruning."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PRESETS
from workbench.engine.control import RunControl
from workbench.engine.errors import ExperimentError
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.overrides import with_overrides
from workbench.engine.reports import BaseObserver, EpochReport, TrainingObserver
from workbench.engine.sweep import BaseSweepObserver, SweepRunner, TrialResult
from workbench.engine.sweep_plan import (
    SweepError,
    SweepSpec,
    Trial,
    parse_grid,
    parse_range,
    plan_trials,
    plan_values,
)


def digits(**overrides: Any) -> Experiment:
    base = load_experiment(PRESETS / "digits-mlp.toml")
    return with_overrides(base, {"train.epochs": 1, **overrides}, source="test")


def rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "sweep.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


class Recorder(BaseSweepObserver):
    """Keeps what a window would show; optionally stops the sweep at a given moment."""

    def __init__(self, control: RunControl | None = None, stop_after_trial: int | None = None):
        self.control = control
        self.stop_after_trial = stop_after_trial
        self.started: list[tuple[int, int | None]] = []
        self.skipped: list[int] = []
        self.finished: list[TrialResult] = []
        self.stopped: bool | None = None

    def on_trial_started(self, trial: Trial, resume_epoch: int | None) -> None:
        self.started.append((trial.number, resume_epoch))

    def on_trial_skipped(self, result: TrialResult) -> None:
        self.skipped.append(result.trial.number)

    def on_trial_finished(self, result: TrialResult) -> None:
        self.finished.append(result)
        if self.control is not None and result.trial.number == self.stop_after_trial:
            self.control.request_stop()

    def on_sweep_finished(self, results: list[TrialResult], stopped: bool) -> None:
        self.stopped = stopped


# --------------------------------------------------------------------------- planning


def test_grid_flags_parse_typed_values_and_keep_lists_whole() -> None:
    assert parse_grid("train.lr=0.1,0.01,1e-3") == ("train.lr", (0.1, 0.01, 0.001))
    assert parse_grid("train.optimizer=adam,sgd") == ("train.optimizer", ("adam", "sgd"))
    assert parse_grid("model.input_shape=[1,28,28],[784]") == (
        "model.input_shape",
        ([1, 28, 28], [784]),
    )
    assert parse_range("train.lr=1e-4:1e-1:log").scale == "log"


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("train.lr", "write KEY=VALUES"),
        ("train.lr=", "give values after '='"),
        ("train.lr=0.1:0.01", "LOW must be below HIGH"),
        ("train.lr=0:1:log", "a log range needs LOW above 0"),
        ("train.lr=1:2:cubic", "SCALE one of linear, log, int"),
        ("data.batch_size=8.5:64:int", "whole-number bounds"),
    ],
)
def test_bad_flags_are_named_errors(flag: str, message: str) -> None:
    parse = parse_range if ":" in flag else parse_grid
    with pytest.raises(SweepError, match=message):
        parse(flag)


def test_a_grid_is_every_combination_in_flag_order() -> None:
    spec = SweepSpec(
        digits(), grid=(("train.lr", (0.1, 0.01, 0.001)), ("data.batch_size", (32, 64)))
    )
    trials = plan_trials(spec)
    assert [dict(t.values) for t in trials][:3] == [
        {"train.lr": 0.1, "data.batch_size": 32},
        {"train.lr": 0.1, "data.batch_size": 64},
        {"train.lr": 0.01, "data.batch_size": 32},
    ]
    assert len(trials) == 6 and trials[5].name == "trial-006"
    assert trials[5].experiment.train.lr == 0.001 and trials[5].experiment.data.batch_size == 64


def test_a_random_sweep_with_a_fixed_seed_draws_the_same_values_twice() -> None:
    def spec(seed: int) -> SweepSpec:
        return SweepSpec(
            digits(),
            grid=(("data.batch_size", (16, 32, 64)),),
            ranges=(parse_range("train.lr=1e-4:1e-1:log"), parse_range("train.epochs=1:5:int")),
            random_trials=8,
            seed=seed,
        )

    first, again, other = plan_values(spec(7)), plan_values(spec(7)), plan_values(spec(8))
    assert first == again and first != other
    assert len(first) == 8
    for values in first:
        assert 1e-4 <= values["train.lr"] <= 1e-1 and values["data.batch_size"] in (16, 32, 64)
        assert isinstance(values["train.epochs"], int) and 1 <= values["train.epochs"] <= 5
    assert len({values["train.lr"] for values in first}) == 8


def test_list_entries_are_reachable_by_number() -> None:
    experiment = with_overrides(digits(), {"model.layers.1.out_features": 16}, source="test")
    assert experiment.model.layers[1].params["out_features"] == 16
    with pytest.raises(ExperimentError, match=r"model\.layers\.9: no entry '9'; the list has 6"):
        with_overrides(digits(), {"model.layers.9.out_features": 16}, source="test")
    with pytest.raises(ExperimentError, match=r"train\.lr: is a value, not a table"):
        with_overrides(digits(), {"train.lr.x": 1}, source="test")


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (("train.lrr", (0.1,)), r"command line: train\.lrr: unknown key; did you mean 'lr'\?"),
        (("data.batch_size", (32, 0)), r"data\.batch_size: 0 is out of range"),
        (("train.optimizer", ("adamm",)), r"'adamm' is not allowed \(did you mean 'adam'\?\)"),
        (("train.device", ("cuda:7",)), r"trial 1 \(train\.device=cuda:7\): device 'cuda:7'"),
        (
            ("model.layers.1.out_features", (0,)),
            r"trial 1 \(model\.layers\.1\.out_features=0\): layer 1 \(Linear\)",
        ),
    ],
)
def test_a_bad_key_or_value_fails_before_any_trial_runs(
    tmp_path: Path, grid: tuple[str, tuple[Any, ...]], message: str
) -> None:
    runner = SweepRunner(SweepSpec(digits(), grid=(grid,)), tmp_path / "sweep")
    with pytest.raises(ExperimentError, match=message):
        runner.prepare()
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    ("spec_args", "message"),
    [
        ({}, "nothing to sweep"),
        ({"ranges": (parse_range("train.lr=0.1:1"),)}, "--range needs --random N"),
        ({"grid": (("train.lr", (1.0,)), ("train.lr", (2.0,)))}, "train.lr is swept twice"),
        ({"grid": (("train.lr", (1.0,)),), "metric": "val_acc"}, "--metric 'val_acc'"),
        ({"grid": (("train.ddp.enabled", (True,)),)}, "train.ddp.enabled = true"),
    ],
)
def test_sweeps_that_make_no_sense_are_refused(spec_args: dict[str, Any], message: str) -> None:
    with pytest.raises(SweepError, match=message):
        plan_trials(SweepSpec(digits(), **spec_args))


# --------------------------------------------------------------------------- running


def test_a_six_trial_grid_writes_six_rows_and_six_run_folders(tmp_path: Path) -> None:
    spec = SweepSpec(
        digits(), grid=(("train.lr", (0.01, 0.003, 0.001)), ("data.batch_size", (64, 128)))
    )
    recorder = Recorder()
    results = SweepRunner(spec, tmp_path, recorder).run()
    table = rows(tmp_path)
    assert len(table) == 6 and [row["status"] for row in table] == ["completed"] * 6
    assert [(row["train.lr"], row["data.batch_size"]) for row in table][:2] == [
        ("0.01", "64"),
        ("0.01", "128"),
    ]
    for number, row in enumerate(table, start=1):
        folder = tmp_path / f"trial-{number:03d}"
        assert row["folder"] == folder.name
        assert {p.name for p in folder.iterdir()} >= {
            "model.pth",
            "checkpoint.pt",
            "metrics.csv",
            "summary.json",
            "experiment.toml",
        }
        summary = json.loads((folder / "summary.json").read_text())
        assert float(row["val_accuracy"]) == pytest.approx(summary["val_accuracy"])
        assert row["best_epoch (val_loss)"] == "1" and float(row["wall_seconds"]) > 0
        assert load_experiment(folder / "experiment.toml") == results[number - 1].trial.experiment
    assert [r.trial.number for r in recorder.finished] == [1, 2, 3, 4, 5, 6]
    assert recorder.stopped is False


class StopAfterFirstEpoch(BaseObserver):
    def __init__(self, control: RunControl) -> None:
        self.control = control

    def on_epoch_end(self, report: EpochReport) -> None:
        self.control.request_stop()


class StopInTrial(Recorder):
    """Stops the sweep after the first epoch of one trial, as Ctrl+C would."""

    def __init__(self, control: RunControl, trial_number: int) -> None:
        super().__init__()
        self.stopping_control = control
        self.trial_number = trial_number

    def training_observer(self, trial: Trial) -> TrainingObserver:
        if trial.number == self.trial_number:
            return StopAfterFirstEpoch(self.stopping_control)
        return BaseObserver()


def test_a_stopped_sweep_skips_finished_trials_and_resumes_the_interrupted_one(
    tmp_path: Path,
) -> None:
    spec = SweepSpec(digits(**{"train.epochs": 3}), grid=(("train.lr", (0.01, 0.003, 0.001)),))
    control = RunControl()
    first = StopInTrial(control, trial_number=2)
    SweepRunner(spec, tmp_path, first, control).run()
    assert first.stopped is True
    assert [row["status"] for row in rows(tmp_path)] == ["completed", "stopped", "pending"]
    assert not (tmp_path / "trial-003").exists()

    again = Recorder()
    SweepRunner(spec, tmp_path, again).run()
    assert again.skipped == [1]
    assert again.started == [(2, 2), (3, None)]  # trial 2 goes on from its epoch-1 checkpoint
    table = rows(tmp_path)
    assert [row["status"] for row in table] == ["completed"] * 3
    assert [row["epochs_completed"] for row in table] == ["3", "3", "3"]

    # The resumed trial ends where an uninterrupted run of the same experiment ends.
    alone = tmp_path / "alone"
    SweepRunner(SweepSpec(spec.experiment, grid=(("train.lr", (0.003,)),)), alone, Recorder()).run()
    resumed = json.loads((tmp_path / "trial-002" / "summary.json").read_text())
    uninterrupted = json.loads((alone / "trial-001" / "summary.json").read_text())
    assert resumed["val_loss"] == pytest.approx(uninterrupted["val_loss"], rel=1e-5)


def test_median_pruning_ends_trials_that_fall_behind(tmp_path: Path) -> None:
    spec = SweepSpec(
        digits(**{"train.epochs": 3}),
        grid=(("train.lr", (0.005, 0.01, 1e-5, 0.02)),),
        prune="median",
    )
    results = SweepRunner(spec, tmp_path, Recorder()).run()
    assert [r.status for r in results] == ["completed", "completed", "pruned", "completed"]
    pruned = results[2]
    assert pruned.epochs_completed == 1
    assert pruned.message.startswith("pruned at epoch 1: best val_loss")
    assert "median" in pruned.message and "of 2 earlier trials" in pruned.message
    summary = json.loads((tmp_path / "trial-003" / "summary.json").read_text())
    assert summary["status"] == "pruned" and summary["epochs_completed"] == 1
    assert rows(tmp_path)[2]["status"] == "pruned"


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    spec = SweepSpec(digits(**{"train.optimizer": "sgd"}), grid=(("train.lr", (1e30, 0.1)),))
    results = SweepRunner(spec, tmp_path, Recorder()).run()
    assert [r.status for r in results] == ["failed", "completed"]
    assert "the loss became" in results[0].message
    assert rows(tmp_path)[0]["message"].startswith("the loss became")


def test_a_folder_of_another_sweep_or_other_files_is_refused(tmp_path: Path) -> None:
    SweepRunner(SweepSpec(digits(), grid=(("train.lr", (0.01,)),)), tmp_path / "a").run()
    other = SweepRunner(SweepSpec(digits(), grid=(("train.lr", (0.02,)),)), tmp_path / "a")
    with pytest.raises(SweepError, match=r"holds a different sweep \(its planned differ\)"):
        other.prepare()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    busy = SweepRunner(SweepSpec(digits(), grid=(("train.lr", (0.01,)),)), tmp_path / "b")
    with pytest.raises(SweepError, match=r"not empty and holds no sweep\.json"):
        busy.prepare()
