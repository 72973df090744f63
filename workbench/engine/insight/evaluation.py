"""Where a classifier errs: confusion matrix, per-class precision/recall, worst samples first."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from workbench.engine.insight.outputs import class_log_probabilities, mode, model_device

IntArray = np.ndarray[Any, np.dtype[np.int64]]
FloatArray = np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True)
class ClassMetrics:
    """One row of the per-class table. A ratio is None where it would divide by zero."""

    name: str
    precision: float | None  # of the samples predicted as this class, the share that are
    recall: float | None  # of this class's samples, the share found: its accuracy
    f1: float | None
    support: int  # samples of this class


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """A classifier's predictions on a split, in the split's sample order.

    `confusion[true, predicted]` counts samples; `losses` is each sample's cross-entropy
    (-log of the probability given to its true class), so sorting by it puts the most
    confidently wrong samples first.
    """

    class_names: tuple[str, ...]
    targets: IntArray
    predictions: IntArray
    losses: FloatArray
    confidence: FloatArray  # probability of the predicted class
    confusion: IntArray

    @property
    def size(self) -> int:
        return len(self.targets)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def accuracy(self) -> float | None:
        return float(np.trace(self.confusion) / self.size) if self.size else None

    @property
    def mean_loss(self) -> float | None:
        return float(self.losses.mean()) if self.size else None

    def normalized_confusion(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Each row divided by its class's sample count: the share of class i predicted as j."""
        counts = self.confusion.sum(axis=1, keepdims=True)
        shares: np.ndarray[Any, np.dtype[np.float64]] = np.divide(
            self.confusion, counts, out=np.zeros(self.confusion.shape), where=counts > 0
        )
        return shares

    def per_class(self) -> list[ClassMetrics]:
        rows = []
        for index, name in enumerate(self.class_names):
            hits = int(self.confusion[index, index])
            predicted = int(self.confusion[:, index].sum())
            support = int(self.confusion[index, :].sum())
            precision = hits / predicted if predicted else None
            recall = hits / support if support else None
            f1 = None
            if precision is not None and recall is not None:
                f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            rows.append(ClassMetrics(name, precision, recall, f1, support))
        return rows

    def samples_in_cell(self, true_class: int, predicted_class: int) -> IntArray:
        """Indices of the samples of `true_class` predicted as `predicted_class`, worst first."""
        chosen = np.flatnonzero(
            (self.targets == true_class) & (self.predictions == predicted_class)
        )
        return _by_loss(chosen, self.losses)

    def misclassified(self) -> IntArray:
        """Indices of every wrong prediction, the highest loss first."""
        return _by_loss(np.flatnonzero(self.targets != self.predictions), self.losses)


def _by_loss(indices: np.ndarray[Any, Any], losses: FloatArray) -> IntArray:
    order = np.argsort(-losses[indices], kind="stable")
    return indices[order].astype(np.int64)


def evaluate_classifier(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    class_names: Sequence[str],
) -> EvaluationResult:
    """Run the model over `batches` (in eval mode, under inference_mode) and collect the result.

    The batches must come in a fixed order (a validation loader): result index i is the i-th
    sample seen, which is how a gallery finds it again.
    """
    device = model_device(model)
    targets, predictions, losses, confidence = [], [], [], []
    with torch.inference_mode(), mode(model, training=False):
        for x, y in batches:
            log_probs = class_log_probabilities(model(x.to(device))).cpu()
            y = y.reshape(-1).long().cpu()
            best, predicted = log_probs.max(dim=1)
            targets.append(y)
            predictions.append(predicted)
            losses.append(-log_probs.gather(1, y.view(-1, 1)).view(-1))
            confidence.append(best.exp())
    names = tuple(class_names)
    true_classes = _cat(targets, torch.long).numpy().astype(np.int64)
    predicted_classes = _cat(predictions, torch.long).numpy().astype(np.int64)
    largest = max(true_classes.max(initial=-1), predicted_classes.max(initial=-1))
    size = max(len(names), int(largest) + 1)
    names += tuple(f"class {index}" for index in range(len(names), size))
    confusion = np.zeros((size, size), dtype=np.int64)
    np.add.at(confusion, (true_classes, predicted_classes), 1)
    return EvaluationResult(
        class_names=names,
        targets=true_classes,
        predictions=predicted_classes,
        losses=_cat(losses, torch.float32).numpy(),
        confidence=_cat(confidence, torch.float32).numpy(),
        confusion=confusion,
    )


def _cat(parts: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    return torch.cat(parts).to(dtype) if parts else torch.zeros(0, dtype=dtype)


def dataset_batches(
    dataset: Dataset[Any], batch_size: int = 512
) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """A dataset's (x, y) batches in index order, by slicing where it holds whole tensors."""
    size = len(dataset)  # type: ignore[arg-type]
    if isinstance(dataset, TensorDataset):
        x, y = dataset.tensors[:2]
        for start in range(0, size, batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]
        return
    for start in range(0, size, batch_size):
        items = [dataset[index] for index in range(start, min(start + batch_size, size))]
        yield (
            torch.stack([torch.as_tensor(item[0]) for item in items]),
            torch.as_tensor([int(item[1]) for item in items]),
        )


class SampleSet:
    """The samples behind an evaluation, by index, as a gallery shows them.

    `kind` is the dataset kind ("image", "table" or "points2d"). Nothing is copied: a sample is
    read from the dataset when it is shown.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        kind: str,
        class_names: Sequence[str],
        feature_names: Sequence[str] | None = None,
    ) -> None:
        self.dataset, self.kind, self.class_names = dataset, kind, tuple(class_names)
        self._feature_names = tuple(feature_names) if feature_names else None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def input(self, index: int) -> torch.Tensor:
        """The sample exactly as the model receives it (normalised, without a batch dimension)."""
        return torch.as_tensor(self.dataset[index][0])

    def label(self, index: int) -> int:
        return int(self.dataset[index][1])

    @property
    def feature_names(self) -> tuple[str, ...]:
        if self._feature_names is not None:
            return self._feature_names
        width = self.input(0).numel() if len(self) else 0
        if self.kind == "points2d":
            return ("x", "y")
        return tuple(f"feature {index}" for index in range(width))

    def image(self, index: int) -> np.ndarray[Any, np.dtype[np.float32]]:
        """[H, W] gray or [H, W, 3] colour in 0..1 for display (stretched from its own range,
        which undoes any mean/std normalisation well enough to see the picture)."""
        return display_image(self.input(index))

    def row(self, index: int) -> np.ndarray[Any, np.dtype[np.float32]]:
        return self.input(index).reshape(-1).float().numpy()


def display_image(sample: torch.Tensor) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A [C, H, W] (or [H, W]) tensor as a 0..1 picture: [H, W] for gray, [H, W, 3] for RGB."""
    image = sample.detach().float().cpu()
    if image.dim() == 3 and image.shape[0] == 1:
        image = image[0]
    elif image.dim() == 3:
        image = image[:3].permute(1, 2, 0)
    low, high = float(image.min()), float(image.max())
    scaled = (image - low) / (high - low) if high > low else torch.zeros_like(image)
    return scaled.numpy().astype(np.float32)
