"""The largest batch size that fits: real training steps on a GPU, the memory estimate on the CPU.

On CUDA and MPS an out-of-memory error is cheap to meet and to recover from, so each batch size
is tried for real (two training steps: the second carries the optimizer's state). On the CPU
running out of memory means swapping or the system killing the process, so the fake-tensor
estimate is compared with the free RAM instead.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from workbench.engine.devices import DeviceInfo, available_devices, resolve_device
from workbench.engine.experiment import Experiment
from workbench.engine.memory_estimate import (
    available_ram,
    estimate_training_memory,
    format_bytes,
    is_out_of_memory,
)
from workbench.engine.training_snapshot import train_step

CPU_SHARE = 0.8  # leave a fifth of the free RAM to everything else
LARGEST = 2**20


@dataclass(frozen=True)
class BatchFit:
    """The largest batch size found, how (measured or estimated) and every size tried."""

    batch_size: int | None
    measured: bool
    device: str
    tries: tuple[tuple[int, bool], ...] = field(default=())
    limit: str = ""  # why the search stopped where it did, when not at an out-of-memory


def largest_fitting(
    fits: Callable[[int], bool], upper: int, on_try: Callable[[int, bool], None] | None = None
) -> tuple[int | None, str]:
    """Double from 1 until a size fails (or reaches `upper`), then bisect between the last two.

    Returns the largest size that fitted (None when even 1 fails) and, when the search ended at
    `upper` rather than at a failure, a note saying so.
    """

    def attempt(size: int) -> bool:
        ok = fits(size)
        if on_try is not None:
            on_try(size, ok)
        return ok

    good, size = 0, 1
    while size <= upper and attempt(size):
        good, size = size, size * 2
    if good == 0:
        return None, ""
    if size > upper:
        if good < upper and attempt(upper):
            return upper, f"every size up to {upper} fits"
        bad = upper
    else:
        bad = size
    while bad - good > 1:
        middle = (good + bad) // 2
        if attempt(middle):
            good = middle
        else:
            bad = middle
    note = f"every size up to {upper} fits" if good == upper else ""
    return good, note


def _search_limit(experiment: Experiment) -> tuple[int, str]:
    """A batch larger than the training set trains nothing more: stop the search there."""
    from workbench.engine.datasets import describe_dataset

    train_size = describe_dataset(experiment.data).train_size
    return max(1, min(train_size, LARGEST)), f"the training set has {train_size} samples"


def find_batch_size(
    experiment: Experiment,
    devices: list[DeviceInfo] | None = None,
    on_try: Callable[[int, bool], None] | None = None,
    upper: int | None = None,
) -> BatchFit:
    """Search the largest training batch size for the experiment's device."""
    device = resolve_device(
        experiment.train.device, devices if devices is not None else available_devices()
    )
    limit, reason = (upper, f"the search stops at {upper}") if upper else _search_limit(experiment)
    tries: list[tuple[int, bool]] = []

    def record(size: int, ok: bool) -> None:
        tries.append((size, ok))
        if on_try is not None:
            on_try(size, ok)

    if device.kind == "cpu":
        fits = _estimated_fit(experiment, device)
    else:
        fits = StepTrial(experiment, device)
    best, note = largest_fitting(fits, limit, record)
    limit_text = f"{note} ({reason})" if note else ""
    return BatchFit(best, device.kind != "cpu", device.name, tuple(tries), limit_text)


def _estimated_fit(experiment: Experiment, device: DeviceInfo) -> Callable[[int], bool]:
    free = available_ram()
    budget = CPU_SHARE * free if free is not None else float("inf")

    def fits(size: int) -> bool:
        estimate = estimate_training_memory(experiment, batch_size=size, device=device)
        return estimate.train_peak <= budget

    return fits


def cpu_budget_text() -> str:
    free = available_ram()
    if free is None:
        return "free RAM unknown"
    return f"{int(CPU_SHARE * 100)}% of the {format_bytes(free)} of RAM free"


class StepTrial:
    """Tries a batch size with two real training steps on random data; False on out-of-memory."""

    def __init__(self, experiment: Experiment, device: DeviceInfo) -> None:
        from workbench.engine.experiment_model import build_experiment_model, experiment_input_shape
        from workbench.engine.optimization import make_loss, make_optimizer
        from workbench.engine.precision import make_precision
        from workbench.engine.trainer import uses_channels_last

        train = experiment.train
        self.device = torch.device(device.name)
        torch.manual_seed(train.seed)
        built = build_experiment_model(experiment)
        self.input_shape = tuple(experiment.model.input_shape or experiment_input_shape(experiment))
        self.classes = max(int(built.output_shape[-1]), 1)
        channels_last = uses_channels_last(train.memory_format, built.module)
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.model = built.module.to(self.device).to(memory_format=layout)
        self.optimizer = make_optimizer(self.model.parameters(), train)
        self.loss_fn = make_loss(train.loss)
        self.precision = make_precision(train.precision, device)

    def __call__(self, size: int) -> bool:
        try:
            for _ in range(2):
                self.step(size)
            return True
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc):
                raise
            return False
        finally:
            self.optimizer.zero_grad(set_to_none=True)
            gc.collect()
            _empty_cache(self.device)

    def step(self, size: int) -> None:
        x = torch.randn(size, *self.input_shape, device=self.device)  # as the Trainer feeds it
        y = torch.randint(0, self.classes, (size,), device=self.device)
        train_step(self.model, self.optimizer, self.loss_fn, iter([(x, y)]), self.precision)


def _empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
