"""The training doctor's line when the trainer's loss guard ends a run (explosion, NaN)."""

from __future__ import annotations

import dataclasses
import re

from pytestqt.qtbot import QtBot

from tests.ui.test_insight_panel import Rig, preset, rig  # noqa: F401 - rig is a fixture
from workbench.engine.experiment import LayerSpec
from workbench.engine.insight.doctor import diagnose, stopped_by_loss_guard


def test_an_exploding_loss_ends_the_run_with_the_doctors_line_quoting_the_guard(
    qtbot: QtBot,
    rig: Rig,  # noqa: F811
) -> None:
    panel, controller, document = rig
    relu = tuple(
        LayerSpec("ReLU") if layer.type == "Tanh" else layer
        for layer in document.experiment.model.layers
    )
    experiment = preset("moons-mlp", 3, optimizer="sgd", lr=1e4)  # finite, but 1e7 times over
    experiment = dataclasses.replace(
        experiment, model=dataclasses.replace(experiment.model, layers=relu)
    )
    with qtbot.waitSignal(controller.run_failed, timeout=30_000) as failed:
        controller.start(experiment)
    qtbot.waitUntil(lambda: not controller.is_running)
    guard = str(failed.args[0])
    assert re.search(r"the loss became [0-9.]+e\+\d+ at epoch 1, batch \d+, up from", guard)
    assert not panel.banner.isHidden()
    text = panel.banner.text()
    assert "Training diverged" in text
    assert guard.split(";")[0].removeprefix("the ") in text  # its numbers, not "NaN"
    assert "infinite or NaN" not in text
    assert "Lower the learning rate (now 10000)" in text


def test_the_validation_guard_counts_too_and_other_failures_do_not() -> None:
    failure = "the validation loss became nan at epoch 2; lower the learning rate (now 0.5) or ..."
    assert stopped_by_loss_guard(failure)
    assert not stopped_by_loss_guard("data.root: no such folder")
    assert not stopped_by_loss_guard(None)
    [finding] = diagnose([], failure=failure)
    assert finding.title == "Training diverged"
    assert finding.message.startswith("the validation loss became nan at epoch 2:")
    assert "(now 0.5)" in finding.suggestion
