"""A small, cheap look at a dataset for the window: a few samples and the class balance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from workbench.engine.datasets import DatasetInfo, load_splits
from workbench.engine.experiment import DataSpec

PREVIEW_SAMPLES = 48
MAX_POINTS = 2_000


@dataclass(frozen=True)
class DatasetPreview:
    info: DatasetInfo
    samples: np.ndarray  # [n, *input_shape] float32: images, points or table rows
    labels: np.ndarray  # [n] int64
    class_counts: np.ndarray  # [classes] training samples per class
    val_class_counts: np.ndarray


def _labels(dataset: Dataset[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None:
        return torch.as_tensor(tensors[1]).view(-1)
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return torch.as_tensor(targets).view(-1)
    return torch.tensor([int(dataset[i][1]) for i in range(len(dataset))])  # type: ignore[arg-type]


def _first(
    dataset: Dataset[tuple[torch.Tensor, torch.Tensor]], count: int
) -> tuple[np.ndarray, np.ndarray]:
    count = min(count, len(dataset))  # type: ignore[arg-type]
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None:
        return tensors[0][:count].float().numpy(), tensors[1][:count].long().numpy()
    pairs = [dataset[i] for i in range(count)]
    if not pairs:
        return np.zeros((0,)), np.zeros((0,), dtype=np.int64)
    return (
        torch.stack([torch.as_tensor(x) for x, _ in pairs]).float().numpy(),
        np.array([int(y) for _, y in pairs], dtype=np.int64),
    )


def preview_dataset(spec: DataSpec, seed: int) -> DatasetPreview:
    """Load the dataset (the same split the run will use) and keep a handful of samples."""
    splits = load_splits(spec, seed)
    classes = splits.info.num_classes
    count = MAX_POINTS if splits.info.kind == "points2d" else PREVIEW_SAMPLES
    samples, labels = _first(splits.train, count)
    train_counts = torch.bincount(_labels(splits.train).long(), minlength=classes).numpy()
    val_counts = torch.bincount(_labels(splits.val).long(), minlength=classes).numpy()
    return DatasetPreview(splits.info, samples, labels, train_counts, val_counts)
