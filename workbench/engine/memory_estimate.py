"""Will it fit: the peak memory of a training step, traced on fake tensors, against free memory.

The model runs two training steps (forward, backward, optimizer step) and one validation forward
pass on fake tensors (torch's FakeTensorMode: shapes, dtypes and devices, no data, no memory),
at the real batch sizes, precision and memory format. A dispatch mode counts every tensor storage
alive after each operation; the peak of that count is what the real allocator would hold for
the run's tensors (CUDA's `max_memory_allocated`; on the CPU, the resident memory the tensors
take). Allocator caches (CUDA's reserved memory, glibc's free lists) come on top.
"""

from __future__ import annotations

import os
import typing
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

from workbench.engine.devices import DeviceInfo, available_devices, resolve_device
from workbench.engine.experiment import Experiment
from workbench.engine.optimization import make_loss, make_optimizer
from workbench.engine.precision import make_precision

MiB = 2**20
CUDA_BLOCK = 512


class _LiveStorages(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Counts the bytes of tensor storages alive after each operation, and their peak."""

    def __init__(self, device_type: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.device_type = device_type
        self.live = 0
        self.peak = 0
        self._seen: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def track(self, tensor: Any) -> None:
        if not isinstance(tensor, torch.Tensor):
            return
        storage = tensor.untyped_storage()
        if storage in self._seen:
            return
        size = storage.nbytes()
        if self.device_type == "cuda":  # the caching allocator hands out multiples of 512 bytes
            size = -(-size // CUDA_BLOCK) * CUDA_BLOCK
        self.live += size
        self.peak = max(self.peak, self.live)

        def freed(_: Any, size: int = size) -> None:
            self.live -= size

        self._seen[storage] = weakref.ref(storage, freed)

    def reset_peak(self) -> None:
        self.peak = self.live

    def __torch_dispatch__(
        self,
        func: Any,
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        for tensor in outputs:
            self.track(tensor)
        if self.device_type == "cpu":
            self.peak = max(self.peak, self.live + _cpu_kernel_copies(func, args, outputs))
        return out


def _memory_format(tensor: torch.Tensor) -> torch.memory_format | None:
    """A 4-D tensor's layout; None where it is both (one channel, 1x1 maps) or neither."""
    if tensor.dim() != 4:
        return None
    contiguous = tensor.is_contiguous()
    channels_last = tensor.is_contiguous(memory_format=torch.channels_last)
    if contiguous == channels_last:
        return None
    return torch.contiguous_format if contiguous else torch.channels_last


def _cpu_kernel_copies(func: Any, args: Sequence[Any], outputs: list[torch.Tensor]) -> int:
    """Bytes ATen's CPU backward kernels copy when the incoming gradient's layout disagrees.

    Pooling and normalisation backward kernels on the CPU work in grad_output's memory format.
    Under a channels_last model, the contiguous gradient a Flatten sends back makes them compute
    grad_input in a contiguous temporary (copied back at the end) and copy the other 4-D inputs
    they read (`self` is only read for its shape). Fake tensors do not run the kernels, so the
    trace adds these transient copies itself.
    """
    name = func._schema.name
    if not name.endswith("_backward") or not outputs or not args:
        return 0
    incoming = args[0]
    if not isinstance(incoming, torch.Tensor):
        return 0
    layout = _memory_format(incoming)
    produced = _memory_format(outputs[0])
    if layout is None or produced is None or layout == produced:
        return 0
    copies = outputs[0].untyped_storage().nbytes()
    for argument, value in zip(func._schema.arguments[1:], args[1:], strict=False):
        if argument.name == "self" or not isinstance(value, torch.Tensor):
            continue
        other = _memory_format(value)
        if other is not None and other != layout:
            copies += value.untyped_storage().nbytes()
    return copies


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of training at a batch size, and what it is made of (bytes)."""

    device: str
    batch_size: int
    val_batch_size: int
    precision: str
    optimizer: str
    weights: int
    gradients: int
    optimizer_state: int
    train_peak: int
    eval_peak: int

    @property
    def peak(self) -> int:
        return max(self.train_peak, self.eval_peak)

    @property
    def activations(self) -> int:
        """Activations and temporaries at the training peak: what the batch size scales."""
        fixed = self.weights + self.gradients + self.optimizer_state
        return max(self.train_peak - fixed, 0)

    def lines(self) -> list[str]:
        lines = [
            f"Estimated peak training memory on {self.device} (batch {self.batch_size}, "
            f"{self.precision}, {self.optimizer}): {format_bytes(self.peak)}",
            f"  weights {format_bytes(self.weights)}, gradients {format_bytes(self.gradients)}, "
            f"optimizer state {format_bytes(self.optimizer_state)}, activations and temporaries "
            f"{format_bytes(self.activations)}: training step {format_bytes(self.train_peak)}",
            f"  validation pass at batch {self.val_batch_size}: {format_bytes(self.eval_peak)}"
            + (
                " (the peak: lower data.val_batch_size to lower it)"
                if self.eval_peak > self.train_peak
                else ""
            ),
        ]
        return lines


def format_bytes(size: float) -> str:
    if size >= 2**30:
        return f"{size / 2**30:,.2f} GiB"
    if size >= MiB:
        return f"{size / MiB:,.1f} MiB"
    return f"{size / 1024:,.1f} KiB"


def _target_device(experiment: Experiment, devices: list[DeviceInfo] | None) -> DeviceInfo:
    return resolve_device(
        experiment.train.device, devices if devices is not None else available_devices()
    )


def estimate_training_memory(
    experiment: Experiment,
    model: nn.Module | None = None,
    *,
    batch_size: int | None = None,
    val_batch_size: int | None = None,
    device: DeviceInfo | None = None,
    devices: list[DeviceInfo] | None = None,
) -> MemoryEstimate:
    """Trace a training step and a validation pass on fake tensors; no real memory is used.

    `model` defaults to the experiment's freshly built model (only its shapes matter).
    """
    from workbench.engine.experiment_model import build_experiment_model, experiment_input_shape
    from workbench.engine.trainer import uses_channels_last

    device = device or _target_device(experiment, devices)
    train = experiment.train
    batch = batch_size or experiment.data.batch_size
    val_batch = val_batch_size or experiment.data.val_batch_size
    input_shape = tuple(experiment.model.input_shape or experiment_input_shape(experiment))
    if model is None:
        model = build_experiment_model(experiment).module
    channels_last = uses_channels_last(train.memory_format, model)
    precision = make_precision(train.precision, device)
    loss_fn = make_loss(train.loss)
    tracker = _LiveStorages(torch.device(device.name).type)
    with FakeTensorMode(), tracker:
        state = _fake_state(model, device.name, channels_last, tracker)
        trainable = [p for p in state.values() if p.requires_grad]
        optimizer = make_optimizer(typing.cast(list[nn.Parameter], trainable), train)
        weights = tracker.live

        def batch_of(size: int) -> tuple[torch.Tensor, torch.Tensor]:
            # As the Trainer feeds them: contiguous inputs, even to a channels_last model.
            x = torch.zeros(size, *input_shape, device=device.name)
            return x, torch.zeros(size, dtype=torch.long, device=device.name)

        def forward(x: torch.Tensor) -> torch.Tensor:
            return typing.cast(torch.Tensor, torch.func.functional_call(model, state, (x,)))

        micro_batches = min(train.accumulate_grad_batches, 2)
        optimizer_state = 0
        for step in range(2):  # the second step already carries the optimizer's state
            if step == 1:
                optimizer_state = tracker.live - weights
                tracker.reset_peak()
            for _ in range(micro_batches):
                x, y = batch_of(batch)
                with precision.forward_context():
                    loss = loss_fn(forward(x), y)
                (loss / micro_batches).backward()  # type: ignore[no-untyped-call]
                del x, y, loss
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        train_peak = tracker.peak
        tracker.reset_peak()
        with torch.inference_mode(), precision.forward_context():
            x, y = batch_of(val_batch)
            loss_fn(forward(x), y)
            del x, y
        eval_peak = tracker.peak
    return MemoryEstimate(
        device=device.name,
        batch_size=batch,
        val_batch_size=val_batch,
        precision=train.precision,
        optimizer=train.optimizer,
        weights=weights,
        gradients=sum(p.numel() * p.element_size() for p in trainable),
        optimizer_state=optimizer_state,
        train_peak=train_peak,
        eval_peak=eval_peak,
    )


def _fake_state(
    model: nn.Module, device: str, channels_last: bool, tracker: _LiveStorages
) -> dict[str, torch.Tensor]:
    """Fake parameters and buffers shaped like the model's, on the target device and layout."""
    state: dict[str, torch.Tensor] = {}
    tensors = [*model.named_parameters(), *model.named_buffers()]
    for name, real in tensors:
        fake = torch.empty(real.shape, dtype=real.dtype, device=device)
        if channels_last and fake.dim() == 4:
            fake = fake.contiguous(memory_format=torch.channels_last)
        if isinstance(real, nn.Parameter):
            fake.requires_grad_(real.requires_grad)
        tracker.track(fake)
        state[name] = fake
    return state


# --------------------------------------------------------------------------- free memory


def free_memory(device: DeviceInfo) -> int | None:
    """Bytes free for training on `device`: GPU memory, or RAM available on the CPU."""
    if device.kind == "cuda":
        free, _ = torch.cuda.mem_get_info(torch.device(device.name))
        return int(free)
    if device.kind == "mps":
        mps = torch.mps
        return int(mps.recommended_max_memory() - mps.driver_allocated_memory())
    return available_ram()


def available_ram() -> int | None:
    """MemAvailable on Linux (free plus reclaimable cache); free pages elsewhere; None unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def fit_verdict(estimate: MemoryEstimate, free: int | None) -> tuple[str, str]:
    """("fits" | "tight" | "too_big" | "unknown", a sentence) for the estimate against `free`."""
    where = "RAM" if estimate.device == "cpu" else "memory"
    if free is None:
        return "unknown", f"free {where} on {estimate.device}: unknown"
    text = f"free {where} on {estimate.device}: {format_bytes(free)}"
    if estimate.peak <= 0.8 * free:
        return "fits", f"{text}: fits"
    if estimate.peak <= free:
        return "tight", f"{text}: fits, but with less than 20% to spare"
    advice = "lower data.batch_size (`workbench fit-batch` finds the largest that fits)"
    if estimate.eval_peak > estimate.train_peak:
        advice = "lower data.val_batch_size: the validation pass is the peak"
    return "too_big", f"{text}: will not fit; {advice}"


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA raises torch.OutOfMemoryError; MPS a RuntimeError saying so."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
