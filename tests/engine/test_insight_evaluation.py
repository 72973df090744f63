"""Evaluation: confusion matrix, per-class precision/recall, misclassified samples by loss."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tests.conftest import PRESETS
from workbench.engine.experiment import load_experiment
from workbench.engine.insight.evaluation import (
    SampleSet,
    dataset_batches,
    display_image,
    evaluate_classifier,
)
from workbench.engine.trainer import Trainer


class FixedOutputs(nn.Module):
    """Returns the logits stored for each sample index (the input is the index)."""

    def __init__(self, logits: list[list[float]]) -> None:
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[x.long().view(-1)]


def handmade() -> tuple[FixedOutputs, TensorDataset]:
    # True classes 0,0,0,1,1,2; predictions 0,1,1,1,0,2 (sample 2 more confidently wrong than 1).
    logits = [
        [3.0, 0.0, 0.0],
        [0.0, 0.5, 0.0],
        [0.0, 4.0, 0.0],
        [0.0, 2.0, 0.0],
        [1.0, 0.0, 0.0],
        [0.0, 0.0, 2.0],
    ]
    x = torch.arange(6, dtype=torch.float32).view(-1, 1)
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    return FixedOutputs(logits), TensorDataset(x, y)


def test_confusion_matrix_counts_per_class_metrics_and_cells() -> None:
    model, dataset = handmade()
    result = evaluate_classifier(model, dataset_batches(dataset, batch_size=4), ["a", "b", "c"])
    assert result.confusion.tolist() == [[1, 2, 0], [1, 1, 0], [0, 0, 1]]
    assert result.confusion.sum() == result.size == 6
    assert result.accuracy == pytest.approx(3 / 6)
    rows = {row.name: row for row in result.per_class()}
    assert rows["a"].precision == pytest.approx(1 / 2) and rows["a"].recall == pytest.approx(1 / 3)
    assert rows["b"].precision == pytest.approx(1 / 3) and rows["b"].recall == pytest.approx(1 / 2)
    assert rows["c"].f1 == pytest.approx(1.0) and rows["c"].support == 1
    assert result.normalized_confusion()[0].tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    # Clicking cell (true a, predicted b) shows samples 2 then 1: the worse mistake first.
    assert result.samples_in_cell(0, 1).tolist() == [2, 1]
    assert result.samples_in_cell(2, 0).tolist() == []
    assert result.misclassified().tolist() == [2, 4, 1]  # losses 4.0, 1.55, 1.29
    losses = result.losses[result.misclassified()]
    assert np.all(np.diff(losses) <= 0)
    assert result.losses[0] == pytest.approx(-torch.log_softmax(torch.tensor([3.0, 0, 0]), 0)[0])


def test_empty_classes_give_none_instead_of_dividing_by_zero() -> None:
    model, dataset = handmade()
    result = evaluate_classifier(model, dataset_batches(dataset), ["a", "b", "c", "never"])
    never = result.per_class()[3]
    assert (never.precision, never.recall, never.f1, never.support) == (None, None, None, 0)
    assert result.normalized_confusion()[3].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_digits_confusion_matrix_sums_to_the_validation_size_and_cells_hold_their_samples() -> None:
    experiment = load_experiment(PRESETS / "digits-mlp.toml")
    experiment = dataclasses.replace(
        experiment, train=dataclasses.replace(experiment.train, epochs=2, device="cpu")
    )
    trainer = Trainer(experiment)
    trainer.fit()
    info = trainer.loaders.info
    result = evaluate_classifier(trainer.model, trainer.loaders.val, info.class_names)
    assert result.confusion.shape == (10, 10)
    assert result.confusion.sum() == info.val_size == 359
    summary_accuracy = trainer.history[-1]["val_accuracy"]
    assert result.accuracy == pytest.approx(summary_accuracy)
    val_x, val_y = trainer.loaders.val.x, trainer.loaders.val.y
    with torch.inference_mode():
        predicted = trainer.model(val_x).argmax(1)
    for true_class in range(10):
        for predicted_class in range(10):
            chosen = result.samples_in_cell(true_class, predicted_class)
            assert len(chosen) == result.confusion[true_class, predicted_class]
            assert torch.all(val_y[chosen] == true_class)
            assert torch.all(predicted[chosen] == predicted_class)


def test_sample_set_shows_images_rows_and_labels() -> None:
    images = torch.randn(3, 1, 8, 8) * 0.3 + 0.1
    samples = SampleSet(TensorDataset(images, torch.tensor([4, 5, 6])), "image", list("0123456"))
    picture = samples.image(1)
    assert picture.shape == (8, 8) and picture.min() == 0.0 and picture.max() == 1.0
    assert samples.label(2) == 6 and len(samples) == 3
    colour = display_image(torch.rand(3, 4, 5))
    assert colour.shape == (4, 5, 3)
    rows = SampleSet(
        TensorDataset(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([0])), "table", ["x"]
    )
    assert rows.row(0).tolist() == [1.0, 2.0, 3.0]
    assert rows.feature_names == ("feature 0", "feature 1", "feature 2")
