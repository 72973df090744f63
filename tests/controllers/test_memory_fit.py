"""Will it fit, in the background: estimated once the edits pause, again only when it matters."""

from __future__ import annotations

import dataclasses

import pytest
from pytestqt.qtbot import QtBot

from tests.conftest import PRESETS
from workbench.controllers.memory_fit import MemoryFitChecker
from workbench.engine import memory_estimate
from workbench.engine.devices import available_devices
from workbench.engine.experiment import Experiment, load_experiment


def digits(**train: object) -> Experiment:
    experiment = load_experiment(PRESETS / "digits-mlp.toml")
    changes = {"device": "cpu", **train}
    return dataclasses.replace(experiment, train=dataclasses.replace(experiment.train, **changes))


def test_estimates_follow_batch_size_and_precision_but_not_the_rate(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory_estimate, "free_memory", lambda device: 10 * 2**30)
    checker = MemoryFitChecker(available_devices(), delay_ms=10)
    base = digits()
    with qtbot.waitSignal(checker.estimated, timeout=60_000) as first:
        checker.request(base)
    fit = first.args[0]
    assert fit.verdict == "fits" and fit.free == 10 * 2**30
    assert fit.estimate.batch_size == 32 and fit.estimate.optimizer == "adam"
    assert fit.text == (
        f"Peak training memory ≈ {memory_estimate.format_bytes(fit.estimate.peak)}; "
        "free RAM on cpu: 10.00 GiB: fits"
    )
    qtbot.waitUntil(lambda: not checker.jobs.is_busy)
    assert checker.is_current(digits(lr=0.1))  # the rate does not change the memory
    checker.request(digits(lr=0.1))
    assert not checker.timer.isActive() and not checker.jobs.is_busy

    bigger = dataclasses.replace(base, data=dataclasses.replace(base.data, batch_size=512))
    assert not checker.is_current(bigger)
    with qtbot.waitSignal(checker.estimated, timeout=60_000) as second:
        checker.request(digits(optimizer="sgd"))  # superseded before the pause ends
        checker.request(bigger)
    assert second.args[0].estimate.batch_size == 512
    assert second.args[0].estimate.train_peak > fit.estimate.train_peak
    assert checker.is_current(bigger)
    checker.shutdown()
    checker.request(digits(optimizer="sgd"))  # after shutdown: nothing starts
    assert not checker.timer.isActive()


def test_a_model_that_cannot_be_estimated_says_so(qtbot: QtBot) -> None:
    checker = MemoryFitChecker(available_devices(), delay_ms=10)
    broken = dataclasses.replace(digits(), data=dataclasses.replace(digits().data, name="csv"))
    with qtbot.waitSignal(checker.failed, timeout=60_000) as failed:
        checker.request(broken)
    assert "csv" in failed.args[0]
    assert checker.latest is None
    checker.shutdown()
