"""Measured what-ifs: the same training step with one thing changed, timed side by side.

Each what-if trains its own copy of the model against a copy trained as configured, their
steps interleaved (ABBA order) so that both see the same machine load; the figure is the
median of the paired time ratios. Nothing is assumed to help.
"""

from __future__ import annotations

import shutil
import statistics
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from workbench.engine.errors import DeviceError
from workbench.engine.profiling.errors import ProfileCancelled
from workbench.engine.profiling.report import (
    FAILED,
    MEASURED,
    NOT_APPLICABLE,
    NOT_AVAILABLE,
    SKIPPED,
    WhatIf,
)
from workbench.engine.profiling.train_step import StepRunner, TrainingSetup

Batch = tuple[torch.Tensor, torch.Tensor]
COMPILERS = ("c++", "g++", "clang++")  # what inductor's C++ builder looks for


@dataclass(frozen=True)
class WhatIfSettings:
    rounds: int = 6  # paired timings per what-if
    warmup: int = 2
    compile: bool = False  # torch.compile takes tens of seconds to minutes on a CPU
    batch_factor: int = 2  # the larger batch is this many times the configured one


def _step_seconds(runner: StepRunner, batch: Batch) -> float:
    started = time.perf_counter()
    runner.run(*batch)
    return time.perf_counter() - started


def paired_speed_ratio(
    base: StepRunner,
    variant: StepRunner,
    base_batch: Batch,
    variant_batch: Batch,
    settings: WhatIfSettings,
    stop: threading.Event | None = None,
) -> float:
    """Median over rounds of base time / variant time (above 1: the variant is faster)."""
    for _ in range(settings.warmup):
        base.run(*base_batch)
        variant.run(*variant_batch)
    ratios = []
    for index in range(max(settings.rounds, 1)):
        if stop is not None and stop.is_set():
            raise ProfileCancelled("profiling cancelled")
        if index % 2 == 0:
            base_seconds = _step_seconds(base, base_batch)
            variant_seconds = _step_seconds(variant, variant_batch)
        else:
            variant_seconds = _step_seconds(variant, variant_batch)
            base_seconds = _step_seconds(base, base_batch)
        ratios.append(base_seconds / max(variant_seconds, 1e-12))
    return statistics.median(ratios)


def measure_what_ifs(
    setup: TrainingSetup,
    batch: Batch,
    settings: WhatIfSettings,
    progress: Callable[[str, float], None] | None = None,
    stop: threading.Event | None = None,
) -> list[WhatIf]:
    """channels-last, bf16-mixed, torch.compile and a larger batch, each against the step as
    configured; `progress(text, fraction of the what-ifs done)`."""
    measures = (
        ("memory layout", _memory_layout),
        ("precision", _precision),
        ("torch.compile", _compiled),
        ("larger batch", _larger_batch),
    )
    rows = []
    for index, (name, measure) in enumerate(measures):
        if progress is not None:
            progress(f"what if: {name}", index / len(measures))
        rows.append(measure(setup, batch, settings, stop))
    return rows


def _has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(module, nn.Conv2d) for module in model.modules())


def _memory_layout(
    setup: TrainingSetup, batch: Batch, settings: WhatIfSettings, stop: threading.Event | None
) -> WhatIf:
    x, y = batch
    if setup.channels_last:
        name = "contiguous (NCHW)"
        variant_batch = (x.contiguous(), y)
        detail = "this experiment trains channels-last (memory_format); NCHW weights and input"
    else:
        name = "channels-last"
        variant_batch = (x.contiguous(memory_format=torch.channels_last), y)
        detail = 'NHWC weights and input (train.memory_format = "channels_last")'
    if x.dim() != 4 or not _has_conv2d(setup.model):
        return WhatIf(name, NOT_APPLICABLE, "no 2-D convolutions on [N, C, H, W] input")
    variant = setup.runner(channels_last=not setup.channels_last)
    ratio = paired_speed_ratio(setup.runner(), variant, batch, variant_batch, settings, stop)
    return WhatIf(name, MEASURED, detail, ratio)


def _precision(
    setup: TrainingSetup, batch: Batch, settings: WhatIfSettings, stop: threading.Event | None
) -> WhatIf:
    other = "32-true" if setup.precision == "bf16-mixed" else "bf16-mixed"
    detail = f'train.precision = "{other}" (this experiment: {setup.precision})'
    try:
        variant = setup.runner(precision=other)
    except DeviceError as exc:
        return WhatIf(other, NOT_AVAILABLE, str(exc))
    ratio = paired_speed_ratio(setup.runner(), variant, batch, batch, settings, stop)
    return WhatIf(other, MEASURED, detail, ratio)


def _compiled(
    setup: TrainingSetup, batch: Batch, settings: WhatIfSettings, stop: threading.Event | None
) -> WhatIf:
    name = "torch.compile"
    if not settings.compile:
        return WhatIf(
            name, SKIPPED, "ask for it with --compile; compiling takes a minute or more on a CPU"
        )
    problem = compile_problem(setup.torch_device.type)
    if problem is not None:
        return WhatIf(name, NOT_AVAILABLE, problem)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            variant = setup.runner(wrap=_compile)
            started = time.perf_counter()
            variant.run(*batch)  # compiles the forward and the backward
            seconds = time.perf_counter() - started
            ratio = paired_speed_ratio(setup.runner(), variant, batch, batch, settings, stop)
    except ProfileCancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - a missing compiler or an unsupported op: say so
        return WhatIf(name, FAILED, f"could not compile: {_first_line(exc)}")
    return WhatIf(name, MEASURED, f"inductor; the first step compiled in {seconds:.0f} s", ratio)


def _larger_batch(
    setup: TrainingSetup, batch: Batch, settings: WhatIfSettings, stop: threading.Event | None
) -> WhatIf:
    factor = settings.batch_factor
    x, y = batch
    name = f"batch {len(x) * factor}"
    larger = (torch.cat([x] * factor), torch.cat([y] * factor))
    try:
        ratio = paired_speed_ratio(setup.runner(), setup.runner(), batch, larger, settings, stop)
    except torch.OutOfMemoryError:
        return WhatIf(name, FAILED, f"out of memory at {factor}x the batch")
    detail = f"{factor}x data.batch_size; the speed is samples per second"
    return WhatIf(name, MEASURED, detail, ratio * factor)


def compile_problem(device_type: str) -> str | None:
    """Why torch.compile cannot work here (None where it may): inductor compiles C++ on a CPU."""
    from torch._dynamo.eval_frame import is_dynamo_supported

    if not is_dynamo_supported():
        return "torch.compile does not support this Python version"
    if device_type == "cpu" and not any(shutil.which(cc) for cc in COMPILERS):
        return "torch.compile needs a C++ compiler (g++ or clang++) on PATH for a CPU; none found"
    return None


def _compile(model: nn.Module) -> nn.Module:
    compiled: nn.Module = torch.compile(model)  # type: ignore[assignment]
    return compiled


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
