"""One training step as the trainer runs it, with a clock reading between its phases."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from workbench.engine.devices import DeviceInfo
from workbench.engine.optimization import LossFn
from workbench.engine.precision import Precision, make_precision
from workbench.engine.profiling.layer_hooks import synchronizer


@dataclass(frozen=True)
class StepTimes:
    """Nanoseconds of one step's phases; `forward` is the model's and `loss` the loss's."""

    data: int
    forward: int
    loss: int
    backward: int
    optimizer: int

    @property
    def total(self) -> int:
        return self.data + self.forward + self.loss + self.backward + self.optimizer


@dataclass
class StepRunner:
    """forward (under the precision's autocast), loss, backward, optimizer step, zero_grad."""

    model: nn.Module
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    precision: Precision
    device: torch.device
    clip: float | None = None

    def __post_init__(self) -> None:
        self.sync: Callable[[], None] = synchronizer(self.device)
        self.backward_started_ns = 0  # clock reading when the last step's backward began

    def run(
        self, x: torch.Tensor, y: torch.Tensor, data_ns: int = 0, labelled: bool = False
    ) -> StepTimes:
        """One step; `labelled` names its phases in a torch.profiler trace."""
        sync = self.sync

        def phase(name: str) -> contextlib.AbstractContextManager[Any]:
            return torch.profiler.record_function(name) if labelled else contextlib.nullcontext()

        sync()
        started = time.perf_counter_ns()
        with phase("forward"), self.precision.forward_context():
            output = self.model(x)
            sync()
            forwarded = time.perf_counter_ns()
            loss = self.loss_fn(output, y)
        sync()
        lossed = self.backward_started_ns = time.perf_counter_ns()
        with phase("backward"):
            self.precision.backward(loss)
            sync()
        backwarded = time.perf_counter_ns()
        with phase("optimizer"):
            if self.clip is not None:
                self.precision.unscale(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
            self.precision.optimizer_step(self.optimizer)
            self.optimizer.zero_grad(set_to_none=True)
            sync()
        stepped = time.perf_counter_ns()
        return StepTimes(
            data_ns,
            forwarded - started,
            lossed - forwarded,
            backwarded - lossed,
            stepped - backwarded,
        )


@dataclass(frozen=True)
class TrainingSetup:
    """How a model trains, apart from its batches: loss, optimizer, device, precision, layout.

    The profiler never steps `model` itself; each runner trains a copy of it.
    """

    model: nn.Module
    loss_fn: LossFn
    optimizer_factory: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    device: DeviceInfo
    precision: str = "32-true"
    channels_last: bool = False
    clip: float | None = None

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device.name)

    def runner(
        self,
        *,
        precision: str | None = None,
        channels_last: bool | None = None,
        wrap: Callable[[nn.Module], nn.Module] | None = None,
    ) -> StepRunner:
        """A step on a fresh copy of the model with a fresh optimizer; the keywords change one
        thing (precision, memory layout, or `wrap`, e.g. torch.compile) for a what-if."""
        layout = self.channels_last if channels_last is None else channels_last
        memory_format = torch.channels_last if layout else torch.contiguous_format
        model = copy.deepcopy(self.model).to(self.torch_device)
        model = model.to(memory_format=memory_format).train()  # type: ignore[call-overload]
        optimizer = self.optimizer_factory(model.parameters())
        stepped = wrap(model) if wrap is not None else model
        plug_in = make_precision(precision or self.precision, self.device)
        return StepRunner(stepped, self.loss_fn, optimizer, plug_in, self.torch_device, self.clip)
