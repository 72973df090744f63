"""The optional `on_after_backward(model)` hook: once per optimizer step, with the gradients."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from tests.conftest import PRESETS
from workbench.engine.experiment import load_experiment
from workbench.engine.reports import BaseObserver, FanOutObserver, RecordingObserver
from workbench.engine.trainer import Trainer


class GradientWatcher(BaseObserver):
    """Records, per call, whether every parameter had a gradient and the optimizer step count."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.calls: list[tuple[int, bool]] = []

    def on_after_backward(self, model: nn.Module) -> None:
        ready = all(p.grad is not None for p in model.parameters())
        self.calls.append((self.trainer.step, ready))


def toy(**train: object) -> Trainer:
    experiment = load_experiment(PRESETS / "toy-mlp.toml")
    spec = dataclasses.replace(experiment.train, device="cpu", **train)  # type: ignore[arg-type]
    return Trainer(dataclasses.replace(experiment, train=spec))


def test_the_hook_runs_before_each_step_while_the_gradients_exist() -> None:
    trainer = toy(accumulate_grad_batches=2)
    watcher = GradientWatcher(trainer)
    trainer.observer = watcher
    trainer.fit()
    # Called before the step counter moves: steps 0, 1, 2, ... in order, each with gradients.
    assert watcher.calls == [(step, True) for step in range(trainer.step)]
    assert trainer.step == 3  # 6 batches, 2 per step


def test_fan_out_forwards_the_hook_only_to_observers_that_have_it() -> None:
    trainer = toy()
    watcher, recorder = GradientWatcher(trainer), RecordingObserver()
    trainer.observer = FanOutObserver(recorder, watcher)
    trainer.fit()
    assert len(watcher.calls) == trainer.step == len(recorder.batches) == 6


def test_an_observer_without_the_hook_trains_exactly_as_before() -> None:
    with_hook, without = toy(), toy()
    with_hook.observer = GradientWatcher(with_hook)
    with_hook.fit()
    without.fit()
    for a, b in zip(with_hook.model.parameters(), without.model.parameters(), strict=True):
        assert torch.equal(a, b)
