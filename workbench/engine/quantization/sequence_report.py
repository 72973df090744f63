"""The report card's figures for sequence models: validation loss float against int8, the
latency per generated token at batch 1, and PyTorch's Transformer fast path measured on and off.

Token models are scored by loss (next-token models have no accuracy), and a language model is
used one token at a time, so its latency that matters is per generated token, not per batch.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from workbench.engine.generation import SamplingSettings, generate_ids
from workbench.engine.quantization.latency import (
    MEASURED,
    InferenceOption,
    MeasureSettings,
    measure_latency,
    torch_threads,
)
from workbench.engine.quantization.recipe import QuantizationCancelled

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
GENERATED_TOKENS = 32  # tokens per timed generation


def is_token_model(sample: torch.Tensor) -> bool:
    """Whether the model reads token ids (an embedding first)."""
    return not sample.is_floating_point()


def mean_loss(model: nn.Module, batches: Sequence[Batch], loss_fn: LossFn) -> float:
    """The model's loss per sample over `batches` (what the trainer reports as val loss)."""
    total, samples = 0.0, 0
    with torch.inference_mode():
        for x, y in batches:
            total += float(loss_fn(model(x), y)) * len(y)
            samples += len(y)
    return total / max(samples, 1)


def per_token_latency(
    models: Sequence[nn.Module],
    prompt: Sequence[int],
    context: int,
    settings: MeasureSettings,
    stop: threading.Event | None = None,
) -> list[float]:
    """Median milliseconds per generated token at batch 1, the models' runs interleaved.

    Each run generates GENERATED_TOKENS greedily after `prompt`, every step reading up to
    `context` tokens, as `workbench generate` does.
    """
    greedy = SamplingSettings(tokens=GENERATED_TOKENS, temperature=0.0, seed=0)
    repeats = max(3, settings.repeats // 5)
    times: list[list[float]] = [[] for _ in models]
    with torch_threads(settings.threads):
        for model in models:  # warm-up
            list(generate_ids(model, prompt, greedy, context))
        for _ in range(repeats):
            for index, model in enumerate(models):
                if stop is not None and stop.is_set():
                    raise QuantizationCancelled("cancelled while measuring latency")
                started = time.perf_counter()
                list(generate_ids(model, prompt, greedy, context))
                times[index].append((time.perf_counter() - started) / GENERATED_TOKENS)
    return [statistics.median(row) * 1000.0 for row in times]


def sequence_figures(
    float_model: nn.Module,
    int8_model: nn.Module,
    val_batches: Sequence[Batch],
    loss_fn: LossFn,
    context: int,
    settings: MeasureSettings,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """The card's extra figures for a token model: val loss and per-token latency."""
    float_loss = mean_loss(float_model, val_batches, loss_fn)
    int8_loss = mean_loss(int8_model, val_batches, loss_fn)
    prompt = val_batches[0][0][0, : max(1, context // 2)].tolist()
    float_ms, int8_ms = per_token_latency(
        [float_model, int8_model], prompt, context, settings, stop
    )
    return {
        "val_loss": {"float": float_loss, "int8": int8_loss, "change": int8_loss - float_loss},
        "per_token_latency_ms": {
            "float": float_ms,
            "int8": int8_ms,
            "speedup": float_ms / max(int8_ms, 1e-9),
            "tokens": GENERATED_TOKENS,
            "context": context,
        },
    }


def has_encoder_layer(model: nn.Module) -> bool:
    return any(isinstance(module, nn.TransformerEncoderLayer) for module in model.modules())


@contextlib.contextmanager
def fast_path(enabled: bool) -> Iterator[None]:
    """Turn PyTorch's Transformer inference fast path on or off for a moment."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(enabled)
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def fast_path_options(
    model: nn.Module,
    batch1: torch.Tensor,
    batch64: torch.Tensor,
    settings: MeasureSettings,
    stop: threading.Event | None = None,
) -> list[InferenceOption]:
    """nn.TransformerEncoderLayer's fused inference kernels, measured on and off (eval mode,
    inference_mode, batch first: the conditions under which PyTorch takes the fast path)."""
    if not has_encoder_layer(model):
        return []
    model = model.eval()
    rows = []
    for enabled in (True, False):
        context = functools.partial(fast_path, enabled)
        latency = measure_latency(model, batch1, batch64, settings, context=context, stop=stop)
        detail = (
            "torch.backends.mha fast path on: fused encoder-layer kernels"
            if enabled
            else "fast path off: the layer's Python modules one by one"
        )
        name = f"Transformer fast path {'on' if enabled else 'off'}"
        rows.append(InferenceOption(name, MEASURED, detail, latency))
    return rows


def sequence_lines(extra: dict[str, Any]) -> list[str]:
    """The card's text for the figures above (nothing for a model without them)."""
    loss, latency = extra.get("val_loss"), extra.get("per_token_latency_ms")
    if not loss or not latency:
        return []
    return [
        "Sequence model (batch 1, one token at a time):",
        f"  val loss: float {loss['float']:.4f}, int8 {loss['int8']:.4f} ({loss['change']:+.4f})",
        f"  latency per generated token: float {latency['float']:.3f} ms, int8 "
        f"{latency['int8']:.3f} ms ({latency['speedup']:.2f}x; {latency['tokens']} tokens, "
        f"context up to {latency['context']})",
    ]
