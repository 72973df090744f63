"""The run session with a stand-in engine: every run ends in one RunResult, reports are paced."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from pytestqt.qtbot import QtBot
from torch import nn

from tests import factories
from tests.conftest import PRESETS
from workbench.controllers.run_session import RunSession
from workbench.engine.errors import DatasetError
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.reports import BaseObserver, TrainingObserver
from workbench.engine.run_history import RunResult, read_run, read_run_label


class FakeTrainer:
    """Stands in for the engine's Trainer: reports its epochs at once, or fails as told."""

    fail: BaseException | None = None
    batches = 30

    def __init__(self, experiment: Experiment, **options: Any) -> None:
        self.experiment = experiment
        self.out_dir: Path | None = options.get("out_dir")
        self.observer: TrainingObserver = BaseObserver()
        self.history: list[dict[str, Any]] = []
        self.failed_reported = False

    def prepare(self) -> None:
        torch.manual_seed(0)
        self.model = nn.Linear(2, 2)

    def fit(self) -> dict[str, Any]:
        observer = self.observer
        observer.on_started(factories.started())
        for epoch in (1, 2):
            for index in range(self.batches):
                observer.on_batch_end(factories.batch(epoch, index, self.batches))
            if self.fail is not None and epoch == 2:
                raise self.fail
            report = factories.epoch_report(epoch, epochs=2)
            observer.on_epoch_end(report)
            self.history.append(dataclasses.asdict(report))
        summary = factories.summary()
        observer.on_finished(summary)
        return summary


def experiment() -> Experiment:
    return load_experiment(PRESETS / "toy-mlp.toml")


def run(qtbot: QtBot, session: RunSession, **options: Any) -> tuple[RunResult, list[Any]]:
    """Start a run and wait for its end; (the RunResult, every signal in order)."""
    seen: list[Any] = []
    for name in ("run_started", "batches_reported", "epoch_ended", "run_succeeded", "run_failed",
                 "state_changed", "run_ended"):  # fmt: skip
        getattr(session, name).connect(lambda value, name=name: seen.append((name, value)))
    with qtbot.waitSignal(session.run_ended, timeout=10_000) as ended:
        session.start(experiment(), **options)
    assert isinstance(ended.args[0], RunResult)
    return ended.args[0], seen


@pytest.fixture
def session(qtbot: QtBot) -> Any:
    made = RunSession(make_trainer=FakeTrainer)
    yield made
    assert made.shutdown()


def test_a_finished_run_ends_in_one_result_with_its_cpu_weights(
    qtbot: QtBot, session: RunSession
) -> None:
    result, seen = run(qtbot, session)
    names = [name for name, _ in seen]
    assert names[:2] == ["state_changed", "run_started"]  # "running", then the run's report
    assert names[-3:] == ["run_succeeded", "state_changed", "run_ended"]
    assert names.count("run_ended") == 1 and session.last_result is result
    assert result.ended == "completed" and result.message == ""
    assert [report.epoch for report in result.history] == [1, 2]
    assert result.summary["status"] == "completed"
    with pytest.raises(TypeError):
        result.summary["status"] = "changed"  # type: ignore[index]
    assert result.state_dict is not None and set(result.state_dict) == {"weight", "bias"}
    assert all(tensor.device.type == "cpu" for tensor in result.state_dict.values())
    torch.manual_seed(0)
    assert torch.equal(result.state_dict["weight"], nn.Linear(2, 2).weight.detach())


def test_batches_reach_the_window_in_groups_all_of_them_in_order(
    qtbot: QtBot, session: RunSession
) -> None:
    _, seen = run(qtbot, session)
    groups = [value for name, value in seen if name == "batches_reported"]
    batches = [(report.epoch, report.batch) for group in groups for report in group]
    assert batches == [(e, i) for e in (1, 2) for i in range(FakeTrainer.batches)]
    assert len(groups) < len(batches) / 5  # paced: far fewer signals than batches
    assert session.batches_seen == 2 * FakeTrainer.batches
    assert session.last_batch is not None and session.last_batch.batch == FakeTrainer.batches - 1


def test_an_unexpected_error_ends_the_run_as_failed_in_one_line(
    qtbot: QtBot, session: RunSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeTrainer, "fail", ValueError("boom"))
    result, seen = run(qtbot, session)
    message = "Training stopped by an unexpected error: ValueError: boom"
    assert [value for name, value in seen if name == "run_failed"] == [message]
    assert (result.ended, result.message, result.state_dict) == ("failed", message, None)
    assert [report.epoch for report in result.history] == [1]  # what it did before failing
    assert session.state == "idle" and not session.is_running


def test_bad_input_is_reported_once_with_its_own_message(
    qtbot: QtBot, session: RunSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeTrainer, "fail", DatasetError("data.path: no such file"))
    result, seen = run(qtbot, session)
    assert [value for name, value in seen if name == "run_failed"] == ["data.path: no such file"]
    assert result.ended == "failed"


def test_a_project_run_labels_its_folder(qtbot: QtBot, session: RunSession, tmp_path: Path) -> None:
    result, _ = run(qtbot, session, out_dir=tmp_path / "run", project="preset:toy-mlp")
    label = read_run_label(tmp_path / "run")
    assert label["project"] == "preset:toy-mlp" and result.project == "preset:toy-mlp"
    assert read_run(tmp_path / "run").experiment == experiment()
    assert result.folder == tmp_path / "run"


def test_a_second_start_while_running_is_refused(qtbot: QtBot, session: RunSession) -> None:
    with qtbot.waitSignal(session.run_ended, timeout=10_000):
        session.start(experiment(), start_paused=True)
        assert session.state == "paused" and session.is_running
        with pytest.raises(RuntimeError, match="already in progress"):
            session.start(experiment())
        session.stop()
