"""Factories from the experiment's names to torch optimizers, LR schedulers and losses."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from workbench.engine.experiment import SchedulerSpec, TrainSpec

CLASSIFICATION_LOSSES = ("cross_entropy", "nll", "bce_with_logits")


def make_optimizer(params: Iterable[nn.Parameter], spec: TrainSpec) -> torch.optim.Optimizer:
    common: dict[str, Any] = {"lr": spec.lr, "weight_decay": spec.weight_decay}
    name = spec.optimizer
    if name == "sgd":
        return torch.optim.SGD(params, momentum=spec.momentum, nesterov=spec.nesterov, **common)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, momentum=spec.momentum, **common)
    classes: dict[str, type[torch.optim.Optimizer]] = {
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "adadelta": torch.optim.Adadelta,
        "adagrad": torch.optim.Adagrad,
    }
    return classes[name](params, **common)


def make_scheduler(
    optimizer: torch.optim.Optimizer, spec: SchedulerSpec | None, epochs: int, steps_per_epoch: int
) -> Any:
    """The LR scheduler, or None. `scheduler_steps_per_batch` says how the trainer steps it."""
    if spec is None:
        return None
    lr_scheduler = torch.optim.lr_scheduler
    if spec.name == "step":
        return lr_scheduler.StepLR(optimizer, step_size=spec.step_size, gamma=spec.gamma)
    if spec.name == "multistep":
        return lr_scheduler.MultiStepLR(
            optimizer, milestones=list(spec.milestones), gamma=spec.gamma
        )
    if spec.name == "exponential":
        return lr_scheduler.ExponentialLR(optimizer, gamma=spec.gamma)
    if spec.name == "cosine":
        return lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=spec.t_max or epochs, eta_min=spec.eta_min
        )
    if spec.name == "onecycle":
        max_lr = spec.max_lr or optimizer.param_groups[0]["lr"]
        return lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, epochs=epochs, steps_per_epoch=max(1, steps_per_epoch)
        )
    return lr_scheduler.ReduceLROnPlateau(optimizer, factor=spec.factor, patience=spec.patience)


def scheduler_steps_per_batch(spec: SchedulerSpec | None) -> bool:
    """OneCycle follows optimizer steps; the others follow epochs, as their docs intend."""
    return spec is not None and spec.name == "onecycle"


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_loss(name: str) -> LossFn:
    """The loss, adapting integer class labels where the loss wants float targets."""
    if name == "cross_entropy":
        return nn.CrossEntropyLoss()
    if name == "nll":
        return nn.NLLLoss()
    inner: nn.Module = nn.MSELoss() if name == "mse" else nn.BCEWithLogitsLoss()

    def float_target_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss: torch.Tensor = inner(output, float_targets(output, target))
        return loss

    return float_target_loss


def float_targets(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Class labels as the float targets mse/bce need: one-hot for C outputs, a column for one."""
    if target.is_floating_point():
        return target.view_as(output) if target.numel() == output.numel() else target
    if output.dim() == 2 and output.shape[1] > 1:
        return nn.functional.one_hot(target, output.shape[1]).to(output.dtype)
    return target.to(output.dtype).view_as(output)


def count_correct(output: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Correct predictions in the batch, as a 0-d tensor (read out once per epoch, not per batch)."""
    if output.dim() == 2 and output.shape[1] > 1:
        return (output.argmax(dim=1) == target.view(-1)).sum()
    if loss == "bce_with_logits":
        return ((output.view(-1) > 0).long() == target.view(-1).long()).sum()
    return torch.zeros((), dtype=torch.long, device=output.device)


def reports_accuracy(loss: str, output_features: int) -> bool:
    return loss in CLASSIFICATION_LOSSES or output_features > 1
