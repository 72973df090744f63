"""Decision boundary: a coloured field of the predicted class that follows the training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import PRESETS
from workbench.engine.experiment import load_experiment
from workbench.engine.insight.decision_boundary import (
    BoundaryHistory,
    LiveBoundary,
    cell_centres,
    decision_boundary,
    padded_ranges,
)
from workbench.engine.reports import FanOutObserver, RecordingObserver
from workbench.engine.trainer import Trainer


def moons_trainer(epochs: int = 4) -> Trainer:
    experiment = load_experiment(PRESETS / "moons-mlp.toml")
    train = dataclasses.replace(experiment.train, epochs=epochs, device="cpu")
    return Trainer(dataclasses.replace(experiment, train=train))


def test_boundary_changes_during_training_and_agrees_with_the_model_on_the_data() -> None:
    trainer = moons_trainer()
    trainer.prepare()
    x, y = trainer.loaders.train.x, trainer.loaders.train.y
    x_range, y_range = padded_ranges(x)
    before = decision_boundary(trainer.model, x_range, y_range)
    summary = trainer.fit()
    after = decision_boundary(trainer.model, x_range, y_range)

    changed = float((before.classes != after.classes).mean())
    assert changed > 0.05, f"only {changed:.1%} of the field changed in training"
    assert summary["train_accuracy"] > 0.8
    with torch.inference_mode():
        predicted = trainer.model(x).argmax(dim=1).numpy()
    agreement = float((after.classes_at(x.numpy()) == predicted).mean())
    assert agreement > 0.97  # cells are 1/200 of the range wide: only points on the edge differ
    # The field is not one colour: both classes appear, where the data says.
    assert set(np.unique(after.classes)) == {0, 1}
    assert float((after.classes_at(x.numpy()) == y.numpy()).mean()) > 0.8


def test_grid_is_compact_row_major_from_the_bottom_left_and_exact_at_cell_centres() -> None:
    model = nn.Linear(2, 2)
    with torch.no_grad():  # class 1 wherever x > 0: the boundary is the y axis
        model.weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
        model.bias.zero_()
    grid = decision_boundary(model, (-2.0, 2.0), (-1.0, 3.0), resolution=(8, 4))
    assert grid.classes.shape == (4, 8)  # rows, columns
    assert grid.classes.dtype == np.uint8 and grid.confidence.dtype == np.float16
    assert grid.classes[:, :4].max() == 0 and grid.classes[:, 4:].min() == 1
    assert grid.extent == (-2.0, -1.0, 4.0, 4.0)
    centres = cell_centres((-2.0, 2.0), (-1.0, 3.0), (8, 4))
    assert centres[0].tolist() == [-1.75, -0.5]  # bottom-left cell
    assert centres[-1].tolist() == [1.75, 2.5]  # top-right cell
    assert np.all(grid.classes_at(centres.numpy()) == (centres[:, 0] > 0).numpy())
    assert np.all((grid.confidence >= 0.5) & (grid.confidence <= 1.0))
    assert grid.nbytes == 32 * 3


def test_multi_class_logsoftmax_and_single_logit_models() -> None:
    three = nn.Sequential(nn.Linear(2, 3), nn.LogSoftmax(dim=1))
    grid = decision_boundary(three, (-5, 5), (-5, 5), resolution=50)
    assert grid.classes.max() <= 2
    assert float(grid.confidence.astype(np.float32).min()) >= 1 / 3 - 1e-3
    binary = nn.Linear(2, 1)
    assert set(np.unique(decision_boundary(binary, (-5, 5), (-5, 5), 20).classes)) <= {0, 1}


def test_boundary_restores_the_models_own_mode() -> None:
    model = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    model.train()
    decision_boundary(model, (0, 1), (0, 1), 10)
    assert all(module.training for module in model.modules())


def test_padded_ranges_hold_every_point_with_a_margin() -> None:
    points = np.array([[0.0, 10.0], [2.0, 10.0]])
    (x0, x1), (y0, y1) = padded_ranges(points, margin=0.1)
    assert (x0, x1) == pytest.approx((-0.2, 2.2))
    assert y0 < 10.0 < y1  # a flat axis still gets a height
    assert padded_ranges(np.zeros((0, 2))) == ((-1.0, 1.0), (-1.0, 1.0))


def test_history_keeps_one_grid_per_epoch_and_replays_the_latest_before() -> None:
    model = nn.Linear(2, 2)
    history = BoundaryHistory(max_epochs=4)
    grids = {}
    for epoch in range(6):
        grids[epoch] = decision_boundary(model, (0, 1), (0, 1), 10)
        history.record(epoch, grids[epoch])
    assert len(history) <= 4
    assert history.epochs[0] == 0 and history.epochs[-1] == 5
    assert history.at(5) is grids[5]
    assert history.at(100) is grids[5]


def test_live_boundary_refreshes_every_n_batches_on_the_training_thread() -> None:
    trainer = moons_trainer(epochs=2)
    trainer.prepare()
    seen: list[tuple[int, int]] = []
    live = LiveBoundary(
        lambda: trainer.model,
        *padded_ranges(trainer.loaders.train.x),
        on_grid=lambda epoch, batch, grid: seen.append((epoch, batch)),
        resolution=40,
        every_n_batches=4,
        min_interval_seconds=0.0,
    )
    trainer.observer = FanOutObserver(RecordingObserver(), live)
    trainer.fit()
    assert len(trainer.loaders.train) == 12  # batches of 32 from 375 points
    assert seen[0] == (0, -1)  # the untrained boundary
    assert [b for e, b in seen if e == 1] == [3, 7, 11, -1]
    assert live.history.epochs == [0, 1, 2]
    assert live.refreshes == len(seen)
