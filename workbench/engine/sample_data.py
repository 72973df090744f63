"""Batches to run a model on when profiling it or checking an export: the experiment's own data
where it is available here, else random tensors of the same shape and dtype (and it says so)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from workbench.engine.datasets import BatchSource, Loaders, availability, load_splits
from workbench.engine.errors import DatasetError
from workbench.engine.experiment import Experiment
from workbench.engine.experiment_model import (
    experiment_input_shape,
    experiment_loaders,
    experiment_preprocessing,
)

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class SampleBatch:
    """Inputs and class targets, where they came from, and whether they are real samples."""

    inputs: torch.Tensor
    targets: torch.Tensor
    source: str
    real: bool


def input_dtype(experiment: Experiment) -> torch.dtype:
    """float32, or long for token ids (`model.input_dtype = "long"` where the spec has it)."""
    return (
        torch.long if getattr(experiment.model, "input_dtype", "float") == "long" else torch.float
    )


def random_inputs(
    shape: tuple[int, ...], count: int, dtype: torch.dtype, model: nn.Module, seed: int = 0
) -> torch.Tensor:
    """Standard-normal floats, or token ids below the first Embedding's vocabulary size."""
    generator = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point:
        return torch.randn((count, *shape), generator=generator, dtype=dtype)
    vocabulary = next((m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)), 2)
    return torch.randint(0, vocabulary, (count, *shape), generator=generator, dtype=dtype)


def random_targets(count: int, classes: int, seed: int = 1) -> torch.Tensor:
    """Class labels the experiment's loss takes (mse/bce turn them into one-hot or 0/1 targets)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, max(classes, 2), (count,), generator=generator)


def output_classes(model: nn.Module, inputs: torch.Tensor) -> int:
    """How many outputs per sample the model gives: the classes random targets are drawn from."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        output = model(inputs[:2])
    model.train(was_training)
    return int(output.shape[-1]) if output.dim() > 1 else 1


def unavailable_reason(experiment: Experiment) -> str | None:
    """Why the experiment's data cannot be read here without downloading, or None if it can."""
    data = experiment.data
    available, why = availability(data.name, data.root)
    # availability() answers `workbench datasets`: "no (no files in X); set ..." reads here as
    # "no files in X; set ...".
    return None if available else why.removeprefix("no (").replace(")", "", 1)


def sample_batch(experiment: Experiment, model: nn.Module, count: int) -> SampleBatch:
    """The first `count` validation samples, or random ones of the right shape when the data is
    not here (never downloaded by this call)."""
    reason = unavailable_reason(experiment)
    if reason is None:
        try:
            preprocessing = experiment_preprocessing(experiment)
            splits = load_splits(experiment.data, experiment.train.seed, preprocessing)
        except DatasetError as exc:
            reason = str(exc)
        else:
            split = splits.val if len(splits.val) else splits.train  # type: ignore[arg-type]
            items = [split[i] for i in range(min(count, len(split)))]  # type: ignore[arg-type]
            if items:
                inputs = torch.stack([torch.as_tensor(x) for x, _ in items])
                targets = torch.as_tensor([int(y) for _, y in items])
                name = "validation" if split is splits.val else "training"
                source = f"{len(items)} samples of the {experiment.data.name} {name} split"
                return SampleBatch(inputs, targets, source, True)
            reason = f"{experiment.data.name} has no samples"
    return _random_batch(experiment, model, count, reason)


def _random_batch(experiment: Experiment, model: nn.Module, count: int, reason: str) -> SampleBatch:
    shape = experiment_input_shape(experiment)
    inputs = random_inputs(shape, count, input_dtype(experiment), model)
    targets = random_targets(count, output_classes(model, inputs))
    source = (
        f"{count} random samples shaped like {experiment.data.name} {list(shape)} "
        f"({experiment.data.name} is not available here: {reason})"
    )
    return SampleBatch(inputs, targets, source, False)


class TrainingFeed:
    """Training batches without end, from the experiment's loaders or made up at random.

    `next_batch()` is what the profiler times as data loading: taking the next batch from the
    loader (reading and collating it, or slicing the in-memory tensors) and moving it to the
    device.
    """

    def __init__(
        self, batches: BatchSource | None, random: Batch | None, source: str, device: torch.device
    ) -> None:
        self._loader = batches
        self._random = random
        self.source = source
        self.real = batches is not None
        self.device = device
        self._iterator: Iterator[Batch] | None = None

    def next_batch(self) -> Batch:
        if self._loader is None:
            assert self._random is not None
            x, y = self._random
        else:
            if self._iterator is None:
                self._iterator = iter(self._loader)
            try:
                x, y = next(self._iterator)
            except StopIteration:
                self._iterator = iter(self._loader)
                x, y = next(self._iterator)
        non_blocking = self.device.type == "cuda"
        return x.to(self.device, non_blocking=non_blocking), y.to(
            self.device, non_blocking=non_blocking
        )


def training_feed(experiment: Experiment, model: nn.Module, device: torch.device) -> TrainingFeed:
    """The experiment's training batches when its data is here, else one random batch reused."""
    data = experiment.data
    reason = unavailable_reason(experiment)
    loaders: Loaders | None = None
    if reason is None:
        started = time.perf_counter()
        try:
            loaders = experiment_loaders(experiment)
        except DatasetError as exc:
            reason = str(exc)
        else:
            seconds = time.perf_counter() - started
            source = (
                f"the {data.name} training split, batches of {data.batch_size} "
                f"(opened in {seconds:.1f} s, not counted)"
            )
            return TrainingFeed(loaders.train, None, source, device)
    shape = experiment_input_shape(experiment)
    inputs = random_inputs(shape, data.batch_size, input_dtype(experiment), model)
    targets = random_targets(data.batch_size, output_classes(model, inputs))
    source = (
        f"random batches of {data.batch_size} shaped like {data.name} {list(shape)}, so data "
        f"loading is only the copy to the device ({data.name} is not available here: {reason})"
    )
    return TrainingFeed(None, (inputs, targets), source, device)
