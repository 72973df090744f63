"""What the exported script must do, asked of the engine's own rules once per export.

Nothing here decides training behaviour: the optimizer and scheduler (class and arguments), the
loss, when accuracy is reported and how it is counted, autocast and the GradScaler, the memory
format, early stopping's direction and the DDP device and backend all come from the functions
the trainer itself calls, so the script cannot drift from the engine.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workbench.engine.datasets import dataset_options
from workbench.engine.ddp import auto_backend, ddp_device_kind
from workbench.engine.early_stopping import resolved_mode
from workbench.engine.experiment import (
    MONITORS,
    Experiment,
    experiment_from_dict,
    experiment_to_dict,
)
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.model_builder import BuiltModel
from workbench.engine.optimization import (
    FLOAT_TARGET_LOSSES,
    accuracy_rule,
    loss_module,
    optimizer_arguments,
    reports_accuracy,
    scheduler_arguments,
    scheduler_steps_on_loss,
    scheduler_steps_per_batch,
)
from workbench.engine.precision import autocast_dtype, uses_grad_scaler
from workbench.engine.script_export.text import Code, call, literal
from workbench.engine.task import NEXT_TOKEN, task_kind
from workbench.engine.trainer import uses_channels_last

# The script names its constants and variables after these; the experiment's values never
# become names, so only these fixed words can stand in code.
EPOCHS = Code("EPOCHS")
LEARNING_RATE = Code("LEARNING_RATE")
STEPS_PER_EPOCH = Code("steps_per_epoch")
METRIC_VARIABLES = {monitor: monitor for monitor in MONITORS}  # train_loss ... val_accuracy
FUNCTIONAL_LOSSES = {"MSELoss": "mse_loss", "BCEWithLogitsLoss": "binary_cross_entropy_with_logits"}
NEXT_TOKEN_LOSSES = {"CrossEntropyLoss": "cross_entropy", "NLLLoss": "nll_loss"}


@dataclass(frozen=True)
class ScriptPlan:
    """A validated experiment, its model, and every engine decision the script repeats."""

    experiment: Experiment
    built: BuiltModel
    options: Mapping[str, Any]  # data.options with the dataset's defaults filled in
    channels_last: bool
    reports_accuracy: bool
    accuracy_rule: str | None  # "argmax", "sign" or None
    autocast_dtype: str | None  # "torch.bfloat16"; None without autocast
    grad_scaler: bool
    per_batch_scheduler: bool  # OneCycle steps with the optimizer, the others once an epoch
    scheduler_steps_on_loss: bool  # ReduceLROnPlateau
    minimize_monitor: bool  # early stopping: a lower value is better
    ddp_cuda_when_available: bool  # DDP ranks take GPUs where the machine has them
    next_token: bool = False  # a text model: the loss over every position, perplexity reported

    @property
    def ddp(self) -> bool:
        return self.experiment.train.ddp.enabled


def plan_script(experiment: Experiment, source: str | None) -> ScriptPlan:
    """Check `experiment` as loading a file would, build its model, and ask the engine's rules."""
    experiment = validated(experiment, source)
    train = experiment.train
    built = build_experiment_model(experiment)
    dtype = autocast_dtype(train.precision)
    early = train.early_stopping
    next_token = task_kind(experiment.data) == NEXT_TOKEN
    return ScriptPlan(
        experiment=experiment,
        built=built,
        options=dataset_options(experiment.data),
        channels_last=uses_channels_last(train.memory_format, built.module),
        reports_accuracy=not next_token and reports_accuracy(train.loss, built.output_shape[-1]),
        accuracy_rule=accuracy_rule(train.loss, built.output_shape),
        autocast_dtype=None if dtype is None else str(dtype),
        grad_scaler=uses_grad_scaler(train.precision),
        per_batch_scheduler=scheduler_steps_per_batch(train.scheduler),
        scheduler_steps_on_loss=scheduler_steps_on_loss(train.scheduler),
        minimize_monitor=early is not None and resolved_mode(early.monitor, early.mode) == "min",
        ddp_cuda_when_available=train.ddp.enabled
        and ddp_device_kind(train.device, cuda_present=True) == "cuda",
        next_token=next_token,
    )


def validated(experiment: Experiment, source: str | None) -> Experiment:
    """The experiment re-read through the file's validation, so that one built in code (or
    changed with dataclasses.replace) meets the same checks as a file: names from their lists,
    numbers in range, the device a device name."""
    return experiment_from_dict(experiment_to_dict(experiment), source=source or "the experiment")


def optimizer_code(plan: ScriptPlan, used: int) -> str:
    """`torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=0.9)`: the engine's class
    and arguments; an argument is written where it differs from torch's default or is set."""
    optimizer_class, args = optimizer_arguments(plan.experiment.train)
    defaults = constructor_defaults(optimizer_class)
    written = ["model.parameters()"]
    if any(row.type == "Backbone" and row.trainable for row in plan.built.rows):
        factor = literal(plan.experiment.train.backbone_lr_factor)
        written = [f"parameter_groups(model, {LEARNING_RATE.text} * {factor})"]
    for name, value in args.items():
        if name == "lr":
            written.append(f"lr={LEARNING_RATE.text}")
        elif value != defaults.get(name) or value:
            written.append(f"{name}={literal(value)}")
    return call(f"torch.optim.{optimizer_class.__name__}", written, used, indent=4)


def scheduler_code(plan: ScriptPlan, used: int) -> str | None:
    """The engine's LR scheduler with the script's EPOCHS, steps_per_epoch and LEARNING_RATE."""
    spec = plan.experiment.train.scheduler
    if spec is None:
        return None
    scheduler_class, args = scheduler_arguments(spec, EPOCHS, STEPS_PER_EPOCH, LEARNING_RATE)
    written = ["optimizer", *(f"{name}={literal(value)}" for name, value in args.items())]
    return call(f"torch.optim.lr_scheduler.{scheduler_class.__name__}", written, used, indent=4)


def loss_class(plan: ScriptPlan) -> str:
    """The torch loss class the engine uses, e.g. `CrossEntropyLoss`."""
    return type(loss_module(plan.experiment.train.loss)).__name__


def functional_loss(plan: ScriptPlan) -> str | None:
    """`mse_loss` where the loss takes float targets (labels made one-hot), else None."""
    if plan.next_token:
        return NEXT_TOKEN_LOSSES[loss_class(plan)]
    if plan.experiment.train.loss not in FLOAT_TARGET_LOSSES:
        return None
    return FUNCTIONAL_LOSSES[loss_class(plan)]


def ddp_backends() -> tuple[str, str]:
    """The backend "auto" picks on CUDA ranks and on CPU ranks."""
    return auto_backend("cuda"), auto_backend("cpu")


def constructor_defaults(function: type) -> dict[str, Any]:
    """The keyword defaults of a torch class's constructor, by argument name."""
    parameters = inspect.signature(function).parameters
    return {
        name: parameter.default
        for name, parameter in parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
