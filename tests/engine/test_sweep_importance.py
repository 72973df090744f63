"""Parameter importance of a sweep: rank correlation and random-forest shares."""

from __future__ import annotations

from typing import Any

import pytest

from workbench.engine.experiment import frozen_mapping
from workbench.engine.sweep import TrialResult
from workbench.engine.sweep_importance import encode, parameter_importance, trial_metric
from workbench.engine.sweep_plan import Trial


def result(number: int, accuracy: float | None, **values: Any) -> TrialResult:
    trial = Trial(number, frozen_mapping(values))
    return TrialResult(trial, status="completed", best_val_accuracy=accuracy,
                       final={"val_accuracy": accuracy})  # fmt: skip


def test_the_key_that_drives_the_metric_gets_the_importance() -> None:
    # Accuracy rises with lr; batch size alternates with no effect.
    results = [
        result(i + 1, 0.5 + 0.1 * i, **{"train.lr": lr, "data.batch_size": 32 if i % 2 else 64})
        for i, lr in enumerate([0.001, 0.003, 0.01, 0.03, 0.1, 0.3])
    ]
    found = {
        item.key: item
        for item in parameter_importance(results, ["train.lr", "data.batch_size"], "val_accuracy")
    }
    assert found["train.lr"].correlation == pytest.approx(1.0)
    assert found["data.batch_size"].correlation is not None
    assert abs(found["data.batch_size"].correlation) < 0.5
    lr_share, batch_share = found["train.lr"].forest, found["data.batch_size"].forest
    assert lr_share is not None and batch_share is not None
    assert lr_share + batch_share == pytest.approx(1.0)
    assert lr_share > 0.7


def test_text_values_get_a_forest_share_but_no_correlation() -> None:
    results = [
        result(1, 0.9, **{"train.optimizer": "adam"}),
        result(2, 0.2, **{"train.optimizer": "sgd"}),
        result(3, 0.88, **{"train.optimizer": "adam"}),
        result(4, 0.25, **{"train.optimizer": "sgd"}),
    ]
    (item,) = parameter_importance(results, ["train.optimizer"], "val_accuracy")
    assert item.correlation is None
    assert item.forest == pytest.approx(1.0)
    assert encode(["adam", "sgd", "adam"]).tolist() == [0.0, 1.0, 0.0]


def test_too_few_or_unscored_trials_give_no_numbers() -> None:
    results = [result(1, 0.5, **{"train.lr": 0.1}), result(2, None, **{"train.lr": 0.2})]
    (item,) = parameter_importance(results, ["train.lr"], "val_accuracy")
    assert item.correlation is None and item.forest is None
    assert trial_metric(results[1], "val_accuracy") is None


def test_a_constant_metric_has_no_importance() -> None:
    results = [result(i, 0.5, **{"train.lr": lr}) for i, lr in enumerate([0.1, 0.2, 0.3], 1)]
    (item,) = parameter_importance(results, ["train.lr"], "val_accuracy")
    assert item.correlation is None and item.forest is None
