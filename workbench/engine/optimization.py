"""Factories from the experiment's names to torch optimizers, LR schedulers and losses."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from workbench.engine.errors import ExperimentError, ModelBuildError
from workbench.engine.experiment import SchedulerSpec, TrainSpec, training_problem

CLASSIFICATION_LOSSES = ("cross_entropy", "nll", "bce_with_logits")


def optimizer_arguments(spec: TrainSpec) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    """The torch optimizer class `spec.optimizer` names and the keyword arguments it gets."""
    name = spec.optimizer
    args: dict[str, Any] = {"lr": spec.lr}
    if name in ("sgd", "rmsprop"):
        args["momentum"] = spec.momentum
    if name == "sgd":
        args["nesterov"] = spec.nesterov
    args["weight_decay"] = spec.weight_decay
    classes: dict[str, type[torch.optim.Optimizer]] = {
        "sgd": torch.optim.SGD,
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "adadelta": torch.optim.Adadelta,
        "rmsprop": torch.optim.RMSprop,
        "adagrad": torch.optim.Adagrad,
    }
    return classes[name], args


def make_optimizer(
    params: Iterable[nn.Parameter] | list[dict[str, Any]], spec: TrainSpec
) -> torch.optim.Optimizer:
    """The optimizer; one its scheduler cannot drive (an experiment built in code, not read
    from a file) is refused here with the file's message, before torch refuses it."""
    problem = training_problem(spec)
    if problem is not None:
        raise ExperimentError(problem)
    optimizer_class, args = optimizer_arguments(spec)
    return optimizer_class(params, **args)


def parameter_groups(model: nn.Module, spec: TrainSpec) -> list[dict[str, Any]]:
    """The trainable parameters: one group at `lr`, and the trainable parameters of backbone
    layers in a second group at `lr * backbone_lr_factor`. Frozen parameters are left out."""
    from workbench.engine.backbones import backbones_in

    in_backbones = {
        id(parameter) for _, backbone in backbones_in(model) for parameter in backbone.parameters()
    }
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if not trainable and any(True for _ in model.parameters()):
        raise ModelBuildError(
            "every parameter of the model is frozen, so training would change nothing; add a "
            'layer after the backbone, or set its freeze = false or "last:1"'
        )
    groups: list[dict[str, Any]] = [{"params": [p for p in trainable if id(p) not in in_backbones]}]
    backbone_params = [p for p in trainable if id(p) in in_backbones]
    if backbone_params:
        groups.append({"params": backbone_params, "lr": spec.lr * spec.backbone_lr_factor})
    return [group for group in groups if group["params"]] or groups[:1]


def scheduler_arguments(
    spec: SchedulerSpec, epochs: object, steps_per_epoch: object, lr: object
) -> tuple[type[Any], dict[str, object]]:
    """The torch.optim.lr_scheduler class and its keyword arguments after the optimizer.

    `epochs`, `steps_per_epoch` (at least 1) and `lr` (the optimizer's) fill in what the spec
    leaves unset; the script exporter passes the names its script gives them.
    """
    lr_scheduler = torch.optim.lr_scheduler
    if spec.name == "step":
        return lr_scheduler.StepLR, {"step_size": spec.step_size, "gamma": spec.gamma}
    if spec.name == "multistep":
        return lr_scheduler.MultiStepLR, {"milestones": list(spec.milestones), "gamma": spec.gamma}
    if spec.name == "exponential":
        return lr_scheduler.ExponentialLR, {"gamma": spec.gamma}
    if spec.name == "cosine":
        return lr_scheduler.CosineAnnealingLR, {
            "T_max": spec.t_max or epochs,
            "eta_min": spec.eta_min,
        }
    if spec.name == "onecycle":
        return lr_scheduler.OneCycleLR, {
            "max_lr": spec.max_lr or lr,
            "epochs": epochs,
            "steps_per_epoch": steps_per_epoch,
        }
    return lr_scheduler.ReduceLROnPlateau, {"factor": spec.factor, "patience": spec.patience}


def make_scheduler(
    optimizer: torch.optim.Optimizer, spec: SchedulerSpec | None, epochs: int, steps_per_epoch: int
) -> Any:
    """The LR scheduler, or None. `scheduler_steps_per_batch` says how the trainer steps it."""
    if spec is None:
        return None
    lr = optimizer.param_groups[0]["lr"]
    scheduler_class, args = scheduler_arguments(spec, epochs, max(1, steps_per_epoch), lr)
    if spec.name == "onecycle" and len(optimizer.param_groups) > 1 and lr > 0:  # own peaks
        args["max_lr"] = [args["max_lr"] * group["lr"] / lr for group in optimizer.param_groups]
    return scheduler_class(optimizer, **args)


def scheduler_steps_per_batch(spec: SchedulerSpec | None) -> bool:
    """OneCycle follows optimizer steps; the others follow epochs, as their docs intend."""
    return spec is not None and spec.name == "onecycle"


def scheduler_steps_on_loss(spec: SchedulerSpec | None) -> bool:
    """ReduceLROnPlateau steps on the epoch's validation loss (the training loss without one)."""
    return spec is not None and spec.name == "reduce_on_plateau"


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


FLOAT_TARGET_LOSSES = ("mse", "bce_with_logits")


def loss_module(name: str) -> nn.Module:
    """The torch loss `name` stands for (float-target losses still need `float_targets`)."""
    losses: dict[str, type[nn.Module]] = {
        "cross_entropy": nn.CrossEntropyLoss,
        "nll": nn.NLLLoss,
        "mse": nn.MSELoss,
        "bce_with_logits": nn.BCEWithLogitsLoss,
    }
    return losses[name]()


def make_loss(name: str) -> LossFn:
    """The loss, adapting integer class labels where the loss wants float targets."""
    inner = loss_module(name)
    if name not in FLOAT_TARGET_LOSSES:
        return inner

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


def accuracy_rule(loss: str, output_shape: Sequence[int]) -> str | None:
    """How a prediction counts as correct, given one sample's output shape: "argmax" over
    several class scores, "sign" of one bce_with_logits logit, or None (nothing to count)."""
    if len(output_shape) == 1 and output_shape[0] > 1:
        return "argmax"
    if loss == "bce_with_logits":
        return "sign"
    return None


def count_correct(output: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Correct predictions in the batch, as a 0-d tensor (read out once per epoch, not per batch)."""
    rule = accuracy_rule(loss, output.shape[1:])
    if rule == "argmax":
        return (output.argmax(dim=1) == target.view(-1)).sum()
    if rule == "sign":
        return ((output.view(-1) > 0).long() == target.view(-1).long()).sum()
    return torch.zeros((), dtype=torch.long, device=output.device)


def reports_accuracy(loss: str, output_features: int) -> bool:
    """Whether a run reports accuracy: classification losses, or several outputs."""
    return loss in CLASSIFICATION_LOSSES or output_features > 1
