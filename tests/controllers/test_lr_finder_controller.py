"""The learning-rate finder on a worker: its steps stream as signals; Stop ends the ramp early."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from tests.conftest import PRESETS
from workbench.controllers.lr_finder_controller import LRFinderController
from workbench.engine.devices import available_devices
from workbench.engine.experiment import load_experiment


def test_steps_stream_and_stop_ends_the_ramp_with_what_it_saw(qtbot: QtBot) -> None:
    experiment = load_experiment(PRESETS / "digits-mlp.toml")
    experiment = dataclasses.replace(
        experiment, train=dataclasses.replace(experiment.train, device="cpu")
    )
    controller = LRFinderController(available_devices())
    steps: list[tuple[int, float]] = []

    def stepped(step: int, rate: float, _loss: float, _smoothed: float) -> None:
        steps.append((step, rate))
        if step == 9:
            controller.stop()  # on the worker: the next step does not run

    controller.stepped.connect(stepped, Qt.ConnectionType.DirectConnection)
    with qtbot.waitSignal(controller.found, timeout=60_000) as found:
        controller.start(experiment)
    result = found.args[0]
    assert result.ended == "stopped"
    assert [step for step, _ in steps] == list(range(10))
    assert list(result.rates) == [rate for _, rate in steps]
    assert result.suggestion is not None  # suggested from the ten steps it took
    qtbot.waitUntil(lambda: not controller.is_running)

    with qtbot.waitSignal(controller.failed, timeout=60_000) as failed:
        controller.start(experiment, start=1.0, end=0.1)
    assert failed.args[0] == (
        "command line: --start 1 --end 0.1: the rates must be above 0 and --start below --end"
    )
    controller.shutdown()
