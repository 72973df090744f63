"""Try training steps and take them back: a bit-exact snapshot of model, optimizer and RNG state."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch import nn

from workbench.engine.optimization import LossFn
from workbench.engine.precision import Precision
from workbench.engine.run_files import capture_rng_state, restore_rng_state

Batch = tuple[torch.Tensor, torch.Tensor]


class TrainingSnapshot:
    """Weights and buffers, optimizer and precision state, RNG states and the training mode."""

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, precision: Precision
    ) -> None:
        self.model, self.optimizer, self.precision = model, optimizer, precision
        self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.optimizer_state = copy.deepcopy(optimizer.state_dict())
        self.precision_state = copy.deepcopy(precision.state_dict())
        self.skipped_steps = precision.skipped_steps
        self.rng = capture_rng_state()
        self.training = model.training

    def restore(self) -> None:
        """Put everything back as it was; the weights come back bit for bit."""
        self.model.load_state_dict(self.weights)
        self.optimizer.load_state_dict(copy.deepcopy(self.optimizer_state))
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.load_state_dict(copy.deepcopy(self.precision_state))
        self.precision.skipped_steps = self.skipped_steps
        restore_rng_state(self.rng)
        self.model.train(self.training)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    batches: Iterator[Batch],
    precision: Precision,
    accumulate: int = 1,
) -> float | None:
    """One optimizer step over `accumulate` batches: the mean loss, or None when they ran out."""
    device = next(model.parameters()).device
    total = 0.0
    for _ in range(accumulate):
        batch = next(batches, None)
        if batch is None:
            return None
        x, y = (tensor.to(device) for tensor in batch)
        with precision.forward_context():
            loss = loss_fn(model(x), y)
        precision.backward(loss / accumulate)
        total += loss.item() / accumulate
    precision.optimizer_step(optimizer)
    optimizer.zero_grad(set_to_none=True)
    return total
