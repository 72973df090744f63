"""The generation controller's epoch sampler: samples for text runs only, and never a stopped run."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from pytestqt.qtbot import QtBot
from torch import nn

from tests.controllers.test_run_session_observers import toy
from tests.factories import epoch_report
from tests.ui.test_generate_window import TEXT, TINY_GPT
from workbench.controllers.current_model import CurrentModelHolder
from workbench.controllers.generation import GenerationController, GuardedSampler
from workbench.engine.current_model import CurrentModel
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.experiment_model import build_experiment_model


def text_experiment(tmp_path: Path) -> Experiment:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    project = tmp_path / "tiny-gpt.toml"
    project.write_text(TINY_GPT.format(path=str(corpus)), encoding="utf-8")
    return load_experiment(project)


@pytest.fixture
def controller(qtbot: QtBot) -> Any:
    made = GenerationController(CurrentModelHolder(CurrentModel.fresh(toy())))
    yield made
    made.shutdown()


def sampler_for(controller: GenerationController, experiment: Experiment) -> Any:
    return controller._sampler_for(SimpleNamespace(experiment=experiment))  # type: ignore[arg-type]


class Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def test_a_text_run_gets_a_sample_from_its_model_at_each_epochs_end(
    qtbot: QtBot, controller: GenerationController, tmp_path: Path
) -> None:
    experiment = text_experiment(tmp_path)
    sampler = sampler_for(controller, experiment)
    assert isinstance(sampler, GuardedSampler)
    sampler.on_started(None)
    torch.manual_seed(0)
    model = build_experiment_model(experiment).module
    with qtbot.waitSignal(controller.sample_ready) as sample:
        sampler.on_epoch_model(model, epoch_report(3))
    epoch, text = sample.args
    assert epoch == 3 and len(text) == 120 and set(text) <= set(TEXT)


def test_other_runs_get_no_sampler(controller: GenerationController) -> None:
    assert sampler_for(controller, toy()) is None


def test_a_failing_sample_is_reported_once_and_never_stops_the_run(
    qtbot: QtBot, controller: GenerationController, tmp_path: Path
) -> None:
    sampler = sampler_for(controller, text_experiment(tmp_path))
    sampler.on_started(None)
    with qtbot.waitSignal(controller.failed) as failed:
        sampler.on_epoch_model(Broken(), epoch_report(1))  # raises nothing here
    assert failed.args == ["No more samples during this run: RuntimeError: boom"]
    with qtbot.assertNotEmitted(controller.failed), qtbot.assertNotEmitted(controller.sample_ready):
        sampler.on_epoch_model(Broken(), epoch_report(2))


def test_a_text_that_cannot_be_read_is_reported_when_the_run_starts(
    qtbot: QtBot, controller: GenerationController, tmp_path: Path
) -> None:
    experiment = text_experiment(tmp_path)
    missing = dataclasses.replace(experiment.data, path=str(tmp_path / "gone.txt"))
    sampler = sampler_for(controller, dataclasses.replace(experiment, data=missing))
    with qtbot.waitSignal(controller.failed) as failed:
        sampler.on_started(None)
    message = failed.args[0]
    assert message.startswith("No more samples during this run: ") and "gone.txt" in message
    with qtbot.assertNotEmitted(controller.sample_ready):
        sampler.on_epoch_model(Broken(), epoch_report(1))
