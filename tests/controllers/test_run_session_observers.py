"""Extra observers registered on the run session: made per run, fed on the training thread."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from typing import Any

import pytest
from pytestqt.qtbot import QtBot
from torch import nn

from tests.conftest import PRESETS
from workbench.controllers import local_run
from workbench.controllers.run_session import RunSession
from workbench.engine.cpu_threads import TRAINING_NICENESS
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.reports import BaseObserver, BatchReport, EpochReport, RunStarted
from workbench.engine.trainer import Trainer


class ThreadRecorder(BaseObserver):
    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.events: list[str] = []
        self.threads: set[int] = set()

    def _seen(self, event: str) -> None:
        self.events.append(event)
        self.threads.add(threading.get_ident())

    def on_started(self, report: RunStarted) -> None:
        self._seen("started")

    def on_batch_end(self, report: BatchReport) -> None:
        self._seen("batch")

    def on_epoch_end(self, report: EpochReport) -> None:
        self._seen("epoch")

    def on_after_backward(self, model: nn.Module) -> None:
        self._seen("backward")

    def on_finished(self, summary: dict[str, Any]) -> None:
        self._seen("finished")


def toy() -> Experiment:
    experiment = load_experiment(PRESETS / "toy-mlp.toml")
    return dataclasses.replace(
        experiment, train=dataclasses.replace(experiment.train, device="cpu")
    )


def run(qtbot: QtBot, controller: RunSession) -> None:
    with qtbot.waitSignal(controller.run_ended, timeout=30_000):
        controller.start(toy())


def test_each_run_gets_a_fresh_observer_fed_on_the_training_thread(qtbot: QtBot) -> None:
    controller = RunSession()
    made: list[ThreadRecorder] = []

    def factory(trainer: Trainer) -> ThreadRecorder:
        made.append(ThreadRecorder(trainer))
        return made[-1]

    controller.add_observer_factory(factory)
    controller.add_observer_factory(factory)  # registering twice changes nothing
    summaries: list[dict[str, Any]] = []
    controller.run_succeeded.connect(summaries.append)
    try:
        run(qtbot, controller)
        run(qtbot, controller)
    finally:
        controller.shutdown()
    assert len(made) == 2 and made[0] is not made[1]
    assert made[0].trainer is not made[1].trainer
    for recorder in made:
        events, trainer = recorder.events, recorder.trainer
        assert events[0] == "started" and events[-1] == "finished"
        assert events.count("epoch") == len(trainer.history) == 3
        assert events.count("backward") == events.count("batch") == trainer.step == 6
        # Without accumulation every batch is one step: the hook comes right before its report.
        assert all(events[i - 1] == "backward" for i, e in enumerate(events) if e == "batch")
        assert recorder.threads and threading.get_ident() not in recorder.threads
    assert len(summaries) == 2  # the controller's own signals still arrive


def test_a_factory_may_skip_a_run_and_can_be_removed(qtbot: QtBot) -> None:
    controller = RunSession()
    calls: list[Trainer] = []

    def factory(trainer: Trainer) -> None:
        calls.append(trainer)

    controller.add_observer_factory(factory)
    try:
        run(qtbot, controller)
        controller.remove_observer_factory(factory)
        run(qtbot, controller)
    finally:
        controller.shutdown()
    assert len(calls) == 1
    result = controller.last_result
    assert result is not None and len(result.history) == 3  # trained normally


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux thread priorities")
def test_the_training_thread_yields_to_the_gui_thread(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before each run the GUI thread hands back its idle OpenMP team (it made the training
    thread's team sleep between operations); the training thread runs at a lower priority."""
    released_on: list[int] = []
    real_release = local_run.release_idle_cpu_threads
    monkeypatch.setattr(
        local_run,
        "release_idle_cpu_threads",
        lambda: (released_on.append(threading.get_ident()), real_release())[1],
    )
    niceness: list[int] = []

    class NiceRecorder(BaseObserver):
        def on_started(self, report: RunStarted) -> None:
            niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    controller = RunSession()
    controller.add_observer_factory(lambda _trainer: NiceRecorder())
    gui_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    try:
        run(qtbot, controller)
    finally:
        controller.shutdown()
    assert released_on == [threading.get_ident()]
    assert niceness == [min(gui_nice + TRAINING_NICENESS, 19)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == gui_nice
