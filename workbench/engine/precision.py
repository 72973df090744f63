"""Mixed precision as a small plug-in: how to run the forward pass, backward pass and step."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from workbench.engine.devices import DeviceInfo, check_precision


class Precision:
    """32-true: plain float32. The base class every other precision refines."""

    name = "32-true"

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.skipped_steps = 0

    @contextlib.contextmanager
    def forward_context(self) -> Iterator[None]:
        yield

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()  # type: ignore[no-untyped-call]

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Make gradients true-sized before clipping (a no-op without a scaler)."""

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Step the optimizer; False when the step was skipped (inf/NaN gradients under fp16)."""
        optimizer.step()
        return True

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class AutocastPrecision(Precision):
    """bf16-mixed: autocast to bfloat16; bfloat16 keeps float32's range, so no scaler."""

    name = "bf16-mixed"
    dtype = torch.bfloat16

    @contextlib.contextmanager
    def forward_context(self) -> Iterator[None]:
        with torch.autocast(device_type=self.device.type, dtype=self.dtype):
            yield


class ScaledAutocastPrecision(AutocastPrecision):
    """16-mixed: autocast to float16 with a GradScaler that scales the loss and skips bad steps."""

    name = "16-mixed"
    dtype = torch.float16

    def __init__(self, device: torch.device) -> None:
        super().__init__(device)
        self.scaler = torch.amp.GradScaler(device.type)
        self._unscaled = False

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        self.scaler.unscale_(optimizer)

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> bool:
        scale_before = self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        # The scaler lowers its scale exactly when it skipped the step for inf/NaN gradients.
        stepped = self.scaler.get_scale() >= scale_before
        if not stepped:
            self.skipped_steps += 1
        return stepped

    def state_dict(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict(), "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.skipped_steps = int(state.get("skipped_steps", 0))


_PRECISIONS: dict[str, type[Precision]] = {
    "32-true": Precision,
    "bf16-mixed": AutocastPrecision,
    "16-mixed": ScaledAutocastPrecision,
}


def make_precision(name: str, device: DeviceInfo) -> Precision:
    """The precision plug-in for `name`, or a DeviceError saying why it cannot run here."""
    check_precision(device, name)
    return _PRECISIONS[name](torch.device(device.name))


def autocast_dtype(name: str) -> torch.dtype | None:
    """The dtype precision `name` autocasts the forward pass to; None where it does not."""
    precision = _PRECISIONS[name]
    return precision.dtype if issubclass(precision, AutocastPrecision) else None


def uses_grad_scaler(name: str) -> bool:
    """Whether precision `name` scales the loss with a GradScaler (and may skip steps)."""
    return issubclass(_PRECISIONS[name], ScaledAutocastPrecision)
