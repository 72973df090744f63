"""CPU latency, measured not assumed: warm medians at batch 1 and 64, and the inference options
of PyTorch's performance guide (inference_mode, channels-last, export, compile) side by side."""

from __future__ import annotations

import contextlib
import copy
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from workbench.engine.quantization.recipe import QuantizationCancelled

LATENCY_BATCHES = (1, 64)
MEASURED, NOT_AVAILABLE, NOT_APPLICABLE, SKIPPED = (
    "measured",
    "not available",
    "not applicable",
    "skipped",
)


@dataclass(frozen=True)
class MeasureSettings:
    """How hard to measure: repeats per median, warm-up runs, CPU threads, and whether to try
    torch.compile (slow to compile, so off unless asked)."""

    repeats: int = 30
    warmup: int = 5
    threads: int | None = None  # None: torch's current setting
    compile: bool = False
    inference_options: bool = True  # also time the float model under each inference option


@dataclass(frozen=True)
class Latency:
    """Median milliseconds per call at batch 1 and batch 64, warm."""

    batch1_ms: float
    batch64_ms: float

    @property
    def throughput(self) -> float:
        """Samples per second at batch 64."""
        return 64_000.0 / self.batch64_ms if self.batch64_ms > 0 else 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "batch1_ms": self.batch1_ms,
            "batch64_ms": self.batch64_ms,
            "throughput_per_s": self.throughput,
        }


@dataclass(frozen=True)
class InferenceOption:
    """One row of the inference-options table; `latency` only when it was measured."""

    name: str
    status: str  # MEASURED | NOT_AVAILABLE | NOT_APPLICABLE | SKIPPED
    detail: str = ""
    latency: Latency | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "latency": self.latency.to_dict() if self.latency else None,
        }


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with `threads` intra-op threads, restoring the setting afterwards."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def median_ms(
    run: Callable[[], object], repeats: int, warmup: int, stop: threading.Event | None = None
) -> float:
    """Median wall time of `run()` in milliseconds after `warmup` untimed calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(max(repeats, 1)):
        if stop is not None and stop.is_set():
            raise QuantizationCancelled("cancelled while measuring latency")
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000.0


def measure_latency(
    model: Callable[[torch.Tensor], Any],
    batch1: torch.Tensor,
    batch64: torch.Tensor,
    settings: MeasureSettings,
    *,
    context: Callable[[], contextlib.AbstractContextManager[Any]] = torch.inference_mode,
    stop: threading.Event | None = None,
) -> Latency:
    """Warm median latency at batch 1 and 64 under `context` (inference_mode by default)."""
    with torch_threads(settings.threads), context():
        first = median_ms(lambda: model(batch1), settings.repeats, settings.warmup, stop)
        second = median_ms(lambda: model(batch64), settings.repeats, settings.warmup, stop)
    return Latency(first, second)


def measure_side_by_side(
    models: Sequence[Callable[[torch.Tensor], Any]],
    batch1: torch.Tensor,
    batch64: torch.Tensor,
    settings: MeasureSettings,
    *,
    stop: threading.Event | None = None,
) -> list[Latency]:
    """Warm median latency of several models, their timed calls interleaved.

    On a shared machine the load changes from second to second; alternating the models call
    by call lets each see the same conditions, so their ratio is fair.
    """
    medians: dict[int, list[float]] = {}
    with torch_threads(settings.threads), torch.inference_mode():
        for size, batch in ((1, batch1), (64, batch64)):
            for model in models:
                for _ in range(settings.warmup):
                    model(batch)
            times: list[list[float]] = [[] for _ in models]
            for _ in range(max(settings.repeats, 1)):
                if stop is not None and stop.is_set():
                    raise QuantizationCancelled("cancelled while measuring latency")
                for index, model in enumerate(models):
                    started = time.perf_counter()
                    model(batch)
                    times[index].append(time.perf_counter() - started)
            medians[size] = [statistics.median(t) * 1000.0 for t in times]
    return [Latency(medians[1][i], medians[64][i]) for i in range(len(models))]


def has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(module, nn.Conv2d) for module in model.modules())


def inference_options(
    model: nn.Module,
    batch1: torch.Tensor,
    batch64: torch.Tensor,
    settings: MeasureSettings,
    stop: threading.Event | None = None,
) -> list[InferenceOption]:
    """The float model under each option of the performance guide; none is assumed to help."""
    model = model.eval()

    def timed(
        name: str, run: Callable[[torch.Tensor], Any], context: Any, detail: str
    ) -> InferenceOption:
        latency = measure_latency(run, batch1, batch64, settings, context=context, stop=stop)
        return InferenceOption(name, MEASURED, detail, latency)

    rows = [
        timed("eval, autograd on", model, contextlib.nullcontext, "model.eval() only (baseline)"),
        timed("torch.no_grad", model, torch.no_grad, "no autograd graph"),
        timed(
            "torch.inference_mode", model, torch.inference_mode, "no autograd, no version counters"
        ),
        _channels_last(model, batch1, batch64, settings, stop),
        _exported(model, batch1, batch64, settings, stop),
        _compiled(model, batch1, batch64, settings, stop),
    ]
    return rows


def _channels_last(
    model: nn.Module,
    batch1: torch.Tensor,
    batch64: torch.Tensor,
    settings: MeasureSettings,
    stop: threading.Event | None,
) -> InferenceOption:
    name = "channels_last"
    if batch1.dim() != 4 or not has_conv2d(model):
        return InferenceOption(name, NOT_APPLICABLE, "no 2-D convolutions on [N, C, H, W] input")
    layout = torch.channels_last
    converted = copy.deepcopy(model).to(memory_format=layout)  # type: ignore[call-overload]
    latency = measure_latency(
        converted,
        batch1.contiguous(memory_format=layout),
        batch64.contiguous(memory_format=layout),
        settings,
        stop=stop,
    )
    return InferenceOption(name, MEASURED, "NHWC weights and input, inference_mode", latency)


def _exported(
    model: nn.Module,
    batch1: torch.Tensor,
    batch64: torch.Tensor,
    settings: MeasureSettings,
    stop: threading.Event | None,
) -> InferenceOption:
    name = "torch.export"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(
                model, (batch64[:2],), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},)
            )
            exported = program.module()
    except Exception as exc:  # noqa: BLE001 - any refusal means "not available here", with why
        return InferenceOption(name, NOT_AVAILABLE, f"not available: {_first_line(exc)}")
    latency = measure_latency(exported, batch1, batch64, settings, stop=stop)
    return InferenceOption(name, MEASURED, "exported graph run eagerly, inference_mode", latency)


def _compiled(
    model: nn.Module,
    batch1: torch.Tensor,
    batch64: torch.Tensor,
    settings: MeasureSettings,
    stop: threading.Event | None,
) -> InferenceOption:
    name = "torch.compile"
    if not settings.compile:
        return InferenceOption(
            name, SKIPPED, "not measured; ask for it (--compile): compiling takes tens of seconds"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = torch.compile(copy.deepcopy(model))
            started = time.perf_counter()
            with torch_threads(settings.threads), torch.inference_mode():
                compiled(batch1)
                compiled(batch64)
            seconds = time.perf_counter() - started
            latency = measure_latency(compiled, batch1, batch64, settings, stop=stop)
    except QuantizationCancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - a missing compiler or backend is "not available"
        return InferenceOption(name, NOT_AVAILABLE, f"not available: {_first_line(exc)}")
    return InferenceOption(name, MEASURED, f"inductor, compiled in {seconds:.1f} s", latency)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
