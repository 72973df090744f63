"""What the teaching views need to know of a model and its data: from a live run, or a stored model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from workbench.engine.datasets import (
    BatchSource,
    DatasetInfo,
    LoaderBatchSource,
    TensorBatchSource,
    describe_dataset,
    load_splits,
)
from workbench.engine.experiment import Experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.insight.autograd_graph import AutogradGraph, autograd_graph
from workbench.engine.insight.decision_boundary import (
    BoundaryGrid,
    decision_boundary,
    padded_ranges,
)
from workbench.engine.insight.evaluation import dataset_batches
from workbench.engine.insight.model_probe import ProbeSnapshot
from workbench.engine.insight.outputs import snapshot_model
from workbench.engine.optimization import make_loss
from workbench.engine.reports import EpochReport

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Array = np.ndarray[Any, Any]
BOUNDARY_RESOLUTION = 200


@dataclass(frozen=True, eq=False)
class BoundaryPoints:
    """The 2-D points of both splits, as the boundary view draws them."""

    train_xy: Array
    train_labels: Array
    val_xy: Array
    val_labels: Array


@dataclass(frozen=True, eq=False)
class RunContext:
    """What the views learnt about a run (or a stored model) once its data was loaded."""

    info: DatasetInfo
    experiment: Experiment
    train: Dataset[Any]
    val: Dataset[Any]
    loss_fn: LossFn
    points: BoundaryPoints | None


@dataclass(frozen=True, eq=False)
class EpochInsight:
    """An epoch's report, a copy of the model at its end (eval mode) and its probe."""

    report: EpochReport
    model: nn.Module
    probe: ProbeSnapshot | None


@dataclass(frozen=True, eq=False)
class StoredModelInsight:
    """A model that is not training (a loaded file, an earlier run), ready for the views."""

    context: RunContext
    model: nn.Module  # eval mode, on the CPU
    grid: BoundaryGrid | None  # its decision boundary, for 2-D data


def source_dataset(source: BatchSource) -> Dataset[Any]:
    """The dataset behind a batch source, in index order (for galleries and evaluation)."""
    if isinstance(source, TensorBatchSource):
        return TensorDataset(source.x, source.y)
    if isinstance(source, LoaderBatchSource):
        dataset: Dataset[Any] = source.loader.dataset
        return dataset
    raise TypeError(f"unknown batch source {type(source).__name__}")


def dataset_arrays(dataset: Dataset[Any]) -> tuple[Array, Array]:
    """All inputs and labels of a (small) dataset as numpy arrays."""
    xs, ys = [], []
    for x, y in dataset_batches(dataset):
        xs.append(x.detach().float().cpu().numpy())
        ys.append(y.detach().reshape(-1).long().cpu().numpy())
    if not xs:
        return np.zeros((0, 2), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.concatenate(xs), np.concatenate(ys)


def first_batch(dataset: Dataset[Any], size: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    return next(iter(dataset_batches(dataset, size)), None)


def boundary_points(
    info: DatasetInfo, train: Dataset[Any], val: Dataset[Any]
) -> BoundaryPoints | None:
    """Both splits' points where the data is 2-D (the boundary can be drawn), else None."""
    if info.kind != "points2d" or tuple(info.input_shape) != (2,):
        return None
    train_xy, train_labels = dataset_arrays(train)
    val_xy, val_labels = dataset_arrays(val)
    return BoundaryPoints(train_xy, train_labels, val_xy, val_labels)


def point_ranges(points: BoundaryPoints) -> tuple[tuple[float, float], tuple[float, float]]:
    return padded_ranges(np.concatenate([points.train_xy, points.val_xy]))


def stored_model_insight(
    experiment: Experiment, state_dict: Mapping[str, torch.Tensor]
) -> StoredModelInsight:
    """Load the experiment's data and build its model with these weights (seconds for big
    datasets: call it off the GUI thread)."""
    splits = load_splits(experiment.data, experiment.train.seed)
    loss_fn = make_loss(experiment.train.loss)
    points = boundary_points(splits.info, splits.train, splits.val)
    context = RunContext(splits.info, experiment, splits.train, splits.val, loss_fn, points)
    model = build_experiment_model(experiment).module
    model.load_state_dict(dict(state_dict))
    model.eval()
    grid = None
    if points is not None:
        x_range, y_range = point_ranges(points)
        grid = decision_boundary(model, x_range, y_range, BOUNDARY_RESOLUTION)
    return StoredModelInsight(context, model, grid)


# --------------------------------------------------------------------------- autograd graphs


def _graph_with_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn
) -> AutogradGraph:
    try:
        return autograd_graph(model, x, y, loss_fn)
    except (RuntimeError, ValueError, IndexError):
        return autograd_graph(model, x)  # a loss that cannot take these targets: to the output


def trained_graph(snapshot: nn.Module, context: RunContext, size: int) -> AutogradGraph:
    """The graph of a trained model on `size` validation samples."""
    batch = first_batch(context.val, size) or first_batch(context.train, size)
    if batch is None:
        raise ValueError("the dataset has no samples")
    x, y = batch
    # A private copy: the graph needs train mode, and other readers share the snapshot.
    return _graph_with_loss(snapshot_model(snapshot), x, y, context.loss_fn)


def stack_graph(experiment: Experiment, size: int) -> AutogradGraph:
    """The graph of the experiment's model freshly built, on random inputs of the right shape."""
    built = build_experiment_model(experiment)
    info = describe_dataset(experiment.data)
    shape = tuple(experiment.model.input_shape or info.input_shape)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((size, *shape), generator=generator)
    y = torch.randint(0, max(info.num_classes, 1), (size,), generator=generator)
    return _graph_with_loss(built.module, x, y, make_loss(experiment.train.loss))
