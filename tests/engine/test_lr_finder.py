"""The learning-rate finder: its suggestion trains, and it leaves the model exactly as it was."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.conftest import PRESETS
from workbench.cli import main
from workbench.engine.errors import ExperimentError
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.lr_finder import (
    find_lr_for_experiment,
    find_lr_for_trainer,
    ramp,
    suggest,
)
from workbench.engine.overrides import with_overrides
from workbench.engine.trainer import Trainer


def digits_mlp(**overrides: object) -> Experiment:
    return with_overrides(load_experiment(PRESETS / "digits-mlp.toml"), overrides, source="test")


def test_the_suggestion_on_digits_mlp_trains_to_90_percent_in_5_epochs() -> None:
    result, _ = find_lr_for_experiment(digits_mlp())
    assert result.suggestion is not None
    assert 1e-4 < result.suggestion < 1.0, result.reason
    assert len(result.rates) == 100 and result.ended == "reached the end rate 10"
    trained = Trainer(digits_mlp(**{"train.lr": result.suggestion, "train.epochs": 5})).fit()
    assert trained["val_accuracy"] >= 0.90, (result.suggestion, result.reason)


def test_the_weights_optimizer_and_random_state_after_the_finder_equal_those_before() -> None:
    experiment = digits_mlp(**{"train.epochs": 2, "train.optimizer": "sgd", "train.momentum": 0.9})
    trainer = Trainer(experiment)
    trainer.prepare()
    trainer.optimizer.step()  # give the optimizer a state worth restoring (momentum buffers)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    optimizer_before = trainer.optimizer.state_dict()
    momentum_before = [s["momentum_buffer"] for s in optimizer_before["state"].values()]
    rng_before = torch.get_rng_state()
    result = find_lr_for_trainer(trainer, steps=30)
    assert len(result.rates) == 30
    after = trainer.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[key], after[key]) for key in before)
    state = trainer.optimizer.state_dict()
    assert [g["lr"] for g in state["param_groups"]] == [experiment.train.lr]
    momentum_after = [s["momentum_buffer"] for s in state["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(momentum_before, momentum_after, strict=True))
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert trainer.model.training is True


def test_training_after_the_finder_matches_training_without_it() -> None:
    experiment = digits_mlp(**{"train.epochs": 2})
    _, trainer = find_lr_for_experiment(experiment, steps=20)
    after_finder = trainer.fit()
    untouched = Trainer(experiment).fit()
    assert after_finder["val_loss"] == untouched["val_loss"]
    assert after_finder["train_accuracy"] == untouched["train_accuracy"]


def test_the_model_is_restored_when_the_ramp_fails_midway() -> None:
    trainer = Trainer(digits_mlp())
    trainer.prepare()
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    def explode(step: int, rate: float, loss: float, smoothed: float) -> None:
        if step == 5:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        find_lr_for_trainer(trainer, on_step=explode)
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in before.items())


def test_a_diverging_ramp_stops_and_says_why() -> None:
    experiment = digits_mlp(**{"train.optimizer": "sgd"})
    result, _ = find_lr_for_experiment(experiment, start=1e-3, end=1e6, steps=60)
    assert len(result.rates) < 60
    assert result.ended.startswith(("the loss became nan", "the loss became inf", "the smoothed"))
    assert result.suggestion is not None and result.suggestion < result.rates[-1]


def test_suggest_takes_the_lower_of_steepest_descent_and_a_tenth_of_the_minimum() -> None:
    rates = ramp(1e-4, 1.0, 41)  # ten steps per decade
    # Flat, a steep fall between 1e-3 and 1e-2, a slow fall to a minimum at 0.1, then up.
    smoothed = []
    for rate in rates:
        decade = math.log10(rate)
        if decade < -3:
            smoothed.append(2.0)
        elif decade < -2:
            smoothed.append(2.0 - 1.5 * (decade + 3))
        elif decade <= -1:
            smoothed.append(0.5 - 0.2 * (decade + 2))
        else:
            smoothed.append(0.3 + 3 * (decade + 1))
    suggestion, reason = suggest(rates, smoothed)
    assert suggestion is not None and 1e-3 <= suggestion <= 1e-2  # steep part: below 0.1/10
    assert reason.startswith("the steepest descent of the smoothed loss (-1.5 per tenfold rate)")
    # With the steep part late (just before the minimum), a tenth of the minimum is lower.
    late = [2.0] * 35 + [1.5, 1.0, 0.5, 0.4, 0.3, 0.9]
    suggestion, reason = suggest(rates, late)
    assert suggestion == pytest.approx(rates[39] / 10)
    assert reason.startswith(f"a tenth of {rates[39]:.3g}, the rate at the lowest smoothed loss")
    assert suggest(rates[:2], [1.0, 0.5]) == (
        None,
        "too few steps to suggest a rate; lower --start or raise --steps",
    )


@pytest.mark.parametrize(
    ("start", "end", "steps", "message"),
    [
        (1e-7, 10.0, 101, r"--steps 101: use between 2 and 100 steps"),
        (1.0, 0.1, 50, r"--start 1 --end 0.1: the rates must be above 0"),
        (0.0, 0.1, 50, r"the rates must be above 0 and --start below --end"),
    ],
)
def test_bad_ramps_are_refused(start: float, end: float, steps: int, message: str) -> None:
    with pytest.raises(ExperimentError, match=message):
        find_lr_for_experiment(digits_mlp(), start=start, end=end, steps=steps)


def test_the_command_prints_a_table_the_suggestion_and_writes_the_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps_file = tmp_path / "lr.csv"
    assert main(["lr-find", "digits-mlp", "--steps", "40", "--csv", str(steps_file)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Learning-rate finder: 40 steps from 1e-07 to 10 (adam, batch 32)")
    assert "<- suggested" in out and "Suggested learning rate: " in out
    assert "The model and optimizer were restored. To use it: train.lr = " in out
    lines = steps_file.read_text().splitlines()
    assert lines[0] == "step,lr,loss,smoothed_loss" and len(lines) == 41
    assert main(["lr-find", "digits-mlp", "--steps", "500"]) == 2
    assert (
        "error: command line: --steps 500: use between 2 and 100 steps" in capsys.readouterr().err
    )
